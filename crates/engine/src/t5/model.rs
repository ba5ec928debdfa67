//! TL's `HookedEncoderDecoder.forward`: the encoder (bidirectional, relative position buckets,
//! padding mask), then the decoder as HuggingFace computes it — causal self-attention with
//! unidirectional buckets (TL 2.16.1 has neither: its decoder attends to later positions) — with
//! cross-attention on the encoder output, then the tied-embedding rescale and the unembedding.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::kernels::linear::linear;
use crate::model::attention::score_dtype;
use crate::model::config::Config;
use crate::model::hooks::{HookSink, Taps};
use crate::model::kv_cache::KvCache;
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::weights::NormWeights;
use crate::t5::attention::Kv;
use crate::t5::block::{self, At, CrossIn};
use crate::t5::buckets;
use crate::t5::hooks::T5Hooks;
use crate::t5::weights::T5Weights;

/// Cloning shares the weight storage.
#[derive(Clone)]
pub struct T5Model {
    pub cfg: Config,
    pub weights: T5Weights,
    pub hooks: T5Hooks,
    pub device: Device,
}

/// The encoder's output and its padding mask, as the decoder's cross-attention reads them.
#[derive(Clone)]
pub struct EncoderOut {
    /// `[batch, enc_pos, d_model]`, after `encoder_final_ln`.
    pub hidden: Tensor,
    /// `[batch, 1, 1, enc_pos]`: 0 for tokens, the dtype's minimum for padding (TL's
    /// `additive_attention_mask`); None without a mask.
    pub padding: Option<Tensor>,
}

/// A generation's decoder state: self-attention keys and values per layer (growing one
/// position a step) and the cross-attention's, projected from the encoder output once.
pub struct DecoderState {
    pub kv: KvCache,
    pub cross: Vec<Option<Kv>>,
}

/// torch's `finfo(dtype).min`.
fn dtype_min(dt: DType) -> f64 {
    match dt {
        DType::F16 => -65504.0,
        DType::BF16 => -3.3895313892515355e38,
        DType::F64 => f64::MIN,
        _ => f32::MIN as f64,
    }
}

fn aborted(abort: Option<&AtomicBool>) -> Result<()> {
    if abort.is_some_and(|a| a.load(Ordering::Relaxed)) {
        return Err(Error::new(ErrorCode::Aborted, "the forward pass was aborted"));
    }
    Ok(())
}

impl T5Model {
    pub fn new(cfg: Config, weights: T5Weights, device: Device) -> Self {
        let hooks = T5Hooks::new(cfg.n_layers);
        T5Model { cfg, weights, hooks, device }
    }

    pub fn dtype(&self) -> DType {
        self.weights.w_e.dtype()
    }

    /// Sets one of the hook flags TL's `T5Block` reads (`model.cfg.use_attn_in = True`, ...):
    /// `use_attn_result`, `use_split_qkv_input`, `use_hook_mlp_in`, `use_attn_in`. The hook
    /// table is the same either way (TL's module tree has every point).
    pub fn set_flag(&mut self, name: &str, value: bool) -> Result<()> {
        self.cfg.set_hook_flag(name, value, &["use_attn_result", "use_split_qkv_input", "use_hook_mlp_in", "use_attn_in"])
    }

    /// `[batch, pos]` (or `[pos]`) in-vocabulary integer ids → i64 on the model's device.
    pub fn check_tokens(&self, t: &Tensor, what: &str) -> Result<Tensor> {
        let t = match t.rank() {
            1 => t.unsqueeze(0)?,
            2 => t.clone(),
            r => return Err(Error::shape(format!("{what} must be [batch, pos], got rank {r} with shape {:?}", t.dims()))),
        };
        if !matches!(t.dtype(), DType::I64 | DType::U32 | DType::I32 | DType::U8) {
            return Err(Error::dtype(format!("{what} must be an integer tensor, got {:?}", t.dtype())));
        }
        let t = t.to_dtype(DType::I64)?;
        if t.dim(1)? == 0 || t.dim(0)? == 0 {
            return Err(Error::shape(format!("{what} must have at least one row and one position, got {:?}", t.dims())));
        }
        let vocab = self.cfg.d_vocab as i64;
        let flat: Vec<i64> = t.flatten_all()?.to_vec1()?;
        if let Some(bad) = flat.iter().find(|&&x| x < 0 || x >= vocab) {
            return Err(Error::invalid(format!("token id {bad} in {what} is outside the vocabulary [0, {vocab})")));
        }
        crate::device::to(&t, &self.device)
    }

    /// TL's additive mask from a one-zero mask `[batch, pos]`: `[batch, 1, 1, pos]`, in the
    /// scores' dtype (TL's `(1 - mask) * finfo(dtype).min` is a float32 tensor).
    fn padding(&self, mask: Option<&Tensor>, b: usize, p: usize) -> Result<Option<Tensor>> {
        let Some(m) = mask else { return Ok(None) };
        if m.dims() != [b, p] {
            return Err(Error::shape(format!("the attention mask {:?} does not match the input tokens [{b}, {p}]", m.dims())));
        }
        let m = crate::device::to(&m.to_dtype(DType::F64)?, &self.device)?;
        let add = ((1.0 - m)? * dtype_min(self.dtype()))?.to_dtype(score_dtype(self.dtype()))?;
        Ok(Some(add.reshape((b, 1, 1, p))?))
    }

    fn rms(&self, w: &Tensor, ids: [usize; 2], x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let hooks = NormHooks { scale: Some(ids[0]), normalized: Some(ids[1]) };
        norm::apply(NormKind::RMS, &NormWeights { w: Some(w.clone()), b: None }, self.cfg.eps, x, hooks, taps)
    }

    /// The encoder: `tokens [batch, pos]`, `mask` TL's `one_zero_attention_mask`.
    pub fn encode(&self, tokens: &Tensor, mask: Option<&Tensor>, abort: Option<&AtomicBool>, taps: &mut Taps) -> Result<EncoderOut> {
        let tokens = self.check_tokens(tokens, "tokens")?;
        let (b, p) = tokens.dims2()?;
        let padding = self.padding(mask, b, p)?;
        let d = self.cfg.d_model;
        let embed = self.weights.w_e.index_select(&tokens.flatten_all()?, 0)?.reshape((b, p, d))?;
        let mut resid = taps.fire(Some(self.hooks.embed), embed)?;
        let max_distance = crate::t5::config::buckets(&self.cfg).1;
        let bias = buckets::bias(&self.weights.encoder_rel, 0, p, p, true, max_distance)?;
        let additive = match &padding {
            Some(pad) => bias.broadcast_add(pad)?.contiguous()?,
            None => bias,
        };
        for (layer, w) in self.weights.encoder.iter().enumerate() {
            aborted(abort)?;
            let at = At { cfg: &self.cfg, hooks: &self.hooks, decoder: false, layer };
            resid = block::forward(at, w, resid, &additive, None, None, taps)?;
        }
        let hidden = self.rms(&self.weights.encoder_final, self.hooks.encoder_final, &resid, taps)?;
        Ok(EncoderOut { hidden, padding })
    }

    /// The decoder's self-attention term: unidirectional buckets for queries at `past..past + q`
    /// over keys `0..past + q`, -inf on later keys (HF's causal decoder).
    fn decoder_additive(&self, past: usize, q: usize) -> Result<Tensor> {
        let k = past + q;
        let max_distance = crate::t5::config::buckets(&self.cfg).1;
        let bias = buckets::bias(&self.weights.decoder_rel, past, q, k, false, max_distance)?;
        let causal: Vec<f32> = (0..q * k).map(|i| if i % k > past + i / k { f32::NEG_INFINITY } else { 0.0 }).collect();
        let causal = Tensor::from_vec(causal, (1, 1, q, k), &self.device)?.to_dtype(bias.dtype())?;
        Ok(bias.broadcast_add(&causal)?.contiguous()?)
    }

    /// The decoder over `decoder_input [batch, pos]` (the new positions when `state` holds a
    /// past), then the logits: `[batch, pos, d_vocab]`, or of the last position only.
    pub fn decode(&self, enc: &EncoderOut, decoder_input: &Tensor, mut state: Option<&mut DecoderState>, last_only: bool, abort: Option<&AtomicBool>, taps: &mut Taps) -> Result<Tensor> {
        let dec = self.check_tokens(decoder_input, "decoder_input")?;
        let (b, q) = dec.dims2()?;
        let eb = enc.hidden.dim(0)?;
        if eb != b {
            return Err(Error::shape(format!("decoder_input has batch size {b} but the encoder input has {eb}")));
        }
        let past = state.as_ref().map_or(0, |s| s.kv.past_len());
        let d = self.cfg.d_model;
        // TL embeds the decoder input with no hook.
        let mut resid = self.weights.w_e.index_select(&dec.flatten_all()?, 0)?.reshape((b, q, d))?;
        let additive = self.decoder_additive(past, q)?;
        let ke = enc.hidden.dim(1)?;
        let cross_add = match &enc.padding {
            Some(pad) => pad.broadcast_as((b, 1, q, ke))?.contiguous()?,
            None => Tensor::zeros((1, 1, q, ke), score_dtype(self.dtype()), &self.device)?,
        };
        for (layer, w) in self.weights.decoder.iter().enumerate() {
            aborted(abort)?;
            let at = At { cfg: &self.cfg, hooks: &self.hooks, decoder: true, layer };
            let (entry, slot) = match state.as_deref_mut() {
                Some(s) => (Some(&mut s.kv.entries[layer]), Some(&mut s.cross[layer])),
                None => (None, None),
            };
            let cross = CrossIn { encoder: &enc.hidden, additive: &cross_add, kv: slot };
            resid = block::forward(at, w, resid, &additive, entry, Some(cross), taps)?;
        }
        if let Some(s) = state {
            // The mask of the positions just seen (no decoder padding): keeps past_len in step.
            s.kv.append_attention_mask(&Tensor::ones((b, q), DType::I64, &self.device)?)?;
        }
        let resid = if last_only { resid.narrow(1, q - 1, 1)? } else { resid };
        let resid = self.rms(&self.weights.decoder_final, self.hooks.decoder_final, &resid, taps)?;
        // As HF and TL: tied embeddings rescale the output before the unembedding (TL: only
        // then, though it unembeds with the shared embedding either way).
        let resid = if self.cfg.tie_word_embeddings { (resid * (d as f64).powf(-0.5))? } else { resid };
        Ok(linear(&resid, &self.weights.w_u, None)?)
    }

    /// A fresh decoder state for `batch` rows.
    pub fn decoder_state(&self, batch: usize) -> Result<DecoderState> {
        let c = &self.cfg;
        Ok(DecoderState { kv: KvCache::new(c.n_layers, batch, c.n_heads, c.d_head, self.dtype(), &self.device)?, cross: vec![None; c.n_layers] })
    }

    /// TL's `forward(tokens, decoder_input, one_zero_attention_mask)`: logits
    /// `[batch, decoder_pos, d_vocab]`, or None for `return_type=None`.
    pub fn forward(&self, tokens: &Tensor, decoder_input: &Tensor, mask: Option<&Tensor>, want_logits: bool, abort: Option<&AtomicBool>, sink: &mut dyn HookSink) -> Result<Option<Tensor>> {
        let mut taps = Taps::new(&self.hooks.table, sink);
        let enc = self.encode(tokens, mask, abort, &mut taps)?;
        let logits = self.decode(&enc, decoder_input, None, false, abort, &mut taps)?;
        Ok(want_logits.then_some(logits))
    }

    /// TL's `model.to(device)`.
    pub fn to_device(&mut self, dev: &Device, label: &str) -> Result<()> {
        let w = &self.weights;
        let mv = |t: &Tensor| crate::device::to(t, dev);
        let block = |b: &crate::t5::weights::T5Block| -> Result<crate::t5::weights::T5Block> {
            let attn = |a: &crate::t5::weights::AttnWeights| -> Result<crate::t5::weights::AttnWeights> {
                Ok(crate::t5::weights::AttnWeights { w_q: a.w_q.as_ref().map(mv).transpose()?, w_qkv: mv(&a.w_qkv)?, w_o: mv(&a.w_o)? })
            };
            Ok(crate::t5::weights::T5Block {
                ln1: mv(&b.ln1)?,
                attn: attn(&b.attn)?,
                cross: match &b.cross {
                    Some((ln, a)) => Some((mv(ln)?, attn(a)?)),
                    None => None,
                },
                ln_mlp: mv(&b.ln_mlp)?,
                w_in: mv(&b.w_in)?,
                w_out: mv(&b.w_out)?,
            })
        };
        self.weights = T5Weights {
            w_e: mv(&w.w_e)?,
            w_u: mv(&w.w_u)?,
            encoder_rel: mv(&w.encoder_rel)?,
            decoder_rel: mv(&w.decoder_rel)?,
            encoder: w.encoder.iter().map(block).collect::<Result<_>>()?,
            decoder: w.decoder.iter().map(block).collect::<Result<_>>()?,
            encoder_final: mv(&w.encoder_final)?,
            decoder_final: mv(&w.decoder_final)?,
        };
        self.device = dev.clone();
        self.cfg.device = Some(crate::device::label(label));
        Ok(())
    }

    /// Bytes of weight storage.
    pub fn nbytes(&self) -> usize {
        let w = &self.weights;
        let t = |x: &Tensor| x.elem_count() * x.dtype().size_in_bytes();
        let block = |b: &crate::t5::weights::T5Block| {
            t(&b.ln1) + t(&b.attn.w_qkv) + t(&b.attn.w_o) + t(&b.ln_mlp) + t(&b.w_in) + t(&b.w_out)
                + b.cross.as_ref().map_or(0, |(ln, a)| t(ln) + a.w_q.as_ref().map_or(0, t) + t(&a.w_qkv) + t(&a.w_o))
        };
        t(&w.w_e) + t(&w.w_u) + w.encoder.iter().chain(&w.decoder).map(block).sum::<usize>()
    }
}
