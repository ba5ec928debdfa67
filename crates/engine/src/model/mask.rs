//! Padding: TL's `get_attention_mask`, the positions a padding mask implies
//! (`get_offset_position_ids`), and the additive attention mask one forward shares across layers.

use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// TL's `utils.get_attention_mask`: 1 for real tokens, 0 for padding. Only the leading pads
/// (left padding) or the trailing pads (right padding) count as padding. With left padding,
/// `prepend_bos` and BOS == pad, the last leading pad is the BOS and is attended.
pub fn attention_mask_from_tokens(
    tokens: &Tensor,
    pad_id: i64,
    bos_id: Option<i64>,
    padding_left: bool,
    prepend_bos: bool,
) -> Result<Tensor> {
    let (b, p) = tokens.dims2()?;
    let ids: Vec<i64> = tokens.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let mut mask = vec![1i64; b * p];
    for (row, m) in ids.chunks(p).zip(mask.chunks_mut(p)) {
        if padding_left {
            let lead = row.iter().take_while(|&&t| t == pad_id).count();
            m[..lead].iter_mut().for_each(|x| *x = 0);
            // TL sets index `lead - 1` even when it is -1 (no leading pads), which in torch
            // writes the last column: a no-op there, as that column is a real token.
            if prepend_bos && bos_id == Some(pad_id) && lead > 0 {
                m[lead - 1] = 1;
            }
        } else {
            let trail = row.iter().rev().take_while(|&&t| t == pad_id).count();
            m[p - trail..].iter_mut().for_each(|x| *x = 0);
        }
    }
    Ok(Tensor::from_vec(mask, (b, p), tokens.device())?)
}

/// A `[batch, pos]` 0/1 mask as host integers, checked.
pub fn mask_rows(mask: &Tensor) -> Result<(usize, usize, Vec<i64>)> {
    let (b, p) = mask.dims2().map_err(|_| Error::shape(format!("an attention mask must be [batch, pos], got {:?}", mask.dims())))?;
    if mask.dtype().is_float() {
        return Err(Error::dtype(format!("an attention mask must be an integer or bool tensor, got {:?}", mask.dtype())));
    }
    let v: Vec<i64> = mask.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    if v.iter().any(|&x| x != 0 && x != 1) {
        return Err(Error::invalid("an attention mask must hold only 0 and 1"));
    }
    Ok((b, p, v))
}

/// Local attention's band (TL's `attn_types` "local"): a query sees itself and the `size - 1`
/// keys before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub size: usize,
    /// A real query's band counts its row's own tokens (positions; padding between them does not
    /// count), so a padded row generates as its prompt alone. Otherwise the band is over indices,
    /// as TL's in every forward (the same while padding only leads or trails a row; they differ
    /// where padding sits between real tokens: a right-padded prompt followed by generated tokens,
    /// or TL's BOS-as-pad mark in a KV-cached chunk of only padding).
    pub over_positions: bool,
}

/// What padding means for one forward over `q` new positions after `past` cached ones.
pub struct MaskPlan {
    /// Additive `[batch or 1, 1, q, past + q]`: 0 where attention is allowed, -inf elsewhere.
    pub additive: Option<Tensor>,
    /// `[batch, 1, q, 1]` u8, 0 for query rows with no key to attend to (their pattern is NaN
    /// after softmax; TL sets it to 0). None when every row has a key.
    pub live_rows: Option<Tensor>,
    /// `[batch, q]` position ids when a padding mask moves them; None: `past..past + q`.
    pub positions: Option<Tensor>,
    /// `[batch, q, 1]` 0 at padding positions (TL zeroes their positional embedding).
    pub pos_keep: Option<Tensor>,
    /// `[batch * (past + q)]` the position of every cached and new key when a padding mask
    /// moves them (TL's `get_offset_position_ids` with no offset); None: `0..past + q`.
    pub key_positions: Option<Vec<u32>>,
    pub past: usize,
    /// `additive == 0` as u8, made on first use (gradient runs mask with it) and shared by all layers.
    keep: OnceLock<Tensor>,
    /// Shortformer models: the positional embeddings `[batch, q, d_model]` the blocks add to
    /// the Q and K inputs (never to the residual stream); set once by the embedding.
    pub shortformer_pos: OnceLock<Tensor>,
}

impl MaskPlan {
    /// `mask`: `[batch, past + q]` covering cached and new positions, or None for no padding.
    /// `window`: local attention's band.
    #[allow(clippy::too_many_arguments)]
    pub fn new(b: usize, q: usize, past: usize, mask: Option<&Tensor>, causal: bool, window: Option<Window>, dtype: DType, dev: &Device) -> Result<Self> {
        let k = past + q;
        let Some(mask) = mask else {
            let banded = window.is_some_and(|w| k > w.size);
            let additive = if causal && (q > 1 || banded) { Some(causal_additive(None, 1, q, past, window, dtype, dev)?.0) } else { None };
            return Ok(MaskPlan { additive, live_rows: None, positions: None, pos_keep: None, key_positions: None, past, keep: OnceLock::new(), shortformer_pos: OnceLock::new() });
        };
        let (mb, mk, m) = mask_rows(mask)?;
        if mb != b || mk != k {
            return Err(Error::shape(format!(
                "the attention mask is [{mb}, {mk}] but the input needs [{b}, {k}] ({past} cached + {q} new positions)"
            )));
        }
        if m.iter().all(|&x| x == 1) {
            // No padding anywhere: exactly the unmasked computation, without its cost.
            return MaskPlan::new(b, q, past, None, causal, window, dtype, dev);
        }
        let mut pos = Vec::with_capacity(b * q);
        let mut keep = Vec::with_capacity(b * q);
        let mut key_pos = Vec::with_capacity(b * k);
        for row in m.chunks(k) {
            let mut c = 0i64;
            for (j, &x) in row.iter().enumerate() {
                c += x;
                key_pos.push((c - 1).max(0) as u32);
                if j >= past {
                    pos.push((c - 1).max(0));
                    keep.push(x as f32);
                }
            }
        }
        let positions = Some(Tensor::from_vec(pos, (b, q), dev)?);
        let pos_keep = Some(Tensor::from_vec(keep, (b, q, 1), dev)?.to_dtype(dtype)?);
        // TL masks padding only inside the causal mask: bidirectional models ignore it.
        let (additive, live_rows) = if causal {
            let (add, live) = causal_additive(Some(&m), b, q, past, window, dtype, dev)?;
            (Some(add), live)
        } else {
            (None, None)
        };
        Ok(MaskPlan { additive, live_rows, positions, pos_keep, key_positions: Some(key_pos), past, keep: OnceLock::new(), shortformer_pos: OnceLock::new() })
    }

    /// Where attention is allowed, as a u8 mask for `where`-style masking (None: no mask).
    pub fn keep(&self) -> Result<Option<&Tensor>> {
        let Some(add) = &self.additive else { return Ok(None) };
        if self.keep.get().is_none() {
            // A race between layers cannot happen (one forward runs its layers in order); if it
            // did, both would compute the same mask and one would be kept.
            let _ = self.keep.set(add.eq(0.0)?);
        }
        Ok(self.keep.get())
    }
}

/// Builds the additive causal (+ padding) mask and, when some query row can attend to nothing,
/// the live-row mask.
fn causal_additive(m: Option<&[i64]>, b: usize, q: usize, past: usize, window: Option<Window>, dtype: DType, dev: &Device) -> Result<(Tensor, Option<Tensor>)> {
    let k = past + q;
    let rows = if m.is_some() { b } else { 1 };
    let mut data = vec![0f32; rows * q * k];
    let mut live = vec![1u8; rows * q];
    let mut any_dead = false;
    for r in 0..rows {
        // Each key's position (padding does not count), for a real query's band over positions
        // (`Window::over_positions`). A padding query keeps TL's band over indices.
        let pos: Vec<usize> = match m {
            Some(m) => m[r * k..(r + 1) * k].iter().scan(0usize, |c, &x| {
                *c += x as usize;
                Some(c.saturating_sub(1))
            }).collect(),
            None => (0..k).collect(),
        };
        for i in 0..q {
            let base = (r * q + i) * k;
            let mut n = 0;
            for j in 0..k {
                // TL: triu(tril(ones), 1 - window), then the padding.
                let qi = i + past;
                let real_query = m.is_none_or(|m| m[r * k + qi] != 0);
                let in_window = window.is_none_or(|w| if real_query && w.over_positions { pos[j] + w.size > pos[qi] } else { j + w.size > qi });
                let ok = j <= i + past && in_window && m.map(|m| m[r * k + j] != 0).unwrap_or(true);
                if ok {
                    n += 1;
                } else {
                    data[base + j] = f32::NEG_INFINITY;
                }
            }
            if n == 0 {
                live[r * q + i] = 0;
                any_dead = true;
            }
        }
    }
    let add = Tensor::from_vec(data, (rows, 1, q, k), dev)?.to_dtype(if dtype == DType::F64 { DType::F64 } else { DType::F32 })?;
    let live = if any_dead { Some(Tensor::from_vec(live, (rows, 1, q, 1), dev)?) } else { None };
    Ok((add, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which keys query `i` sees in a one-row plan over `mask` with a window of 4.
    fn sees(mask: &[i64], over_positions: bool, i: usize) -> Vec<usize> {
        let k = mask.len();
        let m = Tensor::from_vec(mask.to_vec(), (1, k), &Device::Cpu).unwrap();
        let window = Some(Window { size: 4, over_positions });
        let plan = MaskPlan::new(1, k, 0, Some(&m), true, window, DType::F32, &Device::Cpu).unwrap();
        let add: Vec<f32> = plan.additive.unwrap().flatten_all().unwrap().to_vec1().unwrap();
        (0..k).filter(|&j| add[i * k + j] == 0.0).collect()
    }

    #[test]
    fn a_window_bands_over_indices_as_tl_or_over_each_rows_own_tokens() {
        // Padding between real tokens (TL's BOS-as-pad mark at 4): TL's band over indices drops
        // key 4 for query 8; over positions it is 2 tokens back.
        let holed = [0, 0, 0, 0, 1, 0, 0, 1, 1, 1];
        assert_eq!(sees(&holed, false, 8), [7, 8]);
        assert_eq!(sees(&holed, true, 8), [4, 7, 8]);
        // Leading padding only: both bands agree.
        let left = [0, 0, 1, 1, 1, 1, 1, 1];
        for i in 2..8 {
            assert_eq!(sees(&left, false, i), sees(&left, true, i));
        }
        assert_eq!(sees(&left, false, 7), [4, 5, 6, 7]);
    }
}
