//! TL's `lm_cross_entropy_loss`: next-token negative log-likelihood.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};

/// `logits: [batch, pos, vocab]`, `tokens: [batch, pos]` → mean loss (0-d) or per token
/// `[batch, pos - 1]`.
pub fn lm_cross_entropy(logits: &Tensor, tokens: &Tensor, per_token: bool) -> Result<Tensor> {
    let (b, p, _) = logits.dims3()?;
    if tokens.dims() != [b, p] {
        return Err(Error::shape(format!("tokens {:?} do not match logits {:?}", tokens.dims(), logits.dims())));
    }
    if p < 2 {
        return Err(Error::shape("the loss needs at least two positions"));
    }
    let logits = if logits.dtype() == DType::F64 { logits.clone() } else { logits.to_dtype(DType::F32)? };
    let log_probs = candle_nn::ops::log_softmax(&logits.narrow(1, 0, p - 1)?, D::Minus1)?;
    let next = tokens.narrow(1, 1, p - 1)?.to_dtype(DType::I64)?.unsqueeze(2)?.contiguous()?;
    let picked = log_probs.contiguous()?.gather(&next, 2)?.squeeze(2)?.neg()?;
    if per_token {
        Ok(picked)
    } else {
        Ok(picked.mean_all()?)
    }
}
