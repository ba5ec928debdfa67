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
use candle_core::{CpuStorage, CustomOp1, InplaceOp2, Layout, Result, Shape, Storage, Tensor};

struct ConstLinear {
    /// `[k, n]`, or `[batch, k, n]` for a batched input.
    w: Tensor,
    /// Broadcastable to the product (`[m, n]`, or `[batch, m, n]`).
    b: Option<Tensor>,
    /// The output's shape: the product's elements in its row-major order.
    out: Shape,
}

impl ConstLinear {
    /// `(batch, m, n, k)` of the product and the input's layout as a `[batch,] m, k` matrix.
    fn plan(&self, xl: &Layout) -> Result<((usize, usize, usize, usize), Layout)> {
        let (xd, wd) = (xl.dims(), self.w.dims());
        let bad = || candle_core::bail!("linear: input {:?} cannot be multiplied by weight {:?}", xd, wd);
        let (bmnk, layout) = match (xd.len(), wd.len()) {
            (2, 2) if xd[1] == wd[0] => ((1, xd[0], wd[1], xd[1]), xl.clone()),
            (3, 3) if xd[0] == wd[0] && xd[2] == wd[1] => ((xd[0], xd[1], wd[2], xd[2]), xl.clone()),
            // Any other contiguous input, read as rows of k (its elements in row-major order).
            (r, 2) if r > 2 && xl.is_contiguous() && wd[0] > 0 && xl.shape().elem_count().is_multiple_of(wd[0]) => {
                let (m, k) = (xl.shape().elem_count() / wd[0], wd[0]);
                ((1, m, wd[1], k), Layout::contiguous_with_offset((m, k), xl.start_offset()))
            }
            _ => return bad(),
        };
        let (batch, m, n, _) = bmnk;
        if self.out.elem_count() != batch * m * n {
            candle_core::bail!("linear: the output shape {:?} does not hold the {batch}×{m}×{n} product", self.out.dims())
        }
        Ok((bmnk, layout))
    }

    fn run<S: BackendStorage>(
        &self,
        x: &S,
        xl: &Layout,
        pick: impl Fn(&Storage) -> Option<&S>,
    ) -> Result<(S, Shape)> {
        let (bmnk, xl) = self.plan(xl)?;
        let (ws, wl) = self.w.storage_and_layout();
        let Some(w) = pick(&ws) else { candle_core::bail!("linear: the weight is on another device than the input") };
        let y = x.matmul(w, bmnk, &xl, wl)?;
        let Some(b) = &self.b else { return Ok((y, self.out.clone())) };
        let (bs, bl) = b.storage_and_layout();
        let Some(bias) = pick(&bs) else { candle_core::bail!("linear: the bias is on another device than the input") };
        let (batch, m, n, _) = bmnk;
        let prod = if self.w.rank() == 3 { Shape::from((batch, m, n)) } else { Shape::from((m, n)) };
        let y = y.binary_impl::<Add>(bias, &Layout::contiguous(&prod), &bl.broadcast_as(prod.clone())?)?;
        Ok((y, self.out.clone()))
    }
}

impl CustomOp1 for ConstLinear {
    fn name(&self) -> &'static str {
        "tl-const-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        // A one-row bias goes into the fresh product in place (the vocabulary-sized logits of
        // an unembedding are not allocated twice).
        let row_bias = self.b.as_ref().and_then(|b| {
            let n = *self.w.dims().last()?;
            (b.rank() == 1 && b.dim(0).ok()? == n && super::is_cpu_f32(b)).then_some(b)
        });
        let Some(b) = row_bias else { return self.run(s, l, super::cpu_part) };
        let plain = ConstLinear { w: self.w.clone(), b: None, out: self.out.clone() };
        let (mut y, shape) = plain.run(s, l, super::cpu_part)?;
        let (bs, bl) = b.storage_and_layout();
        let (CpuStorage::F32(yv), Storage::Cpu(bs)) = (&mut y, &*bs) else { return self.run(s, l, super::cpu_part) };
        let Some(bias) = super::f32_slice(bs, bl) else { return self.run(s, l, super::cpu_part) };
        let n = bias.len();
        super::par_rows(yv, n, |part, _| {
            for row in part.chunks_exact_mut(n) {
                for (v, &c) in row.iter_mut().zip(bias) {
                    *v += c;
                }
            }
        })?;
        Ok((y, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        self.run(s, l, super::cuda_part)
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if self.w.rank() == 3 {
            return Ok(Some(grad.matmul(&self.w.t()?)?));
        }
        // As rows: `[m, n]` → `[m, k]`, then the input's shape.
        let n = self.w.dim(1)?;
        let g = grad.reshape((grad.elem_count() / n, n))?;
        let dx = match input_grad_transposed(&g, &self.w)? {
            Some(dx) => dx,
            None => g.matmul(&self.w.t()?)?,
        };
        Ok(Some(dx.reshape(x.dims())?))
    }
}

/// `grad @ wᵀ` computed as `(w @ gradᵀ)ᵀ`, when that is the faster product on the CPU: a wide
/// weight (`k < n`: W_in, W_QKV, the unembed) and few rows. With gemm, `g @ Wᵀ` through a
/// transposed view runs 2–3× slower than the forward's `x @ W` there (at 128 rows: 110 vs 62 ms
/// for GPT-2's unembed, 10 vs 4 ms for W_in), while `W @ gᵀ` runs at the forward's speed; the
/// `[k, rows]` result is small, so its transposed copy costs little. `None`: use `grad @ wᵀ`.
fn input_grad_transposed(grad: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (g_dims, w_dims) = (grad.dims(), w.dims());
    if !grad.device().is_cpu() || grad.rank() != 2 || w.rank() != 2 || !w.is_contiguous() {
        return Ok(None);
    }
    let (rows, n, k) = (g_dims[0], g_dims[1], w_dims[0]);
    if k >= n || rows > 512 || n != w_dims[1] {
        return Ok(None);
    }
    Ok(Some(w.matmul(&grad.contiguous()?.t()?)?.t()?.contiguous()?))
}

/// `x @ w + b` over the last dim (`[.., k] → [.., n]`; with a `[batch, k, n]` weight, a batched
/// `[batch, m, k]` input). When `x` is in an autograd graph (a gradient run), the backward
/// reaches `x` only.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let mut out = x.dims().to_vec();
    if let (Some(last), Some(&n)) = (out.last_mut(), w.dims().last()) {
        *last = n;
    }
    if w.rank() == 2 && x.dims().last() != w.dims().first() {
        candle_core::bail!("linear: input {:?} cannot be multiplied by weight {:?}", x.dims(), w.dims())
    }
    linear_to(x, w, b, &out)
}

/// `x @ w + b` with `x` read as rows of `k` (`w: [k, n]`) in row-major order, the product laid
/// out as `out` (e.g. `z: [b, p, h, d_head]` through `W_O: [h·d_head, d]` to `[b, p, d]`).
/// One autograd node in a gradient run, where reshapes around a product would each be a node
/// of their own (and candle's backward zero-fills and adds a gradient buffer for every node).
pub fn linear_to(x: &Tensor, w: &Tensor, b: Option<&Tensor>, out: &[usize]) -> Result<Tensor> {
    if w.track_op() || b.is_some_and(|b| b.track_op()) {
        return trainable(x, w, b, out);
    }
    if x.track_op() {
        let x = if x.rank() > 2 && w.rank() == 2 && !x.is_contiguous() { x.contiguous()? } else { x.clone() };
        return x.apply_op1(ConstLinear { w: w.clone(), b: b.cloned(), out: Shape::from(out) });
    }
    let x2 = match (x.rank(), w.rank()) {
        (r, 2) if r != 2 => {
            let k = w.dim(0)?;
            if k == 0 || !x.elem_count().is_multiple_of(k) {
                candle_core::bail!("linear: input {:?} cannot be multiplied by weight {:?}", x.dims(), w.dims())
            }
            x.reshape((x.elem_count() / k, k))?
        }
        _ => x.clone(),
    };
    // A few rows (decode steps): the weight streamed once, the bias added in the same pass.
    if let Some(y) = super::skinny::linear(&x2, w, b)? {
        return if y.dims() == out { Ok(y) } else { y.reshape(out) };
    }
    let y = super::gemm16::matmul_any(&x2, w)?;
    let y = match b {
        // The product is fresh and ours alone: the bias goes into it in place, rather than into a
        // second output-sized buffer (206 MB for GPT-2's logits at 1×1024).
        Some(b) if row_bias_fits(&y, b) => {
            y.inplace_op2(b, &RowBias)?;
            y
        }
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    if y.dims() == out {
        return Ok(y);
    }
    y.reshape(out)
}

/// `x @ w + b` through candle's ops, whose backward reaches the weight and bias too: training,
/// where the weights are variables.
fn trainable(x: &Tensor, w: &Tensor, b: Option<&Tensor>, out: &[usize]) -> Result<Tensor> {
    let x2 = match (x.rank(), w.rank()) {
        (r, 2) if r != 2 => {
            let k = w.dim(0)?;
            if k == 0 || !x.elem_count().is_multiple_of(k) {
                candle_core::bail!("linear: input {:?} cannot be multiplied by weight {:?}", x.dims(), w.dims())
            }
            x.contiguous()?.reshape((x.elem_count() / k, k))?
        }
        _ => x.clone(),
    };
    let y = x2.matmul(w)?;
    let y = match b {
        Some(b) if b.rank() == 1 => super::row_ops::add_row(&y, b)?,
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    if y.dims() == out {
        return Ok(y);
    }
    y.reshape(out)
}

/// Whether [`RowBias`] takes `y` and `b`: contiguous f32 on the CPU, `b` one row of `y`'s last dim.
fn row_bias_fits(y: &Tensor, b: &Tensor) -> bool {
    super::is_cpu_f32(y) && super::is_cpu_f32(b) && b.rank() == 1 && y.dims().last() == Some(&b.dim(0).unwrap_or(usize::MAX))
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
    use super::super::testing::grad_gap;
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
    fn wide_weight_input_gradient_matches_candle_ops() -> Result<()> {
        // k < n and few rows: the backward takes `(w @ gradᵀ)ᵀ`.
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (7, 5), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (5, 33), &dev)?;
        let coef = Tensor::randn(0f32, 1.0, (7, 33), &dev)?;
        let ours = linear(x.as_tensor(), &w, None)?;
        let theirs = x.as_tensor().matmul(&w)?;
        let diff = grad_gap(&ours, &theirs, &coef, x.as_tensor())?;
        assert!(diff < 1e-5, "max diff {diff}");
        let g = (&ours * &coef)?.sum_all()?.backward()?;
        assert!(g.get(x.as_tensor()).expect("grad").is_contiguous());
        Ok(())
    }

    #[test]
    fn rows_of_k_into_a_chosen_shape_with_gradient() -> Result<()> {
        // z: [2, 3, 4, 5] read as [6, 20] rows through w: [20, 7] into [2, 3, 7], in one node.
        let dev = Device::Cpu;
        let z = Var::randn(0f32, 1.0, (2, 3, 4, 5), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (20, 7), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 7, &dev)?;
        let coef = Tensor::randn(0f32, 1.0, (2, 3, 7), &dev)?;
        let ours = linear_to(z.as_tensor(), &w, Some(&b), &[2, 3, 7])?;
        let theirs = z.as_tensor().reshape((6, 20))?.matmul(&w)?.broadcast_add(&b)?.reshape((2, 3, 7))?;
        assert_eq!(ours.dims(), &[2, 3, 7]);
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "forward max diff {diff}");
        let diff = grad_gap(&ours, &theirs, &coef, z.as_tensor())?;
        assert!(diff < 1e-5, "grad max diff {diff}");
        // The untracked path gives the same numbers (its 6 rows take the skinny kernel, which
        // sums in another order); a shape that does not hold the product fails.
        let plain = linear_to(&z.as_tensor().detach(), &w, Some(&b), &[2, 3, 7])?;
        let diff = (&plain - &ours)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "untracked max diff {diff}");
        assert!(linear_to(z.as_tensor(), &w, Some(&b), &[2, 3, 8]).is_err());
        assert!(linear(z.as_tensor(), &w, None).is_err());
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
