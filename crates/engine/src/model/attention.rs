//! Multi-head attention on the fused QKV layout, with TL's hook points.

use candle_core::{DType, Tensor, D};

use crate::error::Result;
use crate::kernels::attn_products;
use crate::kernels::attn_softmax;
use crate::kernels::decode_attn;
use crate::kernels::gemm16::matmul_any;
use crate::kernels::linear::{linear, linear_to};
use crate::kernels::mask_fill::mask_fill;
use crate::kernels::rotary::rotate;
use crate::kernels::skinny::MAX_ROWS;
use crate::kernels::softmax::softmax_last;
use crate::model::attn_heads;
use crate::model::config::Config;
use crate::model::hooks::{BlockHook, Taps};
use crate::model::kv_cache::KvEntry;
use crate::model::mask::MaskPlan;
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::rotary;
use crate::model::transformer::Arch;
use crate::model::weights::{BlockWeights, NormWeights};

/// The attention inputs: one normalized stream shared by Q, K and V, or one per head
/// (`[batch, pos, n_heads, d_model]`) per projection when TL's split-input flags are on.
pub enum AttnInput {
    Shared(Tensor),
    /// One `[batch, pos, d_model]` stream per projection (TL's three ln1 calls).
    Separate { q: Tensor, k: Tensor, v: Tensor },
    PerHead { q: Tensor, k: Tensor, v: Tensor },
}

/// Where Q (0), K (1) or V (2) sits in the fused `w_qkv` columns: first column and heads.
fn part(cfg: &Config, which: usize) -> (usize, usize) {
    let (h, kv, dh) = (cfg.n_heads, cfg.kv_heads(), cfg.d_head);
    match which {
        0 => (0, h),
        1 => (h * dh, kv),
        _ => ((h + kv) * dh, kv),
    }
}

/// `x: [batch, pos, d_model]` → `[batch, pos, heads, d_head]` for one of Q (0), K (1), V (2).
fn project_shared(x: &Tensor, w: &BlockWeights, cfg: &Config, which: usize) -> Result<Tensor> {
    let (b, p, _) = x.dims3()?;
    let (start, heads) = part(cfg, which);
    let width = heads * cfg.d_head;
    let wm = w.w_qkv.narrow(1, start, width)?;
    // The CPU gemm reads the strided column block in place; cuBLAS takes dense matrices only.
    let wm = if wm.device().is_cpu() { wm } else { wm.contiguous()? };
    let bias = w.b_qkv.narrow(0, start, width)?;
    Ok(linear_to(x, &wm, Some(&bias), &[b, p, heads, cfg.d_head])?)
}

/// Q, K and V from one product with the whole `w_qkv`.
fn project_fused(x: &Tensor, w: &BlockWeights, cfg: &Config) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, p, _) = x.dims3()?;
    let y = linear(x, &w.w_qkv, Some(&w.b_qkv))?;
    let take = |which: usize| -> Result<Tensor> {
        let (start, heads) = part(cfg, which);
        Ok(y.narrow(2, start, heads * cfg.d_head)?.contiguous()?.reshape((b, p, heads, cfg.d_head))?)
    };
    Ok((take(0)?, take(1)?, take(2)?))
}

/// TL's `complex_attn_linear` for Q (0), K (1) or V (2): one input per head.
fn project_per_head(x: &Tensor, w: &BlockWeights, cfg: &Config, which: usize) -> Result<Tensor> {
    let (start, heads) = part(cfg, which);
    attn_heads::project_per_head(x, &w.w_qkv, Some(&w.b_qkv), start, heads, cfg.d_head)
}

/// TL's `repeat_interleave(x, n, dim=2)` on `[batch, pos, heads, d_head]`.
fn repeat_heads(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, p, h, dh) = x.dims4()?;
    Ok(x.unsqueeze(3)?.broadcast_as((b, p, h, n, dh))?.contiguous()?.reshape((b, p, h * n, dh))?)
}

/// TL's q/k norm (`use_qk_norm`): an RMSNorm over `d_head` with its own weight, applied to every
/// head of `x: [batch, pos, heads, d_head]` as TL's `_apply_qk_norm` does, on the rows of
/// `[batch * pos * heads, d_head]` (the shapes its hooks see).
fn qk_norm(x: Tensor, weight: &Tensor, eps: f64, layer: usize, hooks: [BlockHook; 2], taps: &mut Taps) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let dh = x.dim(D::Minus1)?;
    let rows = x.reshape((x.elem_count() / dh.max(1), dh))?;
    let hooks = NormHooks { scale: taps.table.block(layer, hooks[0]), normalized: taps.table.block(layer, hooks[1]) };
    let w = NormWeights { w: Some(weight.clone()), b: None };
    Ok(norm::apply(NormKind::RMS, &w, eps, &rows, hooks, taps)?.reshape(dims)?)
}

/// The dtype TL computes attention scores and patterns in: float32 for a 16-bit model (its
/// AbstractAttention upcasts q and k), the model's own otherwise.
pub fn score_dtype(dtype: DType) -> DType {
    if matches!(dtype, DType::F32 | DType::F64) { dtype } else { DType::F32 }
}

/// `t` in [`score_dtype`] of its own dtype (unchanged when already there).
pub fn to_score_dtype(t: Tensor) -> Result<Tensor> {
    let want = score_dtype(t.dtype());
    Ok(if t.dtype() == want { t } else { t.to_dtype(want)? })
}

/// TL's `hook_attn_scores` input: `q·k / scale`, soft-capped where the config says, plus the
/// ALiBi bias where there is one, masked.
fn masked_scores(cfg: &Config, layer: usize, raw: Tensor, plan: &MaskPlan, alibi: Option<&Tensor>, grad: bool) -> Result<Tensor> {
    finish_scores(cfg, (raw / cfg.attn_scale_for_layer(layer))?, plan, alibi, grad)
}

/// [`masked_scores`] from the scaled product on.
fn finish_scores(cfg: &Config, mut scores: Tensor, plan: &MaskPlan, alibi: Option<&Tensor>, grad: bool) -> Result<Tensor> {
    if cfg.attn_scores_soft_cap > 0.0 {
        let c = cfg.attn_scores_soft_cap;
        scores = ((scores / c)?.tanh()? * c)?;
    }
    if let Some(bias) = alibi {
        scores = scores.broadcast_add(bias)?;
    }
    // The plan holds a mask only for causal attention (TL ignores padding otherwise).
    if let Some(mask) = &plan.additive {
        scores = match if grad { plan.keep()? } else { None } {
            // As TL's torch.where: masked scores pass no gradient on (an addition would carry
            // the NaN gradients of fully masked rows back into Q and K).
            Some(keep) => mask_fill(&scores, keep, f64::NEG_INFINITY)?,
            None => scores.broadcast_add(mask)?,
        };
    }
    Ok(scores)
}

/// `hook_pattern`'s input `[b, h, q, k]`: the scores `q·k` (`q` `[b, q, h, dh]`, `k_all` `[b,
/// kv, k, dh]`) in f32, scaled, soft-capped, biased and masked (`hook_attn_scores` sees them),
/// then softmax; or, when nothing observes the scores, scale, mask and softmax fused.
#[allow(clippy::too_many_arguments)]
fn pattern(cfg: &Config, layer: usize, q: &Tensor, k_all: Tensor, plan: &MaskPlan, alibi: Option<&Tensor>, fused_mask: Option<&Tensor>, inv_scale: f32, taps: &mut Taps) -> Result<Tensor> {
    let (b, p, h, _) = q.dims4()?;
    let k_len = k_all.dim(2)?;
    // Grouped K/V heads: the g query heads of a group read one K/V head, as TL's
    // repeat_interleave, without repeating K or V: [b, kv, g·q, dh] against [b, kv, dh, k].
    let groups = h / k_all.dim(1)?;
    let q_ = to_score_dtype(q.transpose(1, 2)?.contiguous()?)?; // [b, h, q, dh]
    let q_ = if groups > 1 { q_.reshape((b, h / groups, groups * p, q_.dim(3)?))? } else { q_ };
    let k_t = to_score_dtype(k_all)?.transpose(2, 3)?; // [b, kv, dh, k]
    let raw = q_.matmul(&k_t)?;
    let raw = if groups > 1 { raw.reshape((b, h, p, k_len))? } else { raw };
    let fuse = !taps.block_active(layer, BlockHook::AttnScores) && attn_softmax::fusable(&raw, fused_mask);
    let pattern = if fuse {
        // Nothing observes the scores: scale, soft cap, mask and softmax in one pass over the product.
        let cap = (cfg.attn_scores_soft_cap > 0.0).then(|| attn_softmax::SoftCap::new(cfg.attn_scores_soft_cap));
        attn_softmax::capped_scale_mask_softmax_(&raw, inv_scale, cap, fused_mask)?;
        raw
    } else {
        let scores = masked_scores(cfg, layer, raw, plan, alibi, taps.grad_mode())?;
        let scores = taps.block(layer, BlockHook::AttnScores, scores)?;
        let mut pattern = softmax_last(&scores)?;
        if let Some(live) = &plan.live_rows {
            // A query with nothing to attend to gets a zero pattern, as TL's NaN → 0.
            pattern = mask_fill(&pattern, live, 0.0)?;
        }
        pattern
    };
    taps.block(layer, BlockHook::Pattern, pattern)
}

pub fn forward(
    arch: &Arch,
    layer: usize,
    w: &BlockWeights,
    input: AttnInput,
    plan: &MaskPlan,
    kv: Option<&mut KvEntry>,
    taps: &mut Taps,
) -> Result<Tensor> {
    let cfg = &arch.cfg;
    let (h, kv_heads) = (cfg.n_heads, cfg.kv_heads());
    let (q, k, v) = match &input {
        // On a GPU one product for Q, K and V beats three narrow ones, and so it does for a
        // decode step's few rows on the CPU (one contiguous stream of W_QKV instead of three
        // strided ones, one split between the cores instead of three; the same sums).
        AttnInput::Shared(x) if !x.device().is_cpu() || x.elem_count() / cfg.d_model.max(1) <= MAX_ROWS => project_fused(x, w, cfg)?,
        AttnInput::Shared(x) => (project_shared(x, w, cfg, 0)?, project_shared(x, w, cfg, 1)?, project_shared(x, w, cfg, 2)?),
        AttnInput::Separate { q, k, v } => (project_shared(q, w, cfg, 0)?, project_shared(k, w, cfg, 1)?, project_shared(v, w, cfg, 2)?),
        AttnInput::PerHead { q, k, v } => (project_per_head(q, w, cfg, 0)?, project_per_head(k, w, cfg, 1)?, project_per_head(v, w, cfg, 2)?),
    };
    // TL's ungroup_grouped_query_attention: K and V with every query head's copy, from the hooks on.
    let (k, v) = if cfg.attn_kv_heads() != k.dim(2)? { (repeat_heads(&k, h / kv_heads)?, repeat_heads(&v, h / kv_heads)?) } else { (k, v) };
    let q = taps.block(layer, BlockHook::Q, q)?;
    let k = taps.block(layer, BlockHook::K, k)?;
    let v = taps.block(layer, BlockHook::V, v)?;
    let (q, k) = match (&w.qk_norm, cfg.use_qk_norm) {
        (Some(n), true) => (
            qk_norm(q, &n.q, cfg.eps, layer, [BlockHook::QNormScale, BlockHook::QNormNormalized], taps)?,
            qk_norm(k, &n.k, cfg.eps, layer, [BlockHook::KNormScale, BlockHook::KNormNormalized], taps)?,
        ),
        (None, true) => return Err(crate::error::Error::invalid("use_qk_norm is set but the weights have no q/k norms")),
        _ => (q, k),
    };
    if taps.grad_mode() && kv.is_none() && attn_products::fits(&q, &k, &v) {
        let z = grad_heads(arch, layer, q, k, v, plan, taps)?;
        return output(cfg, layer, w, z, taps);
    }
    let (b, p, _, _) = q.dims4()?;
    let dtype = v.dtype();
    // [b, h, k, dh]: the new positions alone, or appended to the cached past.
    let (k_all, v_all) = match kv {
        Some(entry) => entry.append(&k, &v)?,
        None => (k.transpose(1, 2)?.contiguous()?, v.transpose(1, 2)?.contiguous()?),
    };
    let k_len = k_all.dim(2)?;
    if k_len != plan.past + p {
        return Err(crate::error::Error::invalid(format!(
            "layer {layer} sees {k_len} key positions but the run expects {} ({} cached + {p} new)",
            plan.past + p,
            plan.past
        )));
    }
    // As TL: the cache holds keys before rotation; all keys are rotated at their positions.
    let (q, k_all) = match &arch.rotary {
        Some(table) => {
            let q = rotate(&q, table, &rotary::query_positions(plan, b, p), 1)?;
            let q = taps.block(layer, BlockHook::RotQ, q)?;
            let k_all = rotate(&k_all, table, &rotary::key_positions(plan, b, k_len), 2)?;
            let k_all = if taps.block_active(layer, BlockHook::RotK) {
                // hook_rot_k sees TL's [batch, pos, head, d_head].
                let k = taps.block(layer, BlockHook::RotK, k_all.transpose(1, 2)?.contiguous()?)?;
                k.transpose(1, 2)?.contiguous()?
            } else {
                k_all
            };
            (q, k_all)
        }
        None => (q, k_all),
    };
    // Scores in f32 (f64 for an f64 model), and ALiBi folded into the additive mask (per head:
    // [rows, h, q, k]) for the fused passes.
    let score_dtype = score_dtype(dtype);
    let alibi = match &arch.alibi {
        Some(a) => Some(a.layer_bias(layer, p, plan.past + p, q.device())?.to_dtype(score_dtype)?),
        None => None,
    };
    let fused_mask = match (plan.additive.as_ref(), &alibi) {
        (Some(m), Some(a)) => Some(m.broadcast_add(a)?.contiguous()?),
        (None, Some(a)) => Some(a.clone()),
        (m, None) => m.cloned(),
    };
    let inv_scale = (1.0 / cfg.attn_scale_for_layer(layer)) as f32;
    // Nothing observes the scores or the pattern: a decode step's few queries go straight from
    // the KV cache to z.
    let observed = cfg.attn_scores_soft_cap > 0.0
        || taps.grad_mode()
        || taps.block_active(layer, BlockHook::AttnScores)
        || taps.block_active(layer, BlockHook::Pattern);
    let direct = if observed { None } else { decode_attn::attend(&q, &k_all, &v_all, fused_mask.as_ref(), inv_scale)? };
    let z = match direct {
        Some(z) => z,
        None => {
            let pattern = pattern(cfg, layer, &q, k_all, plan, alibi.as_ref(), fused_mask.as_ref(), inv_scale, taps)?;
            let pattern = if pattern.dtype() != dtype { pattern.to_dtype(dtype)? } else { pattern };
            let groups = h / v_all.dim(1)?;
            let z = if groups > 1 {
                let grouped = matmul_any(&pattern.reshape((b, h / groups, groups * p, k_len))?, &v_all)?;
                grouped.reshape((b, h, p, v_all.dim(3)?))?
            } else {
                matmul_any(&pattern, &v_all)?
            };
            z.transpose(1, 2)?.contiguous()? // [b, q, h, dh]
        }
    };
    output(cfg, layer, w, z, taps)
}

/// `hook_z` onwards: the heads' outputs through W_O (per head with `use_attn_result`).
fn output(cfg: &Config, layer: usize, w: &BlockWeights, z: Tensor, taps: &mut Taps) -> Result<Tensor> {
    let z = taps.block(layer, BlockHook::Z, z)?;
    let (b, p) = (z.dim(0)?, z.dim(1)?);
    if cfg.use_attn_result {
        let result = taps.block(layer, BlockHook::Result, attn_heads::head_results(&z, &w.w_o)?)?;
        attn_heads::sum_heads(&result, Some(&w.b_o))
    } else {
        Ok(linear_to(&z, &w.w_o, Some(&w.b_o), &[b, p, cfg.d_model])?)
    }
}

/// z for a gradient run on the CPU in f32 (no KV cache): Q, K and V stay in TL's
/// `[batch, pos, heads, d_head]` layout, K is rotated there (what `hook_rot_k` sees), and the two
/// products are one autograd node each ([`attn_products`]) instead of the transposes, reshapes
/// and batched products of the general path. The same hooks fire, in the same order.
fn grad_heads(arch: &Arch, layer: usize, q: Tensor, k: Tensor, v: Tensor, plan: &MaskPlan, taps: &mut Taps) -> Result<Tensor> {
    let cfg = &arch.cfg;
    let (b, p, _, _) = q.dims4()?;
    let (q, k) = match &arch.rotary {
        Some(table) => {
            let q = rotate(&q, table, &rotary::query_positions(plan, b, p), 1)?;
            let q = taps.block(layer, BlockHook::RotQ, q)?;
            let k = rotate(&k, table, &rotary::key_positions(plan, b, p), 1)?;
            (q, taps.block(layer, BlockHook::RotK, k)?)
        }
        None => (q, k),
    };
    let alibi = match &arch.alibi {
        Some(a) => Some(a.layer_bias(layer, p, p, q.device())?.to_dtype(DType::F32)?),
        None => None,
    };
    let scaled = match attn_products::scores(&q, &k, cfg.attn_scale_for_layer(layer))? {
        Some(s) => s,
        None => return Err(crate::error::Error::new(crate::error::ErrorCode::Hook, "a hook moved q or k off the CPU or out of float32")),
    };
    let scores = finish_scores(cfg, scaled, plan, alibi.as_ref(), true)?;
    let scores = taps.block(layer, BlockHook::AttnScores, scores)?;
    let mut pattern = softmax_last(&scores)?;
    if let Some(live) = &plan.live_rows {
        pattern = mask_fill(&pattern, live, 0.0)?;
    }
    let pattern = taps.block(layer, BlockHook::Pattern, pattern)?;
    match attn_products::mix(&pattern, &v)? {
        Some(z) => Ok(z),
        None => Err(crate::error::Error::new(crate::error::ErrorCode::Hook, "a hook moved the pattern or v off the CPU or out of float32")),
    }
}
