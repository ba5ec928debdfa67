//! `x @ W (+ b)` with constant weights, for gradient runs.
//!
//! candle's backward of a matmul also computes the gradient of the right operand, and keeps it
//! (with a zero tensor it was added to) until the backward ends, even when that operand is a
//! weight nothing asked a gradient for: a model's worth of memory and half the backward's
//! matmul work, thrown away. Transformer-lens exposes gradients at hook points, never of
//! weights, so a gradient run multiplies by weights through [`ConstLinear`], whose backward
//! returns the input's gradient alone.

use candle_core::backend::BackendStorage;
use candle_core::op::Add;
use candle_core::{CpuStorage, CustomOp1, DType, InplaceOp2, Layout, Result, Shape, Storage, Tensor};

struct ConstLinear {
    /// `[k, n]`, or `[batch, k, n]` for a batched input.
    w: Tensor,
    /// Broadcastable to the output.
    b: Option<Tensor>,
}

impl ConstLinear {
    /// `(batch, m, n, k)` of the product and its output shape.
    fn plan(&self, xl: &Layout) -> Result<((usize, usize, usize, usize), Shape)> {
        let xd = xl.dims();
        let wd = self.w.dims();
        let ok = match (xd.len(), wd.len()) {
            (2, 2) => xd[1] == wd[0],
            (3, 3) => xd[0] == wd[0] && xd[2] == wd[1],
            _ => false,
        };
        if !ok {
            candle_core::bail!("linear: input {:?} cannot be multiplied by weight {:?}", xd, wd)
        }
        let (batch, m, k) = if xd.len() == 3 { (xd[0], xd[1], xd[2]) } else { (1, xd[0], xd[1]) };
        let n = wd[wd.len() - 1];
        let mut out = xd.to_vec();
        if let Some(last) = out.last_mut() {
            *last = n;
        }
        Ok(((batch, m, n, k), Shape::from(out)))
    }

    fn run<S: BackendStorage>(
        &self,
        x: &S,
        xl: &Layout,
        pick: impl Fn(&Storage) -> Option<&S>,
    ) -> Result<(S, Shape)> {
        let (bmnk, shape) = self.plan(xl)?;
        let (ws, wl) = self.w.storage_and_layout();
        let Some(w) = pick(&ws) else { candle_core::bail!("linear: the weight is on another device than the input") };
        let y = x.matmul(w, bmnk, xl, wl)?;
        let Some(b) = &self.b else { return Ok((y, shape)) };
        let (bs, bl) = b.storage_and_layout();
        let Some(bias) = pick(&bs) else { candle_core::bail!("linear: the bias is on another device than the input") };
        let y = y.binary_impl::<Add>(bias, &Layout::contiguous(&shape), &bl.broadcast_as(shape.clone())?)?;
        Ok((y, shape))
    }
}

impl CustomOp1 for ConstLinear {
    fn name(&self) -> &'static str {
        "tl-const-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(s, l, super::cpu_part)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        self.run(s, l, super::cuda_part)
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w.t()?)?))
    }
}

/// `x @ w + b`. When `x` is in an autograd graph (a gradient run), the backward reaches `x` only.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    if x.track_op() {
        return x.apply_op1(ConstLinear { w: w.clone(), b: b.cloned() });
    }
    let y = x.matmul(w)?;
    match b {
        // The product is fresh and ours alone: the bias goes into it in place, rather than into a
        // second output-sized buffer (206 MB for GPT-2's logits at 1×1024).
        Some(b) if row_bias_fits(&y, b) => {
            y.inplace_op2(b, &RowBias)?;
            Ok(y)
        }
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// Whether [`RowBias`] takes `y` and `b`: contiguous f32 on the CPU, `b` one row of `y`'s last dim.
fn row_bias_fits(y: &Tensor, b: &Tensor) -> bool {
    let ok = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous();
    ok(y) && ok(b) && b.rank() == 1 && y.dims().last() == Some(&b.dim(0).unwrap_or(usize::MAX))
}

/// `y[.., j] += b[j]` in place: the bias add of [`linear`], the same numbers as candle's
/// broadcast add.
struct RowBias;

impl InplaceOp2 for RowBias {
    fn name(&self) -> &'static str {
        "tl-row-bias"
    }

    fn cpu_fwd(&self, y: &mut CpuStorage, yl: &Layout, b: &CpuStorage, bl: &Layout) -> Result<()> {
        let (CpuStorage::F32(yv), Some((y0, y1)), Some(b)) = (y, yl.contiguous_offsets(), super::f32_slice(b, bl)) else {
            candle_core::bail!("bias add: contiguous f32 operands expected")
        };
        let n = b.len();
        if n == 0 {
            return Ok(());
        }
        super::par_rows(&mut yv[y0..y1], n, |part, _| {
            for row in part.chunks_exact_mut(n) {
                for (v, &c) in row.iter_mut().zip(b) {
                    *v += c;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn untracked_bias_add_in_place_matches_broadcast_add() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 300, 40), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (2, 40, 700), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 700, &dev)?;
        let ours = linear(&x, &w, Some(&b))?;
        let theirs = x.matmul(&w)?.broadcast_add(&b)?;
        assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, theirs.flatten_all()?.to_vec1::<f32>()?);
        // A bias that is not one row (per-head biases) takes the broadcast add.
        let bh = Tensor::randn(0f32, 1.0, (2, 1, 700), &dev)?;
        let ours = linear(&x, &w, Some(&bh))?;
        let theirs = x.matmul(&w)?.broadcast_add(&bh)?;
        assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, theirs.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }

    #[test]
    fn forward_and_input_gradient_match_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (5, 4), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (4, 3), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 3, &dev)?;
        let ours = linear(x.as_tensor(), &w, Some(&b))?;
        let theirs = x.as_tensor().matmul(&w)?.broadcast_add(&b)?;
        assert_eq!(ours.to_vec2::<f32>()?, theirs.to_vec2::<f32>()?);
        let coef = Tensor::randn(0f32, 1.0, (5, 3), &dev)?;
        let g1 = (&ours * &coef)?.sum_all()?.backward()?;
        let g2 = (&theirs * &coef)?.sum_all()?.backward()?;
        let (a, b2) = (g1.get(x.as_tensor()).expect("grad"), g2.get(x.as_tensor()).expect("grad"));
        let diff = (a - b2)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "max diff {diff}");
        // The weight gets no gradient (candle's matmul backward would store one).
        assert!(g1.get(&w).is_none());
        assert!(g2.get(&w).is_some());
        Ok(())
    }

    #[test]
    fn batched_and_strided_weights() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 5, 4), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (2, 4, 6), &dev)?.narrow(2, 1, 3)?;
        let ours = linear(x.as_tensor(), &w, None)?;
        let theirs = x.as_tensor().matmul(&w)?;
        let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        let bad = Tensor::zeros((3, 3), candle_core::DType::F32, &dev)?;
        assert!(linear(x.as_tensor(), &bad, None).is_err());
        Ok(())
    }
}
