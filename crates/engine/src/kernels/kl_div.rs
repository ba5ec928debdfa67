//! The KL divergence from a fixed distribution to the softmax of logits, per row, straight from
//! the logits: `KL_r = Σ_v p_v (log p_v - log_softmax(z_r)_v)` with `p = exp(target)` given as
//! log-probabilities. What tuned-lens trains on. One read of each logit row and of the target
//! (the op-by-op form makes several vocabulary-sized tensors, and more in its backward); the
//! backward is the closed form `(softmax(z) - p) · g`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported, par_rows};

struct KlFromLogits {
    /// Log-probabilities of the reference distribution, the logits' shape, contiguous f32.
    target: Tensor,
    /// Its probabilities (`exp(target)`), computed once by the caller for many logits.
    probs: Tensor,
    /// Each row's `(max, ln Σ exp(z - max))` from the forward, for the backward.
    stats: std::sync::Arc<std::sync::Mutex<Vec<(f32, f32)>>>,
}

fn rows_and_vocab(l: &Layout) -> Result<(usize, usize)> {
    let v = *l.dims().last().unwrap_or(&0);
    if v == 0 {
        candle_core::bail!("kl: logits of shape {:?} have no vocabulary", l.dims())
    }
    Ok((l.shape().elem_count() / v, v))
}

/// `(max, ln Σ exp(x - max))` of one row.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    (max, sum.ln())
}

/// The target's values, checked against the logits' layout.
fn target_slice<'a>(t: &'a Tensor, s: &'a CpuStorage, n: usize) -> Result<&'a [f32]> {
    let (_, l) = t.storage_and_layout();
    let (CpuStorage::F32(v), Some((a, b))) = (s, l.contiguous_offsets()) else {
        candle_core::bail!("kl: the target must be contiguous f32")
    };
    if b - a != n {
        candle_core::bail!("kl: the target has {} values for {n} logits", b - a)
    }
    Ok(&v[a..b])
}

impl CustomOp1 for KlFromLogits {
    fn name(&self) -> &'static str {
        "tl-kl-from-logits"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(z) = f32_slice(s, l) else { return not_supported("kl from logits") };
        let (rows, v) = rows_and_vocab(l)?;
        let (ts, _) = self.target.storage_and_layout();
        let candle_core::Storage::Cpu(ts) = &*ts else { return not_supported("kl from logits") };
        let t = target_slice(&self.target, ts, z.len())?;
        let (ps, _) = self.probs.storage_and_layout();
        let candle_core::Storage::Cpu(ps) = &*ps else { return not_supported("kl from logits") };
        let p = target_slice(&self.probs, ps, z.len())?;
        // Per row: the KL, then the row's max and log-sum-exp (kept for the backward).
        let mut out = vec![0f32; rows * 3];
        par_rows(&mut out, 3, |part, first| {
            for (i, o) in part.chunks_exact_mut(3).enumerate() {
                let r = first + i;
                let (zr, tr, pr) = (&z[r * v..][..v], &t[r * v..][..v], &p[r * v..][..v]);
                let (max, lse) = log_sum_exp(zr);
                let mut acc = 0f32;
                for ((&zj, &tj), &pj) in zr.iter().zip(tr).zip(pr) {
                    if pj > 0.0 {
                        acc += pj * (tj - ((zj - max) - lse));
                    }
                }
                o.copy_from_slice(&[acc, max, lse]);
            }
        })?;
        if let Ok(mut st) = self.stats.lock() {
            *st = out.chunks_exact(3).map(|c| (c[1], c[2])).collect();
        }
        let out: Vec<f32> = out.chunks_exact(3).map(|c| c[0]).collect();
        let mut dims = l.dims().to_vec();
        dims.pop();
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let stats = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        let op = KlGrad { probs: self.probs.clone(), stats };
        Ok(Some(logits.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// The backward of [`KlFromLogits`] on `(logits, grad [rows])`: `(softmax(z) - p) · g`.
struct KlGrad {
    probs: Tensor,
    /// The forward's `(max, lse)` per row (recomputed when missing).
    stats: Vec<(f32, f32)>,
}

impl CustomOp2 for KlGrad {
    fn name(&self) -> &'static str {
        "tl-kl-from-logits-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(z), Some(g)) = (f32_slice(s1, l1), f32_slice(s2, l2)) else { return not_supported("kl grad") };
        let (rows, v) = rows_and_vocab(l1)?;
        if g.len() != rows {
            candle_core::bail!("kl grad: {} gradients for {rows} rows", g.len())
        }
        let (ps, _) = self.probs.storage_and_layout();
        let candle_core::Storage::Cpu(ps) = &*ps else { return not_supported("kl grad") };
        let p = target_slice(&self.probs, ps, z.len())?;
        let mut out = vec![0f32; z.len()];
        par_rows(&mut out, v, |part, first| {
            for (i, o) in part.chunks_exact_mut(v).enumerate() {
                let r = first + i;
                let (zr, pr) = (&z[r * v..][..v], &p[r * v..][..v]);
                let (max, lse) = match self.stats.get(r) {
                    Some(&s) if self.stats.len() == rows => s,
                    _ => log_sum_exp(zr),
                };
                for ((oj, &zj), &pj) in o.iter_mut().zip(zr).zip(pr) {
                    *oj = (((zj - max) - lse).exp() - pj) * g[r];
                }
            }
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Per-row `KL(p ‖ softmax(logits))` over the last dim, differentiable in the logits, for a
/// reference given as log-probabilities and probabilities (`p = exp(log p)`, computed once by
/// the caller); None when the operands are not contiguous f32 CPU tensors of one shape.
pub fn kl_from_logits(logits: &Tensor, target_log_probs: &Tensor, target_probs: &Tensor) -> Result<Option<Tensor>> {
    let same = |t: &Tensor| super::is_cpu_f32(t) && t.dims() == logits.dims();
    if !super::is_cpu_f32(logits) || !same(target_log_probs) || !same(target_probs) {
        return Ok(None);
    }
    let logits = logits.contiguous()?;
    let op = KlFromLogits { target: target_log_probs.contiguous()?, probs: target_probs.contiguous()?, stats: Default::default() };
    Ok(Some(logits.apply_op1(op)?))
}

#[cfg(test)]
mod tests {
    use super::super::testing::grad_gap;
    use super::*;
    use candle_core::{Device, Var, D};

    #[test]
    fn kl_and_gradient_match_the_op_by_op_path() -> Result<()> {
        let dev = Device::Cpu;
        let z = Var::randn(0f32, 2.0, (3, 4, 41), &dev)?;
        let t = candle_nn::ops::log_softmax(&Tensor::randn(0f32, 2.0, (3, 4, 41), &dev)?, D::Minus1)?;
        let ours = kl_from_logits(z.as_tensor(), &t, &t.exp()?)?.expect("fusable");
        let logq = candle_nn::ops::log_softmax(z.as_tensor(), D::Minus1)?;
        let want = (t.exp()? * (&t - &logq)?)?.sum(D::Minus1)?;
        let d = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "kl diff {d}");
        let coef = Tensor::randn(0f32, 1.0, (3, 4), &dev)?;
        let d = grad_gap(&ours, &want, &coef, z.as_tensor())?;
        assert!(d < 1e-5, "grad diff {d}");
        Ok(())
    }
}
