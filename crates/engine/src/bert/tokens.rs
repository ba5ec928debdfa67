//! TL's encoder tokenization (`HookedEncoder.to_tokens`, `BertNextSentencePrediction.to_tokens`)
//! and the token picks of `return_type="predictions"`.

use candle_core::{DType, Device, Tensor, D};

use crate::error::{Error, Result};
use crate::load::tokenizer::Tokenizer;

/// transformers' `tokenizer(texts, padding=True, truncation=True, max_length=n_ctx)` (or, with
/// `pair`, `tokenizer(texts[0], texts[1], ...)`): `[tokens, token_type_ids, attention_mask]`,
/// `[batch, pos]` int64, padded on the right with `pad` (transformers' `pad_token_id`), type 0
/// and mask 0.
pub fn to_tokens(tok: &Tokenizer, pad: Option<u32>, texts: &[String], pair: bool, max_len: Option<usize>, dev: &Device) -> Result<[Tensor; 3]> {
    let rows: Vec<(Vec<u32>, Vec<u32>)> = if pair {
        if texts.len() != 2 {
            return Err(Error::invalid(format!(
                "Next sentence prediction task requires exactly two sentences, please provide a list of strings with each sentence as an element (got {})",
                texts.len()
            )));
        }
        vec![tok.encode_typed(&texts[0], Some(&texts[1]), max_len)?]
    } else {
        texts.iter().map(|t| tok.encode_typed(t, None, max_len)).collect::<Result<_>>()?
    };
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    if width == 0 {
        return Err(Error::invalid("the input tokenizes to zero tokens"));
    }
    let pad = pad.or(tok.pad_token_id).unwrap_or(0) as i64;
    let n = rows.len() * width;
    let (mut ids, mut types, mut mask) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, t) in &rows {
        let fill = width - i.len();
        ids.extend(i.iter().map(|&x| x as i64).chain(std::iter::repeat_n(pad, fill)));
        types.extend(t.iter().map(|&x| x as i64).chain(std::iter::repeat_n(0, fill)));
        mask.extend(std::iter::repeat_n(1i64, i.len()).chain(std::iter::repeat_n(0, fill)));
    }
    let shape = (rows.len(), width);
    Ok([Tensor::from_vec(ids, shape, dev)?, Tensor::from_vec(types, shape, dev)?, Tensor::from_vec(mask, shape, dev)?])
}

/// `logits[tokens == mask_id].argmax(-1)`: the most likely token at every `[MASK]` position, in
/// row-major order (TL takes the argmax of the log-softmax, the same token).
pub fn mask_argmax(logits: &Tensor, tokens: &Tensor, mask_id: u32) -> Result<Vec<u32>> {
    let tokens = if tokens.rank() == 1 { tokens.unsqueeze(0)? } else { tokens.clone() };
    let (b, p, v) = logits.dims3()?;
    if tokens.dims() != [b, p] {
        return Err(Error::shape(format!("tokens {:?} do not match logits {:?}", tokens.dims(), logits.dims())));
    }
    let flat: Vec<i64> = tokens.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let rows: Vec<u32> = flat.iter().enumerate().filter(|(_, &t)| t == mask_id as i64).map(|(i, _)| i as u32).collect();
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let idx = Tensor::from_vec(rows, flat.iter().filter(|&&t| t == mask_id as i64).count(), logits.device())?;
    let picked = logits.reshape((b * p, v))?.index_select(&idx, 0)?;
    Ok(picked.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()?)
}
