//! TL's LayerNorm arithmetic in one pass per row: centre, `scale = sqrt(mean(c²) + eps)`,
//! `c / scale` (then `* w + b` when given). Two-pass centring, as TL, not `E[x²] - mean²`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported};

struct LayerNormPre {
    eps: f32,
    /// Weight and bias (contiguous, length d) for an un-folded LayerNorm.
    affine: Option<(Vec<f32>, Vec<f32>)>,
}

pub(crate) fn lanes_sum(v: &[f32]) -> f32 {
    // Eight independent partial sums: the loop vectorises, and every path uses this order.
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

fn row_mean(x: &[f32]) -> f32 {
    lanes_sum(x) / x.len() as f32
}

/// `sqrt(mean(c²) + eps)` of a centred row.
fn row_scale(c: &[f32], eps: f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = c.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for i in 0..8 {
            acc[i] += ch[i] * ch[i];
        }
    }
    let sq = acc.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>();
    (sq / c.len() as f32 + eps).sqrt()
}

fn rows(l: &Layout) -> usize {
    *l.shape().dims().last().unwrap_or(&1)
}

impl CustomOp1 for LayerNormPre {
    fn name(&self) -> &'static str {
        "tl-layer-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("layer_norm") };
        let d = rows(l);
        let mut dst = vec![0f32; src.len()];
        if d == 0 {
            return Ok((CpuStorage::F32(dst), l.shape().clone()));
        }
        for (x, y) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
            let mean = row_mean(x);
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = xi - mean;
            }
            // The same operations, in the same order, as the hooked path (centre, scale, divide,
            // then `* w + b`), so a hook that changes nothing changes no bit.
            let scale = row_scale(y, self.eps);
            match &self.affine {
                None => y.iter_mut().for_each(|c| *c /= scale),
                Some((w, b)) => {
                    for ((c, wi), bi) in y.iter_mut().zip(w).zip(b) {
                        *c = *c / scale * wi + bi;
                    }
                }
            }
        }
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// `x - mean(x)` over the last dim.
struct Center;

impl CustomOp1 for Center {
    fn name(&self) -> &'static str {
        "tl-center"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("center") };
        let d = rows(l).max(1);
        let mut dst = vec![0f32; src.len()];
        for (x, y) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
            let mean = row_mean(x);
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = xi - mean;
            }
        }
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// `sqrt(mean(c²) + eps)` over the last dim, kept as a size-1 dim.
struct Scale {
    eps: f32,
}

impl CustomOp1 for Scale {
    fn name(&self) -> &'static str {
        "tl-ln-scale"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("ln scale") };
        let d = rows(l).max(1);
        let dst: Vec<f32> = src.chunks_exact(d).map(|c| row_scale(c, self.eps)).collect();
        let mut dims = l.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = 1;
        }
        Ok((CpuStorage::F32(dst), Shape::from(dims)))
    }
}

fn fusable(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.is_contiguous()
}

/// The centred input and its scale, computed as the fused kernel does; None when the caller
/// must use candle ops.
pub fn center_and_scale(x: &Tensor, eps: f64) -> Result<Option<(Tensor, Tensor)>> {
    if !fusable(x) {
        return Ok(None);
    }
    let c = x.apply_op1_no_bwd(&Center)?;
    let s = c.apply_op1_no_bwd(&Scale { eps: eps as f32 })?;
    Ok(Some((c, s)))
}

/// Fused LayerNorm over the last dim for contiguous f32 CPU tensors; None when the caller must
/// use the op-by-op path.
pub fn layer_norm_fused(x: &Tensor, eps: f64, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    if !fusable(x) {
        return Ok(None);
    }
    let affine = match (w, b) {
        (Some(w), Some(b)) => Some((w.to_dtype(candle_core::DType::F32)?.to_vec1()?, b.to_dtype(candle_core::DType::F32)?.to_vec1()?)),
        (None, None) => None,
        _ => return Ok(None),
    };
    Ok(Some(x.apply_op1_no_bwd(&LayerNormPre { eps: eps as f32, affine })?))
}
