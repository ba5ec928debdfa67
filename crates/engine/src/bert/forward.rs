//! The encoder's forward, as TL's `HookedEncoder.encoder_output` + `forward` (MLM head and
//! unembedding) and `BertNextSentencePrediction.forward` (pooler and NSP head), firing TL's hook
//! points in TL's order.
//!
//! Padding: TL turns `one_zero_attention_mask` into an additive mask (`-inf` where the mask is
//! 0, over key positions, for every query) added to the scaled scores before
//! `hook_attn_scores`; a query whose keys are all masked gets a zero pattern (TL's NaN → 0).

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

use crate::bert::hooks::{EncBlockHook as B, EncTopHook as T};
use crate::bert::weights::{Dense, EncoderBlock};
use crate::bert::HookedEncoder;
use crate::error::{Error, ErrorCode, Result};
use crate::kernels::attn_softmax;
use crate::kernels::gelu_erf::gelu_erf_tensor;
use crate::kernels::gemm16::matmul_any;
use crate::kernels::linear::{linear, linear_to};
use crate::kernels::softmax::softmax_last;
use crate::model::attention::{to_score_dtype, AttnInput};
use crate::model::attn_heads::{self, repeat_along_heads};
use crate::model::hooks::Taps;
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::weights::NormWeights;

/// What runs after the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `encoder_output`: the blocks' output `[batch, pos, d_model]`.
    Trunk,
    /// TL's `forward`: MLM head and unembedding, `[batch, pos, d_vocab]`.
    Mlm,
    /// `BertNextSentencePrediction.forward`: pooler and NSP head, `[batch, 2]`.
    Nsp,
}

/// One run's inputs: `tokens` `[batch, pos]` (or `[pos]`), and optionally `token_type_ids` and
/// TL's `one_zero_attention_mask` of the same shape.
pub struct EncoderInput<'a> {
    pub tokens: &'a Tensor,
    pub token_type_ids: Option<&'a Tensor>,
    pub mask: Option<&'a Tensor>,
    pub abort: Option<&'a AtomicBool>,
}

const INTS: [DType; 4] = [DType::I64, DType::U32, DType::I32, DType::U8];

/// An integer `[batch, pos]` tensor as i64 values (rank 1 is one row).
fn ids(t: &Tensor, what: &str) -> Result<(usize, usize, Vec<i64>)> {
    let t = match t.rank() {
        1 => t.unsqueeze(0)?,
        2 => t.clone(),
        r => return Err(Error::shape(format!("{what} must be [batch, pos] (or [pos]), got rank {r} with shape {:?}", t.dims()))),
    };
    if !INTS.contains(&t.dtype()) {
        return Err(Error::dtype(format!("{what} must be an integer tensor, got {:?}", t.dtype())));
    }
    let (b, p) = t.dims2()?;
    Ok((b, p, t.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?))
}

fn check_range(v: &[i64], bound: usize, what: &str) -> Result<()> {
    match v.iter().find(|&&x| x < 0 || x >= bound as i64) {
        Some(bad) => Err(Error::invalid(format!("{what} holds {bad}, outside [0, {bound})"))),
        None => Ok(()),
    }
}

/// A second input of the tokens' shape, as i64 values.
fn same_shape(t: &Tensor, what: &str, b: usize, p: usize) -> Result<Vec<i64>> {
    let (tb, tp, v) = ids(t, what)?;
    if (tb, tp) != (b, p) {
        return Err(Error::shape(format!("{what} has shape [{tb}, {tp}], the tokens [{b}, {p}]")));
    }
    Ok(v)
}

/// The additive mask `[batch, 1, pos, pos]` (0 or -inf by key; float32, as the scores) and
/// whether some row masks every key.
fn additive_mask(m: &[i64], b: usize, p: usize, dev: &candle_core::Device) -> Result<(Tensor, bool)> {
    let mut v = Vec::with_capacity(b * p * p);
    let mut dead = false;
    for row in m.chunks(p) {
        let keys: Vec<f32> = row.iter().map(|&x| if x == 0 { f32::NEG_INFINITY } else { 0.0 }).collect();
        dead |= row.iter().all(|&x| x == 0);
        for _ in 0..p {
            v.extend_from_slice(&keys);
        }
    }
    Ok((Tensor::from_vec(v, (b, 1, p, p), dev)?, dead))
}

struct Run<'m, 't, 's> {
    m: &'m HookedEncoder,
    taps: &'t mut Taps<'s>,
}

impl Run<'_, '_, '_> {
    fn top(&mut self, h: T, t: Tensor) -> Result<Tensor> {
        self.taps.fire(self.m.hooks.top(h), t)
    }
    fn blk(&mut self, l: usize, h: B, t: Tensor) -> Result<Tensor> {
        self.taps.fire(self.m.hooks.block(l, h), t)
    }
    fn ln(&mut self, w: &NormWeights, x: &Tensor, scale: Option<usize>, normalized: Option<usize>) -> Result<Tensor> {
        norm::apply(NormKind::LN, w, self.m.cfg.eps, x, NormHooks { scale, normalized }, self.taps)
    }

    /// `BertEmbed` and `hook_full_embed`.
    fn embed(&mut self, tokens: &[i64], types: Option<&[i64]>, b: usize, p: usize) -> Result<Tensor> {
        let (w, d, dev) = (&self.m.weights, self.m.cfg.d_model, &self.m.device);
        let tok = Tensor::from_slice(tokens, b * p, dev)?;
        let word = self.top(T::Embed, w.w_e.index_select(&tok, 0)?.reshape((b, p, d))?)?;
        let pos = w.w_pos.narrow(0, 0, p)?.unsqueeze(0)?.broadcast_as((b, p, d))?;
        let pos = if self.taps.active(self.m.hooks.top(T::PosEmbed)) { self.top(T::PosEmbed, pos.contiguous()?)? } else { pos };
        let zeros;
        let types = match types {
            Some(t) => t,
            None => {
                zeros = vec![0i64; b * p];
                &zeros
            }
        };
        let tt = Tensor::from_slice(types, b * p, dev)?;
        let tt = self.top(T::TokenTypeEmbed, w.w_token_type.index_select(&tt, 0)?.reshape((b, p, d))?)?;
        let sum = ((word + pos)? + tt)?;
        let x = self.ln(&w.embed_ln, &sum, self.m.hooks.top(T::EmbedLnScale), self.m.hooks.top(T::EmbedLnNormalized))?;
        self.top(T::FullEmbed, x)
    }

    /// `BertAttention` on `input`: the residual stream, or with `use_split_qkv_input` one
    /// stream per head for each of Q, K and V.
    fn attention(&mut self, l: usize, w: &EncoderBlock, input: &AttnInput, mask: Option<&(Tensor, bool)>) -> Result<Tensor> {
        let cfg = &self.m.cfg;
        let (h, dh) = (cfg.n_heads, cfg.d_head);
        let hd = h * dh;
        let project = |i: usize| -> Result<Tensor> {
            match input {
                AttnInput::Shared(x) => {
                    let (b, p, _) = x.dims3()?;
                    let wm = w.w_qkv.narrow(1, i * hd, hd)?;
                    let wm = if wm.device().is_cpu() { wm } else { wm.contiguous()? };
                    Ok(linear_to(x, &wm, Some(&w.b_qkv.narrow(0, i * hd, hd)?), &[b, p, h, dh])?)
                }
                AttnInput::PerHead { q, k, v } | AttnInput::Separate { q, k, v } => attn_heads::project_per_head([q, k, v][i], &w.w_qkv, Some(&w.b_qkv), i * hd, h, dh),
            }
        };
        let q = self.blk(l, B::Q, project(0)?)?;
        let k = self.blk(l, B::K, project(1)?)?;
        let v = self.blk(l, B::V, project(2)?)?;
        let (b, p, _, _) = q.dims4()?;
        // TL computes a 16-bit model's scores and pattern in float32 (AbstractAttention).
        let dtype = q.dtype();
        let q_ = to_score_dtype(q.transpose(1, 2)?.contiguous()?)?; // [b, h, q, dh]
        let k_t = to_score_dtype(k.transpose(1, 2)?.contiguous()?)?.transpose(2, 3)?; // [b, h, dh, k]
        let raw = q_.matmul(&k_t)?;
        let additive = mask.map(|(m, _)| m);
        let scale = cfg.attn_scale_for_layer(l);
        let watched = self.taps.active(self.m.hooks.block(l, B::AttnScores));
        let pattern = if !watched && attn_softmax::fusable(&raw, additive) {
            attn_softmax::scale_mask_softmax_(&raw, (1.0 / scale) as f32, additive)?;
            raw
        } else {
            let mut scores = (raw / scale)?;
            if let Some(m) = additive {
                scores = scores.broadcast_add(m)?;
            }
            let scores = self.blk(l, B::AttnScores, scores)?;
            let pattern = softmax_last(&scores)?;
            match mask {
                // TL: torch.where(isnan(pattern), 0, pattern): NaN ≠ NaN.
                Some((_, true)) => pattern.eq(&pattern)?.where_cond(&pattern, &pattern.zeros_like()?)?,
                _ => pattern,
            }
        };
        let pattern = self.blk(l, B::Pattern, pattern)?;
        let pattern = if pattern.dtype() != dtype { pattern.to_dtype(dtype)? } else { pattern };
        let z = matmul_any(&pattern, &v.transpose(1, 2)?.contiguous()?)?.transpose(1, 2)?.contiguous()?; // [b, q, h, dh]
        let z = self.blk(l, B::Z, z)?;
        if cfg.use_attn_result {
            let result = self.blk(l, B::Result, attn_heads::head_results(&z, &w.w_o)?)?;
            return attn_heads::sum_heads(&result, Some(&w.b_o));
        }
        Ok(linear_to(&z, &w.w_o, Some(&w.b_o), &[b, p, cfg.d_model])?)
    }

    /// `BertBlock`: attention, residual, ln1, MLP, residual, ln2.
    fn block(&mut self, l: usize, w: &EncoderBlock, x: Tensor, mask: Option<&(Tensor, bool)>) -> Result<Tensor> {
        let resid_pre = self.blk(l, B::ResidPre, x)?;
        let input = if self.m.cfg.use_split_qkv_input {
            let h = self.m.cfg.n_heads;
            let q = self.blk(l, B::QInput, repeat_along_heads(&resid_pre, h)?)?;
            let k = self.blk(l, B::KInput, repeat_along_heads(&resid_pre, h)?)?;
            let v = self.blk(l, B::VInput, repeat_along_heads(&resid_pre, h)?)?;
            AttnInput::PerHead { q, k, v }
        } else {
            AttnInput::Shared(resid_pre.clone())
        };
        let attn_out = self.attention(l, w, &input, mask)?;
        let attn_out = self.blk(l, B::AttnOut, attn_out)?;
        let resid_mid = self.blk(l, B::ResidMid, (&resid_pre + &attn_out)?)?;
        let mlp_in = if self.m.cfg.use_hook_mlp_in { self.blk(l, B::MlpIn, resid_mid.clone())? } else { resid_mid };
        let hooks = &self.m.hooks;
        let normalized_mid = self.ln(&w.ln1, &mlp_in, hooks.block(l, B::Ln1Scale), hooks.block(l, B::Ln1Normalized))?;
        let pre = self.blk(l, B::MlpPre, linear(&normalized_mid, &w.w_in, Some(&w.b_in))?)?;
        let post = self.blk(l, B::MlpPost, gelu_erf_tensor(&pre)?)?;
        let mlp_out = self.blk(l, B::MlpOut, linear(&post, &w.w_out, Some(&w.b_out))?)?;
        let resid_post = self.blk(l, B::ResidPost, (&normalized_mid + &mlp_out)?)?;
        let hooks = &self.m.hooks;
        let out = self.ln(&w.ln2, &resid_post, hooks.block(l, B::Ln2Scale), hooks.block(l, B::Ln2Normalized))?;
        self.blk(l, B::NormalizedResidPost, out)
    }

    fn mlm(&mut self, resid: &Tensor) -> Result<Tensor> {
        let m = self.m.weights.mlm.as_ref().ok_or_else(|| no_head("MLM"))?;
        let x = gelu_erf_tensor(&linear(resid, &m.w, Some(&m.b))?)?;
        let x = self.ln(&m.ln, &x, self.m.hooks.top(T::MlmLnScale), self.m.hooks.top(T::MlmLnNormalized))?;
        Ok(linear(&x, &m.w_u, Some(&m.b_u))?)
    }

    fn nsp(&mut self, resid: &Tensor) -> Result<Tensor> {
        let (pooler, nsp) = need_nsp(self.m)?;
        let first = resid.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.top(T::PoolerOut, dense(&first, pooler)?.tanh()?)?;
        self.top(T::NspOut, dense(&pooled, nsp)?)
    }
}

fn dense(x: &Tensor, d: &Dense) -> Result<Tensor> {
    Ok(linear(x, &d.w, Some(&d.b))?)
}

fn no_head(which: &str) -> Error {
    let what = if which == "MLM" { "MLM head (cls.predictions.*), so it has no logits or predictions" } else { "pooler and NSP head (bert.pooler.*, cls.seq_relationship.*)" };
    Error::new(ErrorCode::MissingWeight, format!("this checkpoint has no {what}: it holds the encoder trunk only (use encoderOutput or runWithCache)"))
}

fn need_nsp(m: &HookedEncoder) -> Result<(&Dense, &Dense)> {
    match (&m.weights.pooler, &m.weights.nsp) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(no_head("NSP")),
    }
}

/// The pooler alone (TL's `model.pooler`): `tanh(resid[:, 0] @ W + b)`, `[batch, d_model]`.
pub fn pooler(m: &HookedEncoder, resid: &Tensor) -> Result<Tensor> {
    let p = m.weights.pooler.as_ref().ok_or_else(|| no_head("NSP"))?;
    dense(&resid.narrow(1, 0, 1)?.squeeze(1)?, p)?.tanh().map_err(Into::into)
}

/// The NSP head alone (TL's `model.nsp_head`): `[batch, 2]`.
pub fn nsp_head(m: &HookedEncoder, pooled: &Tensor) -> Result<Tensor> {
    dense(pooled, need_nsp(m)?.1)
}

/// Runs the encoder on `input` and then `head`, firing hooks through `taps`.
pub fn forward(m: &HookedEncoder, input: &EncoderInput, head: Head, taps: &mut Taps) -> Result<Tensor> {
    match head {
        Head::Mlm if m.weights.mlm.is_none() => return Err(no_head("MLM")),
        Head::Nsp => {
            need_nsp(m)?;
        }
        _ => {}
    }
    let cfg = &m.cfg;
    let (b, p, tokens) = ids(input.tokens, "tokens")?;
    if p == 0 || b == 0 {
        return Err(Error::shape("tokens must have at least one row and one position"));
    }
    if p > cfg.n_ctx {
        return Err(Error::shape(format!("sequence length {p} exceeds the model's n_ctx {}", cfg.n_ctx)));
    }
    check_range(&tokens, cfg.d_vocab, "tokens")?;
    let types = match input.token_type_ids {
        Some(t) => {
            let v = same_shape(t, "token_type_ids", b, p)?;
            check_range(&v, m.weights.w_token_type.dim(0)?, "token_type_ids")?;
            Some(v)
        }
        None => None,
    };
    let mask = match input.mask {
        Some(t) => Some(additive_mask(&same_shape(t, "one_zero_attention_mask", b, p)?, b, p, &m.device)?),
        None => None,
    };
    let mut run = Run { m, taps };
    let mut x = run.embed(&tokens, types.as_deref(), b, p)?;
    for (l, w) in m.weights.blocks.iter().enumerate() {
        if input.abort.is_some_and(|a| a.load(Ordering::Relaxed)) {
            return Err(Error::new(ErrorCode::Aborted, "the forward pass was aborted"));
        }
        x = run.block(l, w, x, mask.as_ref())?;
    }
    match head {
        Head::Trunk => Ok(x),
        Head::Mlm => run.mlm(&x),
        Head::Nsp => run.nsp(&x),
    }
}
