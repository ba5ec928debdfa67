//! The MLP with TL's hook points: the standard one (`hook_pre`, `hook_post`) and the gated one
//! (`GatedMLP`: `hook_pre` on the gate, `hook_pre_linear`, `hook_post`).

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels::gated::silu_mul_add;
use crate::kernels::linear::linear;
use crate::model::activation::Activation;
use crate::model::hooks::{BlockHook, Taps};
use crate::model::weights::MlpWeights;

pub fn forward(layer: usize, w: &MlpWeights, act: Activation, x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
    let post = match &w.w_gate {
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
                None => (act.apply(&pre)? * pre_linear)?.broadcast_add(&w.b_in)?,
            }
        }
    };
    let post = taps.block(layer, BlockHook::MlpPost, post)?;
    Ok(linear(&post, &w.w_out, Some(&w.b_out))?)
}
