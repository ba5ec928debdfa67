//! Attention scores to pattern in one pass, in place: TL's `q·k / scale`, the causal (and
//! padding) mask, then softmax, over the raw `q·k` product.
//!
//! Unfused, that is three more `[batch, head, query, key]` buffers (50 MB each per layer at
//! 1×1024 for GPT-2 small) and three more passes over memory. The fused pass runs only when
//! nothing observes the scores (no `hook_attn_scores`, no gradient). Its arithmetic is the
//! unfused ops' (candle's `affine` for the division, the additive mask, candle-nn's softmax),
//! so the pattern is the same bit for bit; masked keys skip the `exp` (it is exactly 0), and a
//! query with no key to attend to gets a zero row (TL's NaN → 0).

use candle_core::cpu::kernels::VecOps;
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor};

use super::{is_cpu_f32, par_rows};

/// One query row: `s = s · inv_scale + mask`, then softmax over it.
pub(super) fn row(s: &mut [f32], inv_scale: f32, mask: Option<&[f32]>) {
    row_capped(s, inv_scale, None, mask)
}

/// TL's soft cap (`attn_scores_soft_cap`, Gemma 2): `tanh(s / cap) · cap` on the scaled scores,
/// before the mask; the factors as candle's `affine` takes them (`1 / cap` in f64, then f32).
#[derive(Clone, Copy)]
pub struct SoftCap {
    inv: f32,
    cap: f32,
}

impl SoftCap {
    pub fn new(cap: f64) -> Self {
        SoftCap { inv: (1.0 / cap) as f32, cap: cap as f32 }
    }
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        (x * self.inv + 0.0).tanh() * self.cap + 0.0
    }
}

/// [`row`] with an optional soft cap between the scaling and the mask.
fn row_capped(s: &mut [f32], inv_scale: f32, cap: Option<SoftCap>, mask: Option<&[f32]>) {
    match (mask, cap) {
        (Some(m), None) => {
            for (x, &a) in s.iter_mut().zip(m) {
                *x = if a == f32::NEG_INFINITY { a } else { *x * inv_scale + a };
            }
        }
        (None, None) => s.iter_mut().for_each(|x| *x = *x * inv_scale + 0.0),
        (Some(m), Some(c)) => {
            for (x, &a) in s.iter_mut().zip(m) {
                *x = if a == f32::NEG_INFINITY { a } else { c.apply(*x * inv_scale + 0.0) + a };
            }
        }
        (None, Some(c)) => s.iter_mut().for_each(|x| *x = c.apply(*x * inv_scale + 0.0)),
    }
    let mut max = f32::NEG_INFINITY;
    // SAFETY: `s` holds `s.len()` elements and `max`/`sum` are valid places.
    unsafe { f32::vec_reduce_max(s.as_ptr(), &mut max, s.len()) };
    if max == f32::NEG_INFINITY {
        s.fill(0.0);
        return;
    }
    for x in s.iter_mut() {
        *x = if *x == f32::NEG_INFINITY { 0.0 } else { (*x - max).exp() };
    }
    let mut sum = 0f32;
    unsafe { f32::vec_reduce_sum(s.as_ptr(), &mut sum, s.len()) };
    for x in s.iter_mut() {
        *x /= sum;
    }
}

/// Scores `[batch, heads, q, k]`; the mask `[1 or batch, 1 or heads, q, k]`: 0 or -inf, plus a
/// per-head bias (ALiBi) where it has the heads.
struct ScaleMaskSoftmax {
    inv_scale: f32,
    cap: Option<SoftCap>,
}

impl ScaleMaskSoftmax {
    /// `mask`: its data, batch rows and heads.
    fn run(&self, s: &mut CpuStorage, l: &Layout, mask: Option<(&[f32], usize, usize)>) -> Result<()> {
        let (CpuStorage::F32(v), Some((a, b)), [_, h, q, k]) = (s, l.contiguous_offsets(), l.dims()) else {
            candle_core::bail!("attention softmax: the scores must be contiguous f32 [batch, heads, query, key]")
        };
        let (h, q, k) = (*h, *q, *k);
        let data = &mut v[a..b];
        if k == 0 {
            return Ok(());
        }
        par_rows(data, k, |part, first| {
            for (i, r) in part.chunks_exact_mut(k).enumerate() {
                let n = first + i;
                let m = mask.map(|(m, rows, mh)| {
                    let at = ((((n / (h * q)) % rows) * mh + (n / q) % h % mh) * q + n % q) * k;
                    &m[at..at + k]
                });
                row_capped(r, self.inv_scale, self.cap, m);
            }
        })
    }
}

impl InplaceOp1 for ScaleMaskSoftmax {
    fn name(&self) -> &'static str {
        "tl-attn-softmax"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        self.run(s, l, None)
    }
}

impl InplaceOp2 for ScaleMaskSoftmax {
    fn name(&self) -> &'static str {
        "tl-attn-softmax-masked"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout, m: &CpuStorage, ml: &Layout) -> Result<()> {
        let (CpuStorage::F32(mv), Some((a, b)), [rows, mh, _, _]) = (m, ml.contiguous_offsets(), ml.dims()) else {
            candle_core::bail!("attention softmax: the mask must be contiguous f32 [batch or 1, heads or 1, query, key]")
        };
        self.run(s, l, Some((&mv[a..b], *rows, *mh)))
    }
}

/// Whether [`scale_mask_softmax_`] takes these scores (and mask): f32 contiguous on the CPU,
/// outside any autograd graph, the mask's rows 1 or the batch, its heads 1 or the scores' and
/// its query/key dims the scores'.
pub fn fusable(scores: &Tensor, mask: Option<&Tensor>) -> bool {
    let Ok((b, h, q, k)) = scores.dims4() else { return false };
    is_cpu_f32(scores)
        && !scores.track_op()
        && mask.is_none_or(|m| match m.dims4() {
            Ok((r, mh, mq, mk)) => is_cpu_f32(m) && (r == 1 || r == b) && (mh == 1 || mh == h) && mq == q && mk == k,
            _ => false,
        })
}

/// Turns raw `q·k` scores into the attention pattern in place (see the module docs). The caller
/// owns `scores` alone (a fresh product) and has checked [`fusable`].
pub fn scale_mask_softmax_(scores: &Tensor, inv_scale: f32, mask: Option<&Tensor>) -> Result<()> {
    capped_scale_mask_softmax_(scores, inv_scale, None, mask)
}

/// [`scale_mask_softmax_`] with TL's soft cap applied to the scaled scores (same bits as the
/// unfused `affine`, `tanh`, `affine` ops).
pub fn capped_scale_mask_softmax_(scores: &Tensor, inv_scale: f32, cap: Option<SoftCap>, mask: Option<&Tensor>) -> Result<()> {
    let op = ScaleMaskSoftmax { inv_scale, cap };
    match mask {
        Some(m) => scores.inplace_op2(m, &op),
        None => scores.inplace_op1(&op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The unfused ops the attention runs when the scores are observed.
    fn unfused(raw: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Vec<f32>> {
        let mut s = (raw / scale)?;
        if let Some(m) = mask {
            s = s.broadcast_add(m)?;
        }
        let p = candle_nn::ops::softmax_last_dim(&s)?;
        // Rows with no key: NaN there, zero after TL's fix-up.
        let v: Vec<f32> = p.flatten_all()?.to_vec1()?;
        Ok(v.into_iter().map(|x| if x.is_nan() { 0.0 } else { x }).collect())
    }

    fn mask(rows: usize, q: usize, k: usize, dead_row: bool) -> Result<Tensor> {
        let past = k - q;
        let mut m = vec![0f32; rows * q * k];
        for r in 0..rows {
            for i in 0..q {
                for j in 0..k {
                    // Causal, plus one padded key per batch row and (optionally) a query that sees nothing.
                    if j > i + past || j == r || (dead_row && r == 0 && i == 0) {
                        m[(r * q + i) * k + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Tensor::from_vec(m, (rows, 1, q, k), &Device::Cpu)
    }

    #[test]
    fn same_bits_as_the_unfused_ops() -> Result<()> {
        let dev = Device::Cpu;
        for (b, h, q, past, rows, dead) in [(2, 3, 9, 0, 2, true), (2, 4, 5, 3, 1, false), (1, 2, 1, 6, 0, false), (3, 2, 40, 0, 3, false)] {
            let k = q + past;
            let raw = Tensor::randn(0f32, 4.0, (b, h, q, k), &dev)?;
            let m = if rows > 0 { Some(mask(rows, q, k, dead)?) } else { None };
            let want = unfused(&raw, 8.0, m.as_ref())?;
            let fused = raw.copy()?;
            assert!(fusable(&fused, m.as_ref()));
            scale_mask_softmax_(&fused, (1.0 / 8.0f64) as f32, m.as_ref())?;
            assert_eq!(fused.flatten_all()?.to_vec1::<f32>()?, want, "b={b} h={h} q={q} past={past}");
        }
        Ok(())
    }

    #[test]
    fn soft_capped_scores_as_the_unfused_ops() -> Result<()> {
        // Gemma 2's cap of 50 on scores large enough for the tanh to bend them.
        let dev = Device::Cpu;
        for (b, h, q, past, rows) in [(2, 3, 9, 0, 2), (1, 2, 4, 3, 0)] {
            let k = q + past;
            let raw = Tensor::randn(0f32, 300.0, (b, h, q, k), &dev)?;
            let m = if rows > 0 { Some(mask(rows, q, k, false)?) } else { None };
            // The attention's unfused path: scale, cap, mask, softmax.
            let mut s = (((&raw / 8.0)? / 50.0)?.tanh()? * 50.0)?;
            if let Some(m) = &m {
                s = s.broadcast_add(m)?;
            }
            let want: Vec<f32> = candle_nn::ops::softmax_last_dim(&s)?.flatten_all()?.to_vec1()?;
            // Rows with no key: NaN there, zero after TL's fix-up.
            let want: Vec<f32> = want.into_iter().map(|x| if x.is_nan() { 0.0 } else { x }).collect();
            let fused = raw.copy()?;
            capped_scale_mask_softmax_(&fused, (1.0 / 8.0f64) as f32, Some(SoftCap::new(50.0)), m.as_ref())?;
            assert_eq!(fused.flatten_all()?.to_vec1::<f32>()?, want, "b={b} h={h} q={q} past={past}");
        }
        Ok(())
    }

    #[test]
    fn per_head_masks_as_the_unfused_ops() -> Result<()> {
        // A causal mask plus a per-head bias (ALiBi's shape): [rows, heads, q, k].
        let dev = Device::Cpu;
        for (b, h, q, past, rows) in [(2, 3, 6, 0, 2), (1, 4, 2, 5, 1)] {
            let k = q + past;
            let raw = Tensor::randn(0f32, 4.0, (b, h, q, k), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, (1, h, q, k), &dev)?;
            let m = mask(rows, q, k, false)?.broadcast_add(&bias)?.contiguous()?;
            let want = unfused(&raw, 8.0, Some(&m))?;
            let fused = raw.copy()?;
            assert!(fusable(&fused, Some(&m)));
            scale_mask_softmax_(&fused, (1.0 / 8.0f64) as f32, Some(&m))?;
            assert_eq!(fused.flatten_all()?.to_vec1::<f32>()?, want, "b={b} h={h} q={q} past={past}");
        }
        Ok(())
    }

    #[test]
    fn refuses_what_it_cannot_take() -> Result<()> {
        let dev = Device::Cpu;
        let s = Tensor::zeros((2, 3, 4, 4), DType::F32, &dev)?;
        assert!(!fusable(&s.to_dtype(DType::F64)?, None));
        assert!(!fusable(&s.transpose(2, 3)?, None));
        assert!(!fusable(&s, Some(&Tensor::zeros((3, 1, 4, 4), DType::F32, &dev)?)));
        assert!(!fusable(&s, Some(&Tensor::zeros((1, 1, 4, 5), DType::F32, &dev)?)));
        assert!(fusable(&s, Some(&Tensor::zeros((1, 1, 4, 4), DType::F32, &dev)?)));
        Ok(())
    }
}
