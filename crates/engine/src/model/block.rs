//! One transformer block, firing hooks in TL's order (`TransformerBlock.forward`).

use candle_core::Tensor;

use crate::error::Result;
use crate::model::attention::{self, AttnInput};
use crate::model::attn_heads::repeat_along_heads as repeat_heads;
use crate::model::hooks::{BlockHook, Taps};
use crate::model::kv_cache::KvEntry;
use crate::model::mask::MaskPlan;
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::transformer::Arch;
use crate::model::weights::BlockWeights;

/// Shortformer positions join the Q and K inputs after ln1, never V (TL's `TransformerBlock`).
fn shortformer(input: AttnInput, pos: &Tensor) -> Result<AttnInput> {
    Ok(match input {
        AttnInput::Shared(x) => {
            let q = (&x + pos)?;
            AttnInput::Separate { k: q.clone(), q, v: x }
        }
        AttnInput::Separate { q, k, v } => AttnInput::Separate { q: (q + pos)?, k: (k + pos)?, v },
        AttnInput::PerHead { q, k, v } => {
            let p = pos.unsqueeze(2)?;
            AttnInput::PerHead { q: q.broadcast_add(&p)?, k: k.broadcast_add(&p)?, v }
        }
    })
}

/// TL's `ln1_post` / `ln2_post` (`use_normalization_before_and_after`): an RMSNorm with its own
/// weight on a sublayer's output, before `hook_attn_out` / `hook_mlp_out`; `x` itself without.
fn post_norm(arch: &Arch, layer: usize, w: &BlockWeights, mlp: bool, x: Tensor, taps: &mut Taps) -> Result<Tensor> {
    let Some(pn) = &w.post_norms else { return Ok(x) };
    let (weights, [scale, normalized]) = if mlp {
        (&pn.mlp, [BlockHook::Ln2PostScale, BlockHook::Ln2PostNormalized])
    } else {
        (&pn.attn, [BlockHook::Ln1PostScale, BlockHook::Ln1PostNormalized])
    };
    let hooks = NormHooks { scale: taps.table.block(layer, scale), normalized: taps.table.block(layer, normalized) };
    norm::apply(NormKind::RMS, weights, arch.cfg.eps, &x, hooks, taps)
}

pub fn forward(
    arch: &Arch,
    layer: usize,
    w: &BlockWeights,
    resid_pre: Tensor,
    plan: &MaskPlan,
    kv: Option<&mut KvEntry>,
    taps: &mut Taps,
) -> Result<Tensor> {
    let cfg = &arch.cfg;
    let resid_pre = taps.block(layer, BlockHook::ResidPre, resid_pre)?;
    let ln1 = NormHooks {
        scale: taps.table.block(layer, BlockHook::Ln1Scale),
        normalized: taps.table.block(layer, BlockHook::Ln1Normalized),
    };
    let ln = |x: &Tensor, taps: &mut Taps| norm::apply(arch.norm, &w.ln1, cfg.eps, x, ln1, taps);

    let input = if cfg.use_attn_in && cfg.attn_kv_heads() != cfg.n_heads {
        // TL projects its n_heads streams with the n_key_value_heads K/V weights, which fails.
        return Err(crate::error::Error::unsupported(
            "use_attn_in with grouped key/value heads needs ungroup_grouped_query_attention (as in TL)",
        ));
    } else if cfg.use_attn_in {
        let attn_in = taps.block(layer, BlockHook::AttnIn, repeat_heads(&resid_pre, cfg.n_heads)?)?;
        let n = ln(&attn_in, taps)?;
        AttnInput::PerHead { q: n.clone(), k: n.clone(), v: n }
    } else if cfg.use_split_qkv_input {
        let q_in = taps.block(layer, BlockHook::QInput, repeat_heads(&resid_pre, cfg.n_heads)?)?;
        // K and V read one stream per K/V head, as TL.
        let k_in = taps.block(layer, BlockHook::KInput, repeat_heads(&resid_pre, cfg.attn_kv_heads())?)?;
        let v_in = taps.block(layer, BlockHook::VInput, repeat_heads(&resid_pre, cfg.attn_kv_heads())?)?;
        // TL applies ln1 to each input in turn, so its hooks fire three times.
        let q = ln(&q_in, taps)?;
        let k = ln(&k_in, taps)?;
        let v = ln(&v_in, taps)?;
        AttnInput::PerHead { q, k, v }
    } else if taps.active(ln1.scale) || taps.active(ln1.normalized) {
        // TL normalises the one input three times (for Q, K and V), so ln1's hooks fire three
        // times and each use has its own gradient: the same here whenever they are watched.
        let q = ln(&resid_pre, taps)?;
        let k = ln(&resid_pre, taps)?;
        let v = ln(&resid_pre, taps)?;
        AttnInput::Separate { q, k, v }
    } else {
        AttnInput::Shared(ln(&resid_pre, taps)?)
    };
    let input = match plan.shortformer_pos.get() {
        Some(pos) => shortformer(input, pos)?,
        None => input,
    };
    let attn_out = attention::forward(arch, layer, w, input, plan, kv, taps)?;
    let attn_out = post_norm(arch, layer, w, false, attn_out, taps)?;
    let attn_out = taps.block(layer, BlockHook::AttnOut, attn_out)?;

    let Some(mlp_w) = &w.mlp else {
        return taps.block(layer, BlockHook::ResidPost, (resid_pre + attn_out)?);
    };
    let ln2 = NormHooks {
        scale: taps.table.block(layer, BlockHook::Ln2Scale),
        normalized: taps.table.block(layer, BlockHook::Ln2Normalized),
    };
    if cfg.parallel_attn_mlp {
        let mlp_in = if cfg.use_hook_mlp_in { taps.block(layer, BlockHook::MlpIn, resid_pre.clone())? } else { resid_pre.clone() };
        let n2 = norm::apply(arch.norm, &w.ln2, cfg.eps, &mlp_in, ln2, taps)?;
        let mlp_out = crate::model::mlp::forward(layer, mlp_w, arch.act, cfg.eps, cfg.experts_per_token.unwrap_or(0), &n2, taps)?;
        let mlp_out = post_norm(arch, layer, w, true, mlp_out, taps)?;
        let mlp_out = taps.block(layer, BlockHook::MlpOut, mlp_out)?;
        return taps.block(layer, BlockHook::ResidPost, ((resid_pre + attn_out)? + mlp_out)?);
    }
    let resid_mid = taps.block(layer, BlockHook::ResidMid, (resid_pre + attn_out)?)?;
    let mlp_in = if cfg.use_hook_mlp_in { taps.block(layer, BlockHook::MlpIn, resid_mid.clone())? } else { resid_mid.clone() };
    let n2 = norm::apply(arch.norm, &w.ln2, cfg.eps, &mlp_in, ln2, taps)?;
    let mlp_out = crate::model::mlp::forward(layer, mlp_w, arch.act, cfg.eps, cfg.experts_per_token.unwrap_or(0), &n2, taps)?;
    let mlp_out = post_norm(arch, layer, w, true, mlp_out, taps)?;
    let mlp_out = taps.block(layer, BlockHook::MlpOut, mlp_out)?;
    taps.block(layer, BlockHook::ResidPost, (resid_mid + mlp_out)?)
}
