//! Next-token negative log-likelihood straight from the logits, one pass per position.
//!
//! The op-by-op loss (log-softmax over the vocabulary, gather) makes several `[batch, pos,
//! vocab]` tensors, and in a gradient run each of their backwards adds more (candle's narrow and
//! gather backwards fill zero tensors of the logits' size). [`NextTokenNll`] reads each logit row
//! once and keeps nothing; its backward is the closed form `(softmax - onehot) · g`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported, par_rows};

/// `[batch, pos, vocab]` logits → `[batch, pos - 1]`: `-log softmax(logits[b, t])[next[b, t]]`.
struct NextTokenNll {
    /// `[batch, pos - 1]` row-major: the token after each position.
    next: Vec<u32>,
}

/// The vocabulary size, positions and batch of contiguous `[b, p, v]` logits.
fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    match l.dims() {
        &[b, p, v] if p >= 2 && v > 0 => Ok((b, p, v)),
        d => candle_core::bail!("next-token loss: logits of shape {d:?} (need [batch, pos >= 2, vocab])"),
    }
}

/// `(max, ln Σ exp(x - max))` of one row.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    (max, sum.ln())
}

impl CustomOp1 for NextTokenNll {
    fn name(&self) -> &'static str {
        "tl-next-token-nll"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(x) = f32_slice(s, l) else { return not_supported("next-token loss") };
        let (b, p, v) = dims(l)?;
        let mut out = vec![0f32; b * (p - 1)];
        par_rows(&mut out, 1, |part, first| {
            for (i, o) in part.iter_mut().enumerate() {
                let r = first + i;
                let row = &x[(r / (p - 1) * p + r % (p - 1)) * v..][..v];
                let (max, lse) = log_sum_exp(row);
                // As torch: log_softmax = (x - max) - lse, then the negated pick.
                *o = -((row[self.next[r] as usize] - max) - lse);
            }
        })?;
        Ok((CpuStorage::F32(out), Shape::from((b, p - 1))))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = NextTokenNllGrad { next: self.next.clone() };
        Ok(Some(logits.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// The backward of [`NextTokenNll`] on `(logits, grad [b, p - 1])`: `(softmax - onehot) · g`
/// at each position with a next token, zero at the last.
struct NextTokenNllGrad {
    next: Vec<u32>,
}

impl CustomOp2 for NextTokenNllGrad {
    fn name(&self) -> &'static str {
        "tl-next-token-nll-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(x), Some(g)) = (f32_slice(s1, l1), f32_slice(s2, l2)) else { return not_supported("next-token loss grad") };
        let (b, p, v) = dims(l1)?;
        if g.len() != b * (p - 1) {
            candle_core::bail!("next-token loss grad: {} gradients for [{b}, {}] losses", g.len(), p - 1)
        }
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, v, |part, first| {
            for (i, o) in part.chunks_exact_mut(v).enumerate() {
                let (bi, t) = ((first + i) / p, (first + i) % p);
                if t == p - 1 {
                    continue;
                }
                let r = bi * (p - 1) + t;
                let row = &x[(first + i) * v..][..v];
                let (max, lse) = log_sum_exp(row);
                for (oj, &xj) in o.iter_mut().zip(row) {
                    *oj = ((xj - max) - lse).exp() * g[r];
                }
                o[self.next[r] as usize] -= g[r];
            }
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Per-token next-token NLL `[batch, pos - 1]` of contiguous f32 CPU logits `[batch, pos, vocab]`
/// (differentiable when the logits are in an autograd graph); None when the caller must take
/// the op-by-op path. `tokens`: `[batch, pos]`.
pub fn next_token_nll(logits: &Tensor, tokens: &Tensor) -> crate::error::Result<Option<Tensor>> {
    use crate::error::Error;
    if !super::is_cpu_f32(logits) {
        return Ok(None);
    }
    let (b, p, v) = logits.dims3()?;
    let next: Vec<i64> = tokens.narrow(1, 1, p - 1)?.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    if next.len() != b * (p - 1) {
        return Err(Error::shape(format!("tokens {:?} do not match logits {:?}", tokens.dims(), logits.dims())));
    }
    let next = next
        .into_iter()
        .map(|t| u32::try_from(t).ok().filter(|&t| (t as usize) < v).ok_or_else(|| Error::invalid(format!("token id {t} is outside the vocabulary (size {v})"))))
        .collect::<crate::error::Result<Vec<u32>>>()?;
    // Recorded for the backward only when the logits are in an autograd graph.
    Ok(Some(logits.apply_op1(NextTokenNll { next })?))
}

#[cfg(test)]
mod tests {
    use super::super::testing::grad_gap;
    use super::*;
    use candle_core::{Device, Var, D};

    fn reference(logits: &Tensor, tokens: &Tensor) -> Result<Tensor> {
        let p = logits.dim(1)?;
        let lp = candle_nn::ops::log_softmax(&logits.narrow(1, 0, p - 1)?, D::Minus1)?;
        let next = tokens.narrow(1, 1, p - 1)?.unsqueeze(2)?.contiguous()?;
        lp.contiguous()?.gather(&next, 2)?.squeeze(2)?.neg()
    }

    #[test]
    fn loss_and_gradient_match_the_op_by_op_path() -> crate::error::Result<()> {
        let dev = Device::Cpu;
        let logits = Var::randn(0f32, 3.0, (2, 5, 37), &dev)?;
        let tokens = Tensor::new(&[[3i64, 0, 36, 7, 7], [1, 2, 3, 4, 5]], &dev)?;
        let ours = next_token_nll(logits.as_tensor(), &tokens)?.expect("fusable");
        let want = reference(logits.as_tensor(), &tokens)?;
        let d = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "loss diff {d}");
        let coef = Tensor::randn(0f32, 1.0, (2, 4), &dev)?;
        let d = grad_gap(&ours, &want, &coef, logits.as_tensor())?;
        assert!(d < 1e-6, "grad diff {d}");
        let bad = Tensor::new(&[[0i64, 37, 0, 0, 0], [0, 0, 0, 0, 0]], &dev)?;
        assert!(next_token_nll(logits.as_tensor(), &bad).is_err());
        Ok(())
    }
}
