//! The MLP with TL's hook points: the standard one (`hook_pre`, `hook_post`) and the gated one
//! (`GatedMLP`: `hook_pre` on the gate, `hook_pre_linear`, `hook_post`).

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels::gated::silu_mul_add;
use crate::kernels::linear::linear;
use crate::model::activation::Activation;
use crate::model::hooks::{BlockHook, Taps};
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::weights::{MlpWeights, NormWeights};

/// `eps`: the norm of a layer-norm activation (`solu_ln`: TL's `mlp.ln` over d_mlp, a
/// LayerNorm with `w.ln`'s weights in an unfolded LayerNorm model, else a LayerNormPre; its
/// hooks fire between `hook_mid` and `hook_post`).
/// `experts_per_token`: TL's MoE (`w.router`) routes each token to that many experts.
pub fn forward(layer: usize, w: &MlpWeights, act: Activation, eps: f64, experts_per_token: usize, x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
    if let Some(router) = &w.router {
        return crate::model::moe::forward(layer, w, router, act, experts_per_token, x, taps);
    }
    let post = match &w.w_gate {
        None if act.has_ln() => {
            let pre = taps.block(layer, BlockHook::MlpPre, linear(x, &w.w_in, Some(&w.b_in))?)?;
            let mid = taps.block(layer, BlockHook::MlpMid, act.apply(&pre)?)?;
            let hooks = NormHooks { scale: taps.table.block(layer, BlockHook::MlpLnScale), normalized: taps.table.block(layer, BlockHook::MlpLnNormalized) };
            match &w.ln {
                Some(ln) => norm::apply(NormKind::LN, ln, eps, &mid, hooks, taps)?,
                None => norm::apply(NormKind::LNPre, &NormWeights::default(), eps, &mid, hooks, taps)?,
            }
        }
        None => {
            let pre = taps.block(layer, BlockHook::MlpPre, linear(x, &w.w_in, Some(&w.b_in))?)?;
            act.apply(&pre)?
        }
        Some(w_gate) => {
            let pre = taps.block(layer, BlockHook::MlpPre, linear(x, w_gate, None)?)?;
            let pre_linear = taps.block(layer, BlockHook::MlpPreLinear, linear(x, &w.w_in, None)?)?;
            let fused = if act == Activation::Silu { silu_mul_add(&pre, &pre_linear, &w.b_in)? } else { None };
            match fused {
                Some(y) => y,
                None => crate::kernels::row_ops::add_row(&(act.apply(&pre)? * pre_linear)?, &w.b_in)?,
            }
        }
    };
    let post = taps.block(layer, BlockHook::MlpPost, post)?;
    Ok(linear(&post, &w.w_out, Some(&w.b_out))?)
}
