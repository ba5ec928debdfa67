//! Softmax over the last dim with a backward, for gradient runs.
//!
//! candle-nn's fused softmax has no backward, and its differentiable softmax is five ops, each
//! with a backward that allocates. [`SoftmaxLast`] runs the same arithmetic as candle-nn's
//! fused kernel (so a gradient run's pattern equals a plain run's, bit for bit) and has the
//! closed-form backward `y (g - Σ g y)`.

use candle_core::cpu::kernels::VecOps;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};

use super::{f32_slice, not_supported, par_rows};

struct SoftmaxLast;

fn softmax_row(src: &[f32], dst: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    // SAFETY: both slices hold `src.len()` elements and `max`/`sum` are valid places.
    unsafe { f32::vec_reduce_max(src.as_ptr(), &mut max, src.len()) };
    for (s, d) in src.iter().zip(dst.iter_mut()) {
        *d = (*s - max).exp();
    }
    let mut sum = 0f32;
    unsafe { f32::vec_reduce_sum(dst.as_ptr(), &mut sum, dst.len()) };
    for d in dst.iter_mut() {
        *d /= sum;
    }
}

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "tl-softmax-last"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("softmax") };
        let d = *l.dims().last().unwrap_or(&1);
        let mut dst = vec![0f32; src.len()];
        if d > 0 {
            par_rows(&mut dst, d, |part, first| {
                let from = &src[first * d..first * d + part.len()];
                for (x, y) in from.chunks_exact(d).zip(part.chunks_exact_mut(d)) {
                    softmax_row(x, y);
                }
            })?;
        }
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let gy = (grad * y)?;
        let s = gy.sum_keepdim(D::Minus1)?;
        Ok(Some((gy - y.broadcast_mul(&s)?)?))
    }
}

/// Softmax over the last dim. When `x` is in an autograd graph it is differentiable (the fused
/// kernel's numbers, with a backward, on contiguous f32 CPU input; candle's composite softmax
/// elsewhere); otherwise candle-nn's fused kernel.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        return candle_nn::ops::softmax_last_dim(x);
    }
    if super::is_cpu_f32(x) {
        x.apply_op1(SoftmaxLast)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::grad_gap;
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn same_numbers_as_candle_and_the_same_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 3.0, (3, 70, 33), &dev)?;
        let ours = softmax_last(x.as_tensor())?;
        let fused = candle_nn::ops::softmax_last_dim(x.as_tensor())?;
        assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, fused.flatten_all()?.to_vec1::<f32>()?);
        let composite = candle_nn::ops::softmax(x.as_tensor(), D::Minus1)?;
        let coef = Tensor::randn(0f32, 1.0, (3, 70, 33), &dev)?;
        let diff = grad_gap(&ours, &composite, &coef, x.as_tensor())?;
        assert!(diff < 1e-6, "max diff {diff}");
        Ok(())
    }
}
