//! Masking for gradient runs: `where(keep, scores, -inf)` as TL's `torch.where` (and the
//! zeroing of query rows with nothing to attend to).
//!
//! With candle's `where_cond` the backward also builds (and keeps to the end) a gradient for the
//! broadcast `-inf` operand, a zero-filled tensor the size of the scores in every layer.
//! [`MaskFill`] holds the mask and the fill as constants: its backward passes the gradient on
//! where the mask keeps a score and zero elsewhere (so fully masked rows carry no NaN back).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Storage, Tensor};

struct MaskFill {
    /// u8, broadcastable to the scores: 1 keeps a score.
    keep: Tensor,
    /// A scalar of the input's dtype and device (`-inf` for scores).
    fill: Tensor,
}

impl MaskFill {
    fn run<S: BackendStorage>(&self, s: &S, l: &Layout, pick: impl Fn(&Storage) -> Option<&S>) -> Result<(S, Shape)> {
        let shape = l.shape().clone();
        let (ks, kl) = self.keep.storage_and_layout();
        let (fs, fl) = self.fill.storage_and_layout();
        let (Some(keep), Some(fill)) = (pick(&ks), pick(&fs)) else { candle_core::bail!("mask: the mask is on another device than the scores") };
        let out = keep.where_cond(&kl.broadcast_as(shape.clone())?, s, l, fill, &fl.broadcast_as(shape.clone())?)?;
        Ok((out, shape))
    }
}

impl CustomOp1 for MaskFill {
    fn name(&self) -> &'static str {
        "tl-mask-fill"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(s, l, super::cpu_part)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        self.run(s, l, super::cuda_part)
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let zero = Tensor::zeros((), grad.dtype(), grad.device())?.broadcast_as(grad.shape())?;
        Ok(Some(self.keep.broadcast_as(grad.shape())?.where_cond(grad, &zero)?))
    }
}

/// `x` where `keep` (u8, broadcastable) is 1, `fill` elsewhere, differentiable in `x`.
pub fn mask_fill(x: &Tensor, keep: &Tensor, fill: f64) -> Result<Tensor> {
    let fill = Tensor::new(fill, x.device())?.to_dtype(x.dtype())?;
    let keep = if keep.dtype() == DType::U8 { keep.clone() } else { keep.to_dtype(DType::U8)? };
    x.apply_op1(MaskFill { keep, fill })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn masks_like_where_and_passes_no_gradient_where_masked() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 3, 4, 4), &dev)?;
        let keep = Tensor::tril2(4, DType::U8, &dev)?.reshape((1, 1, 4, 4))?;
        let ours = mask_fill(x.as_tensor(), &keep, f64::NEG_INFINITY)?;
        let ninf = Tensor::new(f32::NEG_INFINITY, &dev)?.broadcast_as(x.shape())?;
        let theirs = keep.broadcast_as(x.shape())?.where_cond(x.as_tensor(), &ninf)?;
        assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, theirs.flatten_all()?.to_vec1::<f32>()?);
        let coef = Tensor::randn(0f32, 1.0, (2, 3, 4, 4), &dev)?;
        let finite = |t: &Tensor| keep.broadcast_as(t.shape())?.where_cond(t, &t.zeros_like()?);
        let g1 = (finite(&ours)? * &coef)?.sum_all()?.backward()?;
        let g2 = (finite(&theirs)? * &coef)?.sum_all()?.backward()?;
        let (a, b) = (g1.get(x.as_tensor()).expect("grad"), g2.get(x.as_tensor()).expect("grad"));
        assert_eq!(a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }
}
