//! TL's LayerNorm arithmetic in one pass per row: centre, `scale = sqrt(mean(c²) + eps)`,
//! `c / scale` (then `* w + b` when given). Two-pass centring, as TL, not `E[x²] - mean²`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported};

struct LayerNormPre {
    eps: f32,
    /// Weight and bias (contiguous, length d) for an un-folded LayerNorm.
    affine: Option<(Vec<f32>, Vec<f32>)>,
}

fn lanes_sum(v: &[f32]) -> f32 {
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

impl CustomOp1 for LayerNormPre {
    fn name(&self) -> &'static str {
        "tl-layer-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("layer_norm") };
        let d = *l.shape().dims().last().unwrap_or(&1);
        let mut dst = vec![0f32; src.len()];
        if d == 0 {
            return Ok((CpuStorage::F32(dst), l.shape().clone()));
        }
        for (x, y) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
            let mean = lanes_sum(x) / d as f32;
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = xi - mean;
            }
            let sq: Vec<f32> = y.iter().map(|c| c * c).collect();
            let inv = 1.0 / (lanes_sum(&sq) / d as f32 + self.eps).sqrt();
            match &self.affine {
                None => y.iter_mut().for_each(|c| *c *= inv),
                Some((w, b)) => {
                    for ((c, wi), bi) in y.iter_mut().zip(w).zip(b) {
                        *c = *c * inv * wi + bi;
                    }
                }
            }
        }
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// Fused LayerNorm over the last dim for contiguous f32 CPU tensors; None when the caller must
/// use the op-by-op path.
pub fn layer_norm_fused(x: &Tensor, eps: f64, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.is_contiguous()) {
        return Ok(None);
    }
    let affine = match (w, b) {
        (Some(w), Some(b)) => Some((w.to_dtype(candle_core::DType::F32)?.to_vec1()?, b.to_dtype(candle_core::DType::F32)?.to_vec1()?)),
        (None, None) => None,
        _ => return Ok(None),
    };
    Ok(Some(x.apply_op1_no_bwd(&LayerNormPre { eps: eps as f32, affine })?))
}
