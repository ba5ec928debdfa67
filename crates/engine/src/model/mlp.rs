//! The standard (non-gated) MLP with TL's `hook_pre` / `hook_post`.

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels::linear::linear;
use crate::model::activation::Activation;
use crate::model::hooks::{BlockHook, Taps};
use crate::model::weights::MlpWeights;

pub fn forward(layer: usize, w: &MlpWeights, act: Activation, x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
    let pre = taps.block(layer, BlockHook::MlpPre, linear(x, &w.w_in, Some(&w.b_in))?)?;
    let post = act.apply(&pre)?;
    let post = taps.block(layer, BlockHook::MlpPost, post)?;
    Ok(linear(&post, &w.w_out, Some(&w.b_out))?)
}
