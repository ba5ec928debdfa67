//! `x @ W (+ b)` for a few rows (decode steps: one row per sequence, at most [`MAX_ROWS`]),
//! streaming the weight once at memory speed, for f32, bf16 and f16 weights.
//!
//! A general GEMM packs panels of the weight for reuse across rows; with one to eight rows there
//! is nothing to reuse, and gemm reads the weight at a third to a half of what the memory gives
//! (see DESIGN.md's GEMM facts). Here every weight element is read once, in row order: a block
//! of [`KB`] weight rows is widened to f32 sixteen columns at a time and multiplied into the
//! rows' f32 accumulators, which live in the output (L1/L2-resident: rows × n floats). The
//! columns are split between the two cores. Sums run over `k` in order, in f32; the result is
//! rounded once to the weight's dtype, as torch's 16-bit products (f32 accumulation) do.

use std::ops::Range;

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use half::{bf16, f16};

/// The most rows the kernel takes; more go to the blocked GEMM.
pub const MAX_ROWS: usize = 8;
/// Weight rows per pass over a column strip.
const KB: usize = 4;
/// Columns per vector step (one AVX-512 register of f32).
const L: usize = 16;
/// Below this many weight elements the product stays on one core.
const MIN_PARALLEL: usize = 1 << 16;

/// A weight element the kernel widens to f32.
trait Widen: Copy + Send + Sync {
    fn widen(self) -> f32;
}

impl Widen for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Widen for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl Widen for f16 {
    /// Branch-free (so that it vectorises): the exponent is rebased by a multiply, which also
    /// gets subnormals right; infinities and NaNs get the f32 all-ones exponent.
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = self.to_bits() as u32;
        let em = h & 0x7fff;
        let v = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000); // 2^112
        let special = if em >= 0x7c00 { 0x7f80_0000 } else { 0 };
        f32::from_bits(v.to_bits() | special | ((h & 0x8000) << 16))
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// One product `y = x @ w`: `x` `[m, k]` f32, the weight at `w` (rows `ld` elements apart:
/// `[k, n]`, or `[n, k]` when transposed), the f32 output `y` `[m, n]`. Shared by the two halves
/// of a split product, each writing its own columns of `y`.
struct Job<'a, W> {
    x: &'a [f32],
    m: usize,
    k: usize,
    w: *const W,
    ld: usize,
    n: usize,
    y: *mut f32,
}

impl<W> Clone for Job<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W> Copy for Job<'_, W> {}
// SAFETY: the pointers are only read (`w`) or written at disjoint columns (`y`) by the halves.
unsafe impl<W: Sync> Send for Job<'_, W> {}
unsafe impl<W: Sync> Sync for Job<'_, W> {}

/// `y[.., cols] += x[.., rows] @ w[rows, cols]` for `R` weight rows starting at `k0`; the
/// weight's rows are `ld ≥ n` elements apart.
///
/// # Safety
/// `w` holds `(k - 1) · ld + n` elements, `y` `m × n`; `cols` lies within `0..n`, `k0 + R ≤ k`;
/// no other thread writes `y`'s columns `cols`.
#[inline(always)]
unsafe fn strip<W: Widen, const R: usize, const FMA: bool>(job: Job<'_, W>, k0: usize, cols: &Range<usize>) {
    let Job { x, m, k, w, ld, n, y } = job;
    let mut j = cols.start;
    while j + L <= cols.end {
        let mut wv = [[0f32; L]; R];
        for (i, row) in wv.iter_mut().enumerate() {
            let src = w.add((k0 + i) * ld + j);
            for (l, v) in row.iter_mut().enumerate() {
                *v = (*src.add(l)).widen();
            }
        }
        for r in 0..m {
            let yp = y.add(r * n + j);
            let mut acc = [0f32; L];
            for (l, a) in acc.iter_mut().enumerate() {
                *a = *yp.add(l);
            }
            for (i, row) in wv.iter().enumerate() {
                let a = x[r * k + k0 + i];
                for l in 0..L {
                    acc[l] = madd::<FMA>(a, row[l], acc[l]);
                }
            }
            for (l, a) in acc.iter().enumerate() {
                *yp.add(l) = *a;
            }
        }
        j += L;
    }
    for jj in j..cols.end {
        for r in 0..m {
            let yp = y.add(r * n + jj);
            let mut s = *yp;
            for i in 0..R {
                s = madd::<FMA>(x[r * k + k0 + i], (*w.add((k0 + i) * ld + jj)).widen(), s);
            }
            *yp = s;
        }
    }
}

/// All of `k` for the columns `cols`.
///
/// # Safety
/// As [`strip`].
#[inline(always)]
unsafe fn columns<W: Widen, const FMA: bool>(job: Job<'_, W>, cols: Range<usize>) {
    let k = job.k;
    let mut k0 = 0;
    while k0 + KB <= k {
        strip::<W, KB, FMA>(job, k0, &cols);
        k0 += KB;
    }
    while k0 < k {
        strip::<W, 1, FMA>(job, k0, &cols);
        k0 += 1;
    }
}

/// `y[r, j] = Σ_k x[r, k] · wt[j, k]` for `j` in `cols`: the weight given transposed (its
/// columns contiguous, rows `ld` apart: W_U as a tied W_Eᵀ), as dot products of contiguous
/// runs, sixteen lanes at a time, each weight run read once for all rows.
///
/// # Safety
/// `wt` holds `(n - 1) · ld + k` elements, `y` `m × n`; `cols` lies within `0..n`; no other
/// thread writes `y`'s columns `cols`.
#[inline(always)]
unsafe fn dots<W: Widen, const FMA: bool>(job: Job<'_, W>, cols: Range<usize>) {
    let Job { x, m, k, w: wt, ld, n, y } = job;
    let full = k / L * L;
    for j in cols {
        let row = wt.add(j * ld);
        let mut acc = [[0f32; L]; MAX_ROWS];
        let mut kk = 0;
        while kk < full {
            let mut wv = [0f32; L];
            for (l, v) in wv.iter_mut().enumerate() {
                *v = (*row.add(kk + l)).widen();
            }
            for (r, a) in acc.iter_mut().enumerate().take(m) {
                let xr = &x[r * k + kk..r * k + kk + L];
                for l in 0..L {
                    a[l] = madd::<FMA>(xr[l], wv[l], a[l]);
                }
            }
            kk += L;
        }
        for (r, a) in acc.iter().enumerate().take(m) {
            let mut s = a.iter().sum::<f32>();
            for t in full..k {
                s = madd::<FMA>(x[r * k + t], (*row.add(t)).widen(), s);
            }
            *y.add(r * n + j) += s;
        }
    }
}

/// [`columns`] (`w` row-major) or [`dots`] (`w` transposed) for the columns `cols`.
///
/// # Safety
/// As [`strip`] or [`dots`].
#[inline(always)]
unsafe fn either<W: Widen, const FMA: bool>(transposed: bool, job: Job<'_, W>, cols: Range<usize>) {
    if transposed {
        dots::<W, FMA>(job, cols)
    } else {
        columns::<W, FMA>(job, cols)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn either_avx512<W: Widen>(transposed: bool, job: Job<'_, W>, cols: Range<usize>) {
    either::<W, true>(transposed, job, cols)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn either_avx2<W: Widen>(transposed: bool, job: Job<'_, W>, cols: Range<usize>) {
    either::<W, true>(transposed, job, cols)
}

/// [`either`] compiled for the best instruction set this CPU has (chosen at run time).
///
/// # Safety
/// As [`either`].
unsafe fn best<W: Widen>(transposed: bool, job: Job<'_, W>, cols: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vl") {
            return either_avx512(transposed, job, cols);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return either_avx2(transposed, job, cols);
        }
    }
    either::<W, false>(transposed, job, cols)
}

/// `y = x @ w (+ b)`: `x` `[m, k]` f32, `w` `[k, n]` with rows `ld` apart (or, `transposed`,
/// stored as `[n, k]` with rows `ld` apart), `b` `[n]`; `y` `[m, n]` f32.
fn product<W: Widen>(x: &[f32], m: usize, k: usize, w: &[W], ld: usize, n: usize, transposed: bool, b: Option<&[f32]>) -> Vec<f32> {
    let (outer, inner) = if transposed { (n, k) } else { (k, n) };
    assert!(ld >= inner && w.len() >= (outer - 1) * ld + inner, "skinny: weight slice too short");
    let mut y = vec![0f32; m * n];
    if let Some(b) = b {
        for row in y.chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    }
    let job = Job { x, m, k, w: w.as_ptr(), ld, n, y: y.as_mut_ptr() };
    // SAFETY: `w` holds (outer - 1)·ld + inner elements and `y` m × n (asserted above); the
    // halves' columns are disjoint.
    let run = move |cols: Range<usize>| unsafe { best::<W>(transposed, job, cols) };
    if k * n < MIN_PARALLEL || n < 2 * L {
        run(0..n);
    } else {
        let mid = (n / 2).div_ceil(L) * L;
        rayon::join(|| run(0..mid), || run(mid..n));
    }
    y
}

/// `x @ w + b` through this kernel when it takes it: CPU, `x` `[m ≤ 8, k]` and `w` `[k, n]`
/// in the same dtype (f32, bf16 or f16), `w`'s rows contiguous (a column block of a wider
/// matrix is fine: W_Q out of W_QKV) or its columns contiguous (a transposed matrix: W_U as a
/// tied W_Eᵀ), `b` one row of `n` or none. `None`: not taken.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    let (xd, wd) = (x.dims(), w.dims());
    let dtype = w.dtype();
    let takes = x.device().is_cpu()
        && w.device().is_cpu()
        && xd.len() == 2
        && wd.len() == 2
        && (1..=MAX_ROWS).contains(&xd[0])
        && xd[1] == wd[0]
        && wd[0] > 0
        && wd[1] > 0
        && x.dtype() == dtype
        && matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
        && ((w.layout().stride()[1] == 1 && w.layout().stride()[0] >= wd[1]) || (w.layout().stride()[0] == 1 && w.layout().stride()[1] >= wd[0]))
        && b.is_none_or(|b| b.dims() == [wd[1]]);
    if !takes {
        return Ok(None);
    }
    let (m, k, n) = (xd[0], wd[0], wd[1]);
    let xs: Vec<f32> = x.contiguous()?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let bs: Option<Vec<f32>> = b.map(|b| b.to_dtype(DType::F32)?.to_vec1()).transpose()?;
    let (ws, wl) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*ws else { return Ok(None) };
    // Rows contiguous (the usual `[k, n]`), else columns (a transposed `[n, k]`).
    let transposed = wl.stride()[1] != 1;
    let (start, ld) = (wl.start_offset(), if transposed { wl.stride()[1] } else { wl.stride()[0] });
    let end = start + if transposed { (n - 1) * ld + k } else { (k - 1) * ld + n };
    let y = match cpu {
        CpuStorage::F32(v) => product(&xs, m, k, &v[start..end], ld, n, transposed, bs.as_deref()),
        CpuStorage::BF16(v) => product(&xs, m, k, &v[start..end], ld, n, transposed, bs.as_deref()),
        CpuStorage::F16(v) => product(&xs, m, k, &v[start..end], ld, n, transposed, bs.as_deref()),
        _ => return Ok(None),
    };
    let dev = Device::Cpu;
    let t = match dtype {
        DType::BF16 => Tensor::from_vec(y.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>(), (m, n), &dev)?,
        DType::F16 => Tensor::from_vec(y.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(), (m, n), &dev)?,
        _ => Tensor::from_vec(y, (m, n), &dev)?,
    };
    Ok(Some(t))
}

#[cfg(test)]
#[path = "skinny_tests.rs"]
mod tests;
