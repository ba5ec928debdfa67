//! TL's `HookedEncoderDecoder.generate`, with the decode loop in Rust: the encoder runs once, the
//! decoder starts from the pad token and reads one new position per step through its KV cache
//! (self-attention keys and values grow, cross-attention ones are projected once), sampling as
//! TL's `sample_logits`. The decoder is HF's (causal), so greedy decoding matches HF's.

use std::sync::atomic::AtomicBool;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::generate::rng::Rng;
use crate::generate::sampling::{self, SampleOptions};
use crate::model::hooks::{HookSink, Taps};
use crate::t5::model::T5Model;

#[derive(Debug, Clone)]
pub struct T5GenerateOptions {
    pub max_new_tokens: usize,
    /// Tokens that finish a row (empty: TL's `stop_at_eos=False`).
    pub stop_tokens: Vec<i64>,
    /// What a finished row gets appended instead of new samples.
    pub eos_pad: i64,
    pub do_sample: bool,
    pub sample: SampleOptions,
    pub seed: Option<u64>,
    /// The decoder's first token (TL: the tokenizer's pad token).
    pub start_token: i64,
}

/// `[batch, 1 + generated]`: the start token, then each row's tokens (TL's `decoder_input`).
/// The generation stops early once every row has produced a stop token.
pub fn generate(model: &T5Model, tokens: &Tensor, mask: Option<&Tensor>, opts: &T5GenerateOptions, abort: Option<&AtomicBool>, sink: &mut dyn HookSink) -> Result<Tensor> {
    if opts.do_sample {
        opts.sample.validate()?;
    }
    let mut taps = Taps::new(&model.hooks.table, sink);
    let enc = model.encode(tokens, mask, abort, &mut taps)?;
    let b = enc.hidden.dim(0)?;
    let mut rows: Vec<Vec<i64>> = vec![vec![opts.start_token]; b];
    let mut finished = vec![false; b];
    let mut state = model.decoder_state(b)?;
    let mut rng = match opts.seed {
        Some(s) => Rng::new(s),
        None => Rng::from_time(),
    };
    for _ in 0..opts.max_new_tokens {
        let seen = state.kv.past_len();
        let new: Vec<i64> = rows.iter().flat_map(|r| r[seen..].iter().copied()).collect();
        let width = rows[0].len() - seen;
        let input = Tensor::from_vec(new, (b, width), &model.device)?;
        let logits = model.decode(&enc, &input, Some(&mut state), true, abort, &mut taps)?.squeeze(1)?;
        let history = (opts.do_sample && opts.sample.freq_penalty > 0.0).then(|| rows.clone());
        let mut next = sampling::sample_logits(&logits, history.as_deref(), opts.do_sample, &opts.sample, &mut rng)?;
        for (i, t) in next.iter_mut().enumerate() {
            if !opts.stop_tokens.is_empty() {
                if finished[i] {
                    *t = opts.eos_pad;
                }
                if opts.stop_tokens.contains(t) {
                    finished[i] = true;
                }
            }
            rows[i].push(*t);
        }
        if !opts.stop_tokens.is_empty() && finished.iter().all(|&f| f) {
            break;
        }
    }
    let w = rows[0].len();
    let flat: Vec<i64> = rows.into_iter().flatten().collect();
    Tensor::from_vec(flat, (b, w), &candle_core::Device::Cpu).map_err(Error::from)
}
