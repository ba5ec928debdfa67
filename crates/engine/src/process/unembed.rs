//! W_U's processing in one pass: fold the final norm's weight into its rows, make its columns
//! mean-zero over d_model (fold_ln's centring), then make its rows mean-zero over the vocab
//! (center_unembed). Op by op this allocates and writes W_U (`[d_model, d_vocab]`, the largest
//! matrix) three times; here it is read twice and written once, on two threads.
//!
//! W_U is often the transpose of the embedding (tied weights), so both layouts are read in
//! memory order: `[d, V]` contiguous, or a transposed view of a contiguous `[V, d]` (the
//! result keeps that layout).

use candle_core::{DType, Storage, Tensor};

use crate::error::Result;
use crate::kernels::split::{par_halves, par_rows_mut};

/// The source in memory order: rows of length `c`, and whether a row is a vocab entry
/// (transposed layout) or a d_model entry.
struct Src<'a> {
    data: &'a [f32],
    c: usize,
    rows_are_vocab: bool,
}

/// Pass 1: `rowsum[i]` = Σ_j s_i W[i, j] and `colsum[j]` = Σ_i s_i W[i, j], in f64.
fn sums(src: &Src, scale: &[f32], d: usize, v: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let part = |rows: std::ops::Range<usize>| -> (Vec<f64>, Vec<f64>) {
        let mut rowsum = vec![0f64; d];
        let mut colsum = vec![0f64; v];
        for r in rows {
            let row = &src.data[r * src.c..(r + 1) * src.c];
            if src.rows_are_vocab {
                let mut acc = 0f64;
                for (i, &x) in row.iter().enumerate() {
                    let y = (scale[i] * x) as f64;
                    rowsum[i] += y;
                    acc += y;
                }
                colsum[r] = acc;
            } else {
                let s = scale[r];
                let mut acc = 0f64;
                for (c, &x) in colsum.iter_mut().zip(row) {
                    let y = (s * x) as f64;
                    *c += y;
                    acc += y;
                }
                rowsum[r] = acc;
            }
        }
        (rowsum, colsum)
    };
    let ((r1, c1), (r2, c2)) = par_halves(src.data.len() / src.c, src.data.len(), part)?;
    let add = |x: Vec<f64>, y: Vec<f64>| x.iter().zip(&y).map(|(p, q)| p + q).collect::<Vec<f64>>();
    Ok((add(r1, r2), add(c1, c2)))
}

/// `W'[i, j] = w_i W[i, j] − colmean_j` and, with `center_rows`, minus the mean of row i of
/// that. None when `W` is not f32 on the CPU in one of the two layouts (callers fall back).
pub fn fold_center_unembed(w_u: &Tensor, ln_w: Option<&Tensor>, center_cols: bool, center_rows: bool) -> Result<Option<Tensor>> {
    if !(w_u.device().is_cpu() && w_u.dtype() == DType::F32 && w_u.rank() == 2) {
        return Ok(None);
    }
    let (d, v) = w_u.dims2()?;
    let transposed = !w_u.is_contiguous();
    let base = if transposed { w_u.t()? } else { w_u.clone() };
    if !base.is_contiguous() || d == 0 || v == 0 {
        return Ok(None);
    }
    let scale: Vec<f32> = match ln_w {
        Some(w) => w.to_dtype(DType::F32)?.to_vec1()?,
        None => vec![1.0; d],
    };
    if scale.len() != d {
        return Ok(None);
    }
    let (storage, layout) = base.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { return Ok(None) };
    let Some((start, end)) = layout.contiguous_offsets() else { return Ok(None) };
    let src = Src { data: &cpu.as_slice::<f32>()?[start..end], c: if transposed { d } else { v }, rows_are_vocab: transposed };

    let (rowsum, colsum) = sums(&src, &scale, d, v)?;
    let colmean: Vec<f32> = colsum.iter().map(|c| if center_cols { (c / d as f64) as f32 } else { 0.0 }).collect();
    let colmean_total: f64 = colmean.iter().map(|&c| c as f64).sum();
    let rowmean: Vec<f32> = rowsum.iter().map(|r| if center_rows { ((r - colmean_total) / v as f64) as f32 } else { 0.0 }).collect();

    // Pass 2: write, in the source's memory order.
    let mut out = vec![0f32; d * v];
    let write = |dst: &mut [f32], first: usize| {
        for (k, r) in (first..first + dst.len() / src.c).enumerate() {
            let row = &src.data[r * src.c..(r + 1) * src.c];
            let o = &mut dst[k * src.c..(k + 1) * src.c];
            if transposed {
                let cm = colmean[r];
                for (i, (y, &x)) in o.iter_mut().zip(row).enumerate() {
                    *y = (scale[i] * x - cm) - rowmean[i];
                }
            } else {
                let (s, rm) = (scale[r], rowmean[r]);
                for ((y, &x), &cm) in o.iter_mut().zip(row).zip(&colmean) {
                    *y = (s * x - cm) - rm;
                }
            }
        }
        Ok(())
    };
    par_rows_mut(&mut out, src.c, write)?;
    drop(storage);
    let t = if transposed { Tensor::from_vec(out, (v, d), w_u.device())?.t()? } else { Tensor::from_vec(out, (d, v), w_u.device())? };
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    fn reference(w: &Tensor, s: &Tensor) -> Tensor {
        let x = w.broadcast_mul(&s.unsqueeze(1).unwrap()).unwrap();
        let x = x.broadcast_sub(&x.mean_keepdim(0).unwrap()).unwrap();
        x.broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap()).unwrap()
    }

    #[test]
    fn both_layouts_match_the_op_by_op_result() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (7, 13), &dev).unwrap();
        let s = Tensor::randn(1f32, 0.1, 7, &dev).unwrap();
        let want = reference(&w, &s);
        let got = fold_center_unembed(&w, Some(&s), true, true).unwrap().unwrap();
        let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "contiguous: {diff}");
        let wt = w.t().unwrap().contiguous().unwrap().t().unwrap();
        assert!(!wt.is_contiguous());
        let got = fold_center_unembed(&wt, Some(&s), true, true).unwrap().unwrap();
        let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "transposed: {diff}");
    }
}
