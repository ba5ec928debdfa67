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

/// HF's separate `{prefix}{q,k,v}_proj` projections with their biases: the fused
/// `(w_qkv, b_qkv)`.
pub fn qkv_with_biases(w: &Checked, prefix: &str) -> Result<(Tensor, Tensor)> {
    let get = |p: &str, s: &str| w.get(&format!("{prefix}{p}_proj.{s}"));
    let weights = qkv_columns(get("q", "weight")?, get("k", "weight")?, get("v", "weight")?)?;
    Ok((weights, Tensor::cat(&[get("q", "bias")?, get("k", "bias")?, get("v", "bias")?], 0)?))
}

/// An RMSNorm's weight `name` (no bias).
pub fn rms_norm(w: &Checked, name: &str) -> Result<NormWeights> {
    Ok(NormWeights { w: Some(w.get(name)?), b: None })
}

/// A LayerNorm's `{name}.weight` and `{name}.bias`.
pub fn layer_norm(w: &Checked, name: &str) -> Result<NormWeights> {
    Ok(NormWeights { w: Some(w.get(&format!("{name}.weight"))?), b: Some(w.get(&format!("{name}.bias"))?) })
}

/// An `nn.Linear`: `{name}.weight` in the compute layout (`[in, out]`) and `{name}.bias`.
pub fn linear(w: &Checked, name: &str) -> Result<(Tensor, Tensor)> {
    Ok((w.get_t(&format!("{name}.weight"))?, w.get(&format!("{name}.bias"))?))
}

/// A GPT-2 `Conv1D` (its weight already `[in, out]`) and its bias.
pub fn conv1d(w: &Checked, name: &str) -> Result<(Tensor, Tensor)> {
    Ok((w.get(&format!("{name}.weight"))?, w.get(&format!("{name}.bias"))?))
}

/// W_U: an untied checkpoint's `lm_head.weight` transposed, else (tied) a view of W_E
/// transposed; processing gives W_E its own copy before writing either.
pub fn unembed(w: &Checked, w_e: &Tensor) -> Result<Tensor> {
    unembed_from(w, "lm_head.weight", w_e)
}

/// [`unembed`] for a checkpoint whose output embedding is `name` (GPT-NeoX's `embed_out.weight`).
pub fn unembed_from(w: &Checked, name: &str, w_e: &Tensor) -> Result<Tensor> {
    Ok(if w.has(name) { w.get_t(name)? } else { w_e.t()? })
}

/// `n` zeros in the dtype and on the device of `like` (TL's zero biases).
pub fn zeros(n: usize, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros(n, like.dtype(), like.device())?)
}
