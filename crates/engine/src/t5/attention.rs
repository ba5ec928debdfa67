//! T5 attention (TL's `T5Attention` through `AbstractAttention.forward`): no score scaling, an
//! additive term (relative position bias, causal and padding masks) before `hook_attn_scores`,
//! no biases (TL's are zeros), with TL's hook points.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::kernels::attn_softmax;
use crate::kernels::gemm16::matmul_any;
use crate::kernels::linear::linear_to;
use crate::kernels::softmax::softmax_last;
use crate::model::attention::{to_score_dtype, AttnInput};
use crate::model::attn_heads;
use crate::model::config::Config;
use crate::model::hooks::Taps;
use crate::model::kv_cache::KvEntry;

/// The hook ids of one attention module: q, k, v, attn_scores, pattern, z, result.
#[derive(Clone, Copy)]
pub struct AttnHooks {
    pub q: Option<usize>,
    pub k: Option<usize>,
    pub v: Option<usize>,
    pub scores: Option<usize>,
    pub pattern: Option<usize>,
    pub z: Option<usize>,
    pub result: Option<usize>,
}

/// `x: [batch, pos, d_model]` through columns `start..start + h·d_head` of `w` →
/// `[batch, pos, h, d_head]`.
pub fn project(x: &Tensor, w: &Tensor, start: usize, cfg: &Config) -> Result<Tensor> {
    let (b, p, _) = x.dims3()?;
    let width = cfg.n_heads * cfg.d_head;
    let wm = w.narrow(1, start, width)?;
    // The CPU gemm reads the strided column block in place; cuBLAS takes dense matrices only.
    let wm = if wm.device().is_cpu() { wm } else { wm.contiguous()? };
    Ok(linear_to(x, &wm, None, &[b, p, cfg.n_heads, cfg.d_head])?)
}

/// Q (`which` 0), K (1) or V (2) of a self-attention input (through the fused `w`), or Q of a
/// cross-attention's: `[batch, pos, heads, d_head]`, per head when the input has one stream per
/// head (TL's `complex_attn_linear`).
fn project_input(input: &AttnInput, w: &Tensor, which: usize, cfg: &Config) -> Result<Tensor> {
    let start = which * cfg.n_heads * cfg.d_head;
    match input {
        AttnInput::Shared(x) => project(x, w, start, cfg),
        AttnInput::Separate { q, k, v } => project([q, k, v][which], w, start, cfg),
        AttnInput::PerHead { q, k, v } => attn_heads::project_per_head([q, k, v][which], w, None, start, cfg.n_heads, cfg.d_head),
    }
}

/// Keys and values as attention reads them: `[batch, heads, key, d_head]`.
#[derive(Clone)]
pub struct Kv {
    pub k: Tensor,
    pub v: Tensor,
}

/// Where this attention's keys and values come from.
pub enum KvSource<'a> {
    /// Self-attention: K and V of the query input (columns after Q of the fused weight),
    /// appended to a decoder KV cache entry when there is one.
    Own(Option<&'a mut KvEntry>),
    /// Cross-attention: the encoder output and the fused K/V weight, projected here (firing
    /// the k/v hooks)...
    Encoder(&'a Tensor, &'a Tensor),
    /// ...or K and V projected earlier (a generation's later steps).
    Cached(&'a Kv),
}

/// Projects the encoder output through the cross-attention's fused K/V weight, firing the k/v
/// hooks on `[batch, pos, heads, d_head]` as TL's.
pub fn cross_kv(enc: &Tensor, w_kv: &Tensor, cfg: &Config, hooks: &AttnHooks, taps: &mut Taps) -> Result<Kv> {
    let k = taps.fire(hooks.k, project(enc, w_kv, 0, cfg)?)?;
    let v = taps.fire(hooks.v, project(enc, w_kv, cfg.n_heads * cfg.d_head, cfg)?)?;
    Ok(Kv { k: k.transpose(1, 2)?.contiguous()?, v: v.transpose(1, 2)?.contiguous()? })
}

/// One attention: `input` is the normalised query input `[batch, q, d_model]` (with TL's
/// split-input flags, one per Q/K/V, per head `[batch, q, heads, d_model]`; only Q's is read
/// for a cross-attention); `w_q` has Q in its first columns (self-attention: then K and V); `w_o: [h·d_head, d_model]`; `additive`: `[1 or batch, 1 or heads, q, k]`,
/// added to the raw scores (bias and masks, -inf or the dtype's minimum where masked).
/// Returns the output `[batch, q, d_model]`, and the cross-attention's K/V when it projected them
/// from the encoder output (for a generation to reuse).
#[allow(clippy::too_many_arguments)] // the module's parts, as TL's forward takes them
pub fn forward(
    cfg: &Config,
    input: &AttnInput,
    w_q: &Tensor,
    w_o: &Tensor,
    source: KvSource,
    additive: &Tensor,
    hooks: &AttnHooks,
    taps: &mut Taps,
) -> Result<(Tensor, Option<Kv>)> {
    let q = taps.fire(hooks.q, project_input(input, w_q, 0, cfg)?)?;
    let (b, p, _, _) = q.dims4()?;
    let owned;
    let mut fresh_cross = false;
    let kv: &Kv = match source {
        KvSource::Own(entry) => {
            let k = taps.fire(hooks.k, project_input(input, w_q, 1, cfg)?)?;
            let v = taps.fire(hooks.v, project_input(input, w_q, 2, cfg)?)?;
            owned = match entry {
                Some(e) => {
                    let (k, v) = e.append(&k, &v)?;
                    Kv { k, v }
                }
                None => Kv { k: k.transpose(1, 2)?.contiguous()?, v: v.transpose(1, 2)?.contiguous()? },
            };
            &owned
        }
        KvSource::Encoder(enc, w_kv) => {
            owned = cross_kv(enc, w_kv, cfg, hooks, taps)?;
            fresh_cross = true;
            &owned
        }
        KvSource::Cached(kv) => kv,
    };
    let k_len = kv.k.dim(2)?;
    let (ab, ah, aq, ak) = additive.dims4()?;
    if (ab != 1 && ab != b) || (ah != 1 && ah != cfg.n_heads) || aq != p || ak != k_len {
        return Err(Error::shape(format!("the attention mask/bias {:?} does not fit scores [{b}, {}, {p}, {k_len}]", additive.dims(), cfg.n_heads)));
    }
    // A 16-bit model's scores and pattern are float32, as TL's AbstractAttention computes them
    // (q and k upcast; the bias and masks join in float32); the pattern is cast back for `@ v`.
    let dtype = q.dtype();
    let q_ = to_score_dtype(q.transpose(1, 2)?.contiguous()?)?; // [b, h, q, dh]
    let raw = q_.matmul(&to_score_dtype(kv.k.clone())?.transpose(2, 3)?)?; // [b, h, q, k]
    let additive = &(if additive.dtype() == raw.dtype() { additive.clone() } else { additive.to_dtype(raw.dtype())? });
    let pattern = if taps.active(hooks.scores) || !attn_softmax::fusable(&raw, Some(additive)) {
        let scores = taps.fire(hooks.scores, raw.broadcast_add(additive)?)?;
        softmax_last(&scores)?
    } else {
        // Nothing observes the scores: bias, mask and softmax in one pass over the product.
        attn_softmax::scale_mask_softmax_(&raw, 1.0, Some(additive))?;
        raw
    };
    let pattern = taps.fire(hooks.pattern, pattern)?;
    let pattern = if pattern.dtype() == dtype { pattern } else { pattern.to_dtype(dtype)? };
    let z = matmul_any(&pattern, &kv.v)?.transpose(1, 2)?.contiguous()?; // [b, q, h, dh]
    let z = taps.fire(hooks.z, z)?;
    let out = if cfg.use_attn_result {
        // TL's b_O is zeros: the sum of the heads' results alone.
        let result = taps.fire(hooks.result, attn_heads::head_results(&z, w_o)?)?;
        attn_heads::sum_heads(&result, None)?
    } else {
        linear_to(&z, w_o, None, &[b, p, cfg.d_model])?
    };
    let cross = if fresh_cross { Some(Kv { k: kv.k.clone(), v: kv.v.clone() }) } else { None };
    Ok((out, cross))
}
