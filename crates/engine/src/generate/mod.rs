//! TL's `generate`, with the decode loop in Rust: one prompt pass, then one position per step
//! through the KV cache (or the whole sequence again without it), sampling as
//! `utils.sample_logits`. Unlike TL 2.x, padding is masked at every step, so a padded row
//! continues exactly as its prompt alone would.

pub mod rng;
pub mod sampling;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::model::hooks::HookSink;
use crate::model::kv_cache::KvCache;
use crate::model::mask::mask_rows;
use crate::model::transformer::{ForwardInput, ForwardOptions, HookedModel, ReturnType};
use rng::Rng;
use sampling::SampleOptions;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Tokens that finish a row (empty: never stop early).
    pub stop_tokens: Vec<i64>,
    /// What a finished row gets appended instead of new samples.
    pub eos_pad: i64,
    pub do_sample: bool,
    pub sample: SampleOptions,
    pub use_kv_cache: bool,
    pub seed: Option<u64>,
}

/// A generation in progress.
pub struct Generation {
    /// Per row: prompt (with its padding; zeros for an embeddings prompt) and the tokens
    /// generated so far.
    rows: Vec<Vec<i64>>,
    /// `[batch, pos, d_model]` when the prompt is embeddings (TL's `input_type == "embeds"`).
    prompt_embeds: Option<Tensor>,
    mask: Vec<Vec<i64>>,
    prompt_len: usize,
    kv: Option<KvCache>,
    /// Positions the model has already seen (through the KV cache).
    seen: usize,
    finished: Vec<bool>,
    produced: usize,
    opts: GenerateOptions,
    rng: Rng,
}

impl Generation {
    /// `prompt: [batch, pos]` ids, or `[batch, pos, d_model]` float embeddings; `mask` `[batch,
    /// pos]` (1 = real token) or None for no padding.
    pub fn new(model: &HookedModel, prompt: &Tensor, mask: Option<&Tensor>, opts: GenerateOptions) -> Result<Self> {
        if prompt.dtype().is_float() && prompt.rank() == 3 {
            let d = model.cfg().d_model;
            if prompt.dim(2)? != d {
                return Err(Error::shape(format!("prompt embeddings must be [batch, pos, {d}], got {:?}", prompt.dims())));
            }
            let (b, p, _) = prompt.dims3()?;
            let ids = Tensor::zeros((b, p), DType::I64, &candle_core::Device::Cpu)?;
            let mut g = Self::new(model, &ids, mask, opts)?;
            g.prompt_embeds = Some(crate::device::to(&prompt.to_dtype(model.dtype())?, &model.device)?);
            return Ok(g);
        }
        let prompt = match prompt.rank() {
            1 => prompt.unsqueeze(0)?,
            2 => prompt.clone(),
            r => return Err(Error::shape(format!("a prompt must be [batch, pos] tokens, got rank {r}"))),
        };
        if prompt.dtype().is_float() {
            return Err(Error::dtype(format!("a prompt must be integer token ids, got {:?}", prompt.dtype())));
        }
        let (b, p) = prompt.dims2()?;
        if p == 0 {
            return Err(Error::shape("a prompt needs at least one token"));
        }
        let rows: Vec<Vec<i64>> = prompt.to_dtype(DType::I64)?.to_vec2()?;
        let mask = match mask {
            Some(m) => {
                let (mb, mp, v) = mask_rows(m)?;
                if (mb, mp) != (b, p) {
                    return Err(Error::shape(format!("the attention mask is [{mb}, {mp}] but the prompt is [{b}, {p}]")));
                }
                let rows: Vec<Vec<i64>> = v.chunks(p).map(|c| c.to_vec()).collect();
                if rows.iter().any(|r| r.iter().all(|&x| x == 0)) {
                    return Err(Error::invalid("a prompt row is all padding"));
                }
                rows
            }
            None => vec![vec![1; p]; b],
        };
        opts.sample.validate()?;
        let cfg = model.cfg();
        // The last forward sees prompt + max_new - 1 positions. With the KV cache, positions
        // come from the mask, so a padded batch fits when its longest real row does.
        let width = if opts.use_kv_cache { mask.iter().map(|r| r.iter().sum::<i64>() as usize).max().unwrap_or(p) } else { p };
        if opts.max_new_tokens > 0 && width + opts.max_new_tokens - 1 > cfg.n_ctx {
            return Err(Error::shape(format!(
                "{width} prompt positions + {} new tokens exceed the model's n_ctx {}",
                opts.max_new_tokens, cfg.n_ctx
            )));
        }
        let kv = if opts.use_kv_cache {
            Some(KvCache::new(cfg.n_layers, b, cfg.attn_kv_heads(), cfg.d_head, model.dtype(), &model.device)?)
        } else {
            None
        };
        let rng = match opts.seed {
            Some(s) => Rng::new(s),
            None => Rng::from_time(),
        };
        Ok(Generation { rows, prompt_embeds: None, mask, prompt_len: p, kv, seen: 0, finished: vec![false; b], produced: 0, opts, rng })
    }

    pub fn is_done(&self) -> bool {
        self.produced >= self.opts.max_new_tokens || (!self.opts.stop_tokens.is_empty() && self.finished.iter().all(|&f| f))
    }

    pub fn produced(&self) -> usize {
        self.produced
    }

    pub fn batch(&self) -> usize {
        self.rows.len()
    }

    fn tensor(&self, rows: &[Vec<i64>], from: usize) -> Result<Tensor> {
        let w = rows[0].len() - from;
        let flat: Vec<i64> = rows.iter().flat_map(|r| r[from..].iter().copied()).collect();
        Ok(Tensor::from_vec(flat, (rows.len(), w), &candle_core::Device::Cpu)?)
    }

    /// Runs the model on the positions it has not seen, samples one token per row and
    /// appends it. Returns the new tokens, or None when the generation is complete.
    pub fn step(&mut self, model: &HookedModel, sink: &mut dyn HookSink, abort: Option<&AtomicBool>) -> Result<Option<Vec<i64>>> {
        if self.is_done() {
            return Ok(None);
        }
        if abort.map(|a| a.load(Ordering::Relaxed)).unwrap_or(false) {
            return Err(Error::new(ErrorCode::Aborted, "the generation was aborted"));
        }
        let from = if self.kv.is_some() { self.seen } else { 0 };
        let tokens = self.tensor(&self.rows, from)?.to_device(&model.device)?;
        let mask = self.tensor(&self.mask, from)?.to_device(&model.device)?;
        // Each row's prediction comes from its last real position.
        let logits_at: Vec<usize> = self
            .mask
            .iter()
            .map(|m| m[from..].iter().rposition(|&x| x == 1).unwrap_or(m.len() - from - 1))
            .collect();
        let opts = ForwardOptions {
            return_type: ReturnType::Logits,
            attention_mask: Some(mask),
            logits_at: Some(logits_at),
            abort,
            window_over_positions: true,
            ..Default::default()
        };
        let input = match &self.prompt_embeds {
            // Prompt positions come from the given embeddings, generated ones from their tokens.
            Some(e) if from < self.prompt_len => ForwardInput::Embeds(self.embeddings(model, e, from)?),
            _ => ForwardInput::Tokens(tokens),
        };
        let out = model.forward_kv(input, &opts, self.kv.as_mut(), sink)?;
        self.seen = self.rows[0].len();
        let logits = out.logits.ok_or_else(|| Error::invalid("the forward returned no logits"))?.squeeze(1)?;
        // As TL, an embeddings prompt has no token history for the frequency penalty.
        let history: Option<Vec<Vec<i64>>> = if self.opts.do_sample && self.opts.sample.freq_penalty > 0.0 && self.prompt_embeds.is_none() {
            Some(
                self.rows
                    .iter()
                    .zip(&self.mask)
                    .map(|(r, m)| r.iter().zip(m).filter(|(_, &k)| k == 1).map(|(&t, _)| t).collect())
                    .collect(),
            )
        } else {
            None
        };
        let mut next = sampling::sample_logits(&logits, history.as_deref(), self.opts.do_sample, &self.opts.sample, &mut self.rng)?;
        for (i, t) in next.iter_mut().enumerate() {
            if !self.opts.stop_tokens.is_empty() {
                if self.finished[i] {
                    *t = self.opts.eos_pad;
                }
                if self.opts.stop_tokens.contains(t) {
                    self.finished[i] = true;
                }
            }
            self.rows[i].push(*t);
            self.mask[i].push(1);
        }
        self.produced += 1;
        Ok(Some(next))
    }

    /// `[batch, prompt + generated]`: the prompt as given (with its padding), then the new tokens.
    pub fn output_tokens(&self) -> Result<Tensor> {
        self.tensor(&self.rows, 0)
    }

    /// `[batch, generated]`.
    pub fn new_tokens(&self) -> Result<Tensor> {
        self.tensor(&self.rows, self.prompt_len)
    }

    /// Positions `from..` as embeddings: the prompt's (given) then the generated tokens'.
    fn embeddings(&self, model: &HookedModel, prompt: &Tensor, from: usize) -> Result<Tensor> {
        let mut parts = vec![prompt.narrow(1, from, self.prompt_len - from)?];
        if self.rows[0].len() > self.prompt_len {
            parts.push(model.token_embeddings(&self.new_tokens()?)?);
        }
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// `[batch, prompt + generated, d_model]`: the prompt's embeddings (given, or of its
    /// tokens), then the generated tokens' (TL's `return_type="embeds"`).
    pub fn output_embeds(&self, model: &HookedModel) -> Result<Tensor> {
        match &self.prompt_embeds {
            Some(e) => self.embeddings(model, e, 0),
            None => model.token_embeddings(&self.output_tokens()?),
        }
    }

    /// The mask of prompt + generated positions.
    pub fn attention_mask(&self) -> Result<Tensor> {
        self.tensor(&self.mask, 0)
    }

    /// Runs every remaining step.
    pub fn run(&mut self, model: &HookedModel, sink: &mut dyn HookSink, abort: Option<&AtomicBool>) -> Result<()> {
        while self.step(model, sink, abort)?.is_some() {}
        Ok(())
    }
}
