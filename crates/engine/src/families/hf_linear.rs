//! The conversions of HF checkpoints to the compute layout that families share: `nn.Linear`
//! `[out, in]` weights, separate Q/K/V projections, LayerNorm / RMSNorm weights, TL's zero
//! biases.

use candle_core::Tensor;

use crate::error::Result;
use crate::load::spec::Checked;
use crate::model::weights::NormWeights;

/// `[out, in]` → `[in, out]`, in its own storage.
pub fn t(x: Tensor) -> Result<Tensor> {
    Ok(crate::kernels::transpose::transposed(&x)?)
}

/// Q, K and V projections (`[n_heads * d_head, d_model]` each, rows `(head, d_head)`, TL's
/// `(i h) m -> i m h`) → the fused `w_qkv: [d_model, 3 * n_heads * d_head]`, in one buffer.
pub fn qkv_columns(q: Tensor, k: Tensor, v: Tensor) -> Result<Tensor> {
    t(Tensor::cat(&[q, k, v], 0)?)
}

/// An RMSNorm's weight `name` (no bias).
pub fn rms_norm(w: &Checked, name: &str) -> Result<NormWeights> {
    Ok(NormWeights { w: Some(w.get(name)?), b: None })
}

/// A LayerNorm's `{name}.weight` and `{name}.bias`.
pub fn layer_norm(w: &Checked, name: &str) -> Result<NormWeights> {
    Ok(NormWeights { w: Some(w.get(&format!("{name}.weight"))?), b: Some(w.get(&format!("{name}.bias"))?) })
}

/// `n` zeros in the dtype and on the device of `like` (TL's zero biases).
pub fn zeros(n: usize, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros(n, like.dtype(), like.device())?)
}
