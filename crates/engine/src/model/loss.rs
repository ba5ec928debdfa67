//! TL's `lm_cross_entropy_loss`: next-token negative log-likelihood.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::kernels::cross_entropy::next_token_nll;

/// `logits: [batch, pos, vocab]`, `tokens: [batch, pos]` → mean loss (0-d) or per token
/// `[batch, pos - 1]`. With an attention mask, positions where this token or the next is
/// padding count zero and the mean is over the rest (TL divides by their number).
pub fn lm_cross_entropy(logits: &Tensor, tokens: &Tensor, mask: Option<&Tensor>, per_token: bool) -> Result<Tensor> {
    let (b, p, _) = logits.dims3()?;
    if tokens.dims() != [b, p] {
        return Err(Error::shape(format!("tokens {:?} do not match logits {:?}", tokens.dims(), logits.dims())));
    }
    if p < 2 {
        return Err(Error::shape("the loss needs at least two positions"));
    }
    let logits = if logits.dtype() == DType::F64 { logits.clone() } else { logits.to_dtype(DType::F32)? };
    let picked = match next_token_nll(&logits, tokens)? {
        Some(picked) => picked,
        None => {
            let log_probs = candle_nn::ops::log_softmax(&logits.narrow(1, 0, p - 1)?, D::Minus1)?;
            let next = tokens.narrow(1, 1, p - 1)?.to_dtype(DType::I64)?.unsqueeze(2)?.contiguous()?;
            log_probs.contiguous()?.gather(&next, 2)?.squeeze(2)?.neg()?
        }
    };
    if let Some(m) = mask {
        if m.dims() != [b, p] {
            return Err(Error::shape(format!("the attention mask {:?} does not match the tokens [{b}, {p}]", m.dims())));
        }
        let m = m.to_dtype(DType::U8)?;
        let both = (m.narrow(1, 0, p - 1)? * m.narrow(1, 1, p - 1)?)?.to_dtype(picked.dtype())?;
        let picked = (picked * &both)?;
        if per_token {
            return Ok(picked);
        }
        return Ok((picked.sum_all()? / both.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)?);
    }
    if per_token {
        Ok(picked)
    } else {
        Ok(picked.mean_all()?)
    }
}
