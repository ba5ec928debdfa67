//! Row-broadcast ops for training, where a weight vector meets every row of an activation:
//! `x + b`, `x * w` and repeating a tensor over a new leading dim. candle's broadcast backward
//! reduces the gradient over the broadcast dims with a generic strided loop on one thread (a
//! fifth of a small model's training step); these ops' backwards sum rows with a contiguous pass
//! on both cores (`sum_rows`). Forward values are candle's to the bit (one add or multiply).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{f32_slice, is_cpu_f32, not_supported};

/// `Σ_rows t`: `[.., n]` (contiguous f32 CPU) → `[n]`, in f32 with row order kept per column
/// block (deterministic).
struct SumRows {
    n: usize,
}

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "tl-sum-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(x) = f32_slice(s, l) else { return not_supported("sum rows") };
        let n = self.n;
        if n == 0 || x.len() % n != 0 {
            candle_core::bail!("sum rows: {} values are not rows of {n}", x.len())
        }
        let rows = x.len() / n;
        let mut out = vec![0f32; n];
        // Column blocks on both cores; each block walks every row in order.
        let block = n.div_ceil(2).max(1);
        std::thread::scope(|s| {
            for (bi, chunk) in out.chunks_mut(block).enumerate() {
                let c0 = bi * block;
                let mut work = move || {
                    for r in 0..rows {
                        let row = &x[r * n + c0..][..chunk.len()];
                        for (o, &v) in chunk.iter_mut().zip(row) {
                            *o += v;
                        }
                    }
                };
                // A spawned thread costs tens of µs: worth it for large sums only.
                if rows * n < 1 << 20 {
                    work();
                } else {
                    s.spawn(work);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// The sum over all leading dims of `t` (`[.., n]` → `[n]`).
pub fn sum_rows(t: &Tensor) -> Result<Tensor> {
    let n = *t.dims().last().unwrap_or(&1);
    if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
        let lead = t.elem_count() / n.max(1);
        return t.reshape((lead, n))?.sum(0);
    }
    t.contiguous()?.apply_op1_no_bwd(&SumRows { n })
}

/// `x + b` with `b: [n]` over the last dim of `x`.
struct AddRow;

impl CustomOp2 for AddRow {
    fn name(&self) -> &'static str {
        "tl-add-row"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(x), Some(b)) = (f32_slice(s1, l1), f32_slice(s2, l2)) else { return not_supported("add row") };
        let n = b.len();
        let mut out = x.to_vec();
        super::par_rows(&mut out, n, |part, _| {
            for row in part.chunks_exact_mut(n) {
                for (v, &c) in row.iter_mut().zip(b) {
                    *v += c;
                }
            }
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A constant bias (a weight outside training) gets no gradient.
        let db = if b.track_op() { Some(sum_rows(g)?) } else { None };
        Ok((Some(g.clone()), db))
    }
}

/// `x * w` with `w: [n]` over the last dim of `x`.
struct MulRow;

impl CustomOp2 for MulRow {
    fn name(&self) -> &'static str {
        "tl-mul-row"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(x), Some(w)) = (f32_slice(s1, l1), f32_slice(s2, l2)) else { return not_supported("mul row") };
        let n = w.len();
        let mut out = x.to_vec();
        super::par_rows(&mut out, n, |part, _| {
            for row in part.chunks_exact_mut(n) {
                for (v, &c) in row.iter_mut().zip(w) {
                    *v *= c;
                }
            }
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = mul_row(&g.detach(), &w.detach())?;
        // A constant weight (outside training) gets no gradient.
        let dw = if w.track_op() { Some(sum_rows(&(&g * x.detach())?)?) } else { None };
        Ok((Some(dx), dw))
    }
}

/// Whether `x: [.., n]` and `v: [n]` suit the row ops (contiguous f32 CPU).
fn fits(x: &Tensor, v: &Tensor) -> bool {
    is_cpu_f32(x) && is_cpu_f32(v) && v.rank() == 1 && x.rank() >= 1 && x.dims().last() == Some(&v.dim(0).unwrap_or(usize::MAX))
}

/// `x + b` over the last dim (b: `[n]`), differentiable in both; candle's broadcast add where
/// the operands do not suit.
pub fn add_row(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let x = if x.is_contiguous() { x.clone() } else { x.contiguous()? };
    if fits(&x, b) {
        return x.apply_op2(b, AddRow);
    }
    x.broadcast_add(b)
}

/// `x * w` over the last dim (w: `[n]`), differentiable in both.
pub fn mul_row(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let x = if x.is_contiguous() { x.clone() } else { x.contiguous()? };
    if fits(&x, w) {
        return x.apply_op2(w, MulRow);
    }
    x.broadcast_mul(w)
}

/// `t` repeated `m` times along a new leading dim (`[..]` → `[m, ..]`), whose backward sums the
/// copies.
struct RepeatRows {
    m: usize,
}

impl CustomOp1 for RepeatRows {
    fn name(&self) -> &'static str {
        "tl-repeat-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(x) = f32_slice(s, l) else { return not_supported("repeat rows") };
        let mut out = Vec::with_capacity(x.len() * self.m);
        for _ in 0..self.m {
            out.extend_from_slice(x);
        }
        let mut dims = vec![self.m];
        dims.extend_from_slice(l.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(&self, t: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let n = t.elem_count();
        Ok(Some(sum_rows(&g.contiguous()?.reshape((self.m, n))?)?.reshape(t.dims())?))
    }
}

/// `t` repeated along a new leading dim of size `m`, differentiable (sums the copies back).
pub fn repeat_rows(t: &Tensor, m: usize) -> Result<Tensor> {
    let t = t.contiguous()?;
    if is_cpu_f32(&t) {
        return t.apply_op1(RepeatRows { m });
    }
    let mut dims = vec![m];
    dims.extend_from_slice(t.dims());
    t.unsqueeze(0)?.broadcast_as(dims)?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::super::testing::grad_gap;
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn row_ops_match_broadcast_ops_with_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (3, 5, 70), &dev)?;
        let v = Var::randn(0f32, 1.0, 70, &dev)?;
        let coef = Tensor::randn(0f32, 1.0, (3, 5, 70), &dev)?;
        for (ours, theirs) in [
            (add_row(x.as_tensor(), v.as_tensor())?, x.as_tensor().broadcast_add(v.as_tensor())?),
            (mul_row(x.as_tensor(), v.as_tensor())?, x.as_tensor().broadcast_mul(v.as_tensor())?),
        ] {
            assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, theirs.flatten_all()?.to_vec1::<f32>()?);
            assert!(grad_gap(&ours, &theirs, &coef, x.as_tensor())? < 1e-5);
            assert!(grad_gap(&ours, &theirs, &coef, v.as_tensor())? < 1e-4);
        }
        let r = repeat_rows(v.as_tensor(), 4)?;
        let want = v.as_tensor().unsqueeze(0)?.broadcast_as((4, 70))?.contiguous()?;
        let c2 = Tensor::randn(0f32, 1.0, (4, 70), &dev)?;
        assert!(grad_gap(&r, &want, &c2, v.as_tensor())? < 1e-5);
        let big = Tensor::randn(0f32, 1.0, (300, 200), &dev)?;
        let d = (sum_rows(&big)? - big.sum(0)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-3);
        Ok(())
    }
}
