//! The skinny kernel's loops, written once over [`Simd`] (kernels/skinny_simd.rs) and compiled
//! for each instruction set: row-major weights as strips of [`KB`] rows multiplied into the
//! rows' accumulators, transposed weights as dot products of contiguous runs. `M`, the number
//! of rows (1 to 8), is a compile-time constant, so every row's accumulators stay in registers.

use std::ops::Range;

use super::skinny_simd::{Elem, Simd, L};

/// Weight rows per pass over a column strip.
pub const KB: usize = 8;
/// How far ahead the row-major loops have the weight fetched into L2: two passes of [`KB`] rows.
/// Neither the hardware prefetchers nor a nearer software prefetch keep one core's loads
/// streaming (measured on Zen 4 at one row: bf16 from 9.6 to 14–17 GB/s, f32 from 13 to 15).
const AHEAD_ROWS: usize = 2 * KB;
/// The same for the dot products' runs: 16 KiB further on (from 7–11 GB/s to 16–18).
const AHEAD_BYTES: usize = 16 << 10;

/// One product `y += x @ w` over `k` weight rows: row `r` of `x` (f32) at `x[r · xs..][..k]`,
/// the weight at `w` (rows `ld` elements apart: `[k, n]`, or `[n, k]` when transposed), the f32
/// output `y` `[rows, n]`. Shared by the two halves of a split product, each writing its own
/// columns of `y` or its own `y`.
pub struct Job<'a, W> {
    pub x: &'a [f32],
    pub xs: usize,
    pub k: usize,
    pub w: *const W,
    pub ld: usize,
    pub n: usize,
    pub y: *mut f32,
}

impl<W> Clone for Job<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W> Copy for Job<'_, W> {}
// SAFETY: the pointers are only read (`w`) or written at disjoint columns or buffers (`y`).
unsafe impl<W: Sync> Send for Job<'_, W> {}
unsafe impl<W: Sync> Sync for Job<'_, W> {}

/// `y[.., cols] += x[.., k0..k0 + R] @ w[k0..k0 + R, cols]` for `M` rows: each weight element
/// is widened once and multiplied into every row's accumulator, in order of `k`.
///
/// # Safety
/// `w` holds `(k - 1) · ld + n` elements, `x` `(M - 1) · xs + k`, `y` `M × n`; `cols` lies
/// within `0..n`, `k0 + R ≤ k`; no other thread writes `y`'s columns `cols`; the CPU has `S`'s
/// instruction set.
#[inline(always)]
unsafe fn strip<S: Simd, W: Elem, const M: usize, const R: usize>(job: Job<'_, W>, k0: usize, cols: &Range<usize>) {
    let Job { x, xs, w, ld, n, y, .. } = job;
    let xp = x.as_ptr();
    // One or two rows: their R inputs broadcast once for the whole strip.
    let hoist = M * R <= 16;
    let mut xb = [[S::zero(); R]; M];
    if hoist {
        for (r, row) in xb.iter_mut().enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v = S::splat(*xp.add(r * xs + k0 + i));
            }
        }
    }
    let mut j = cols.start;
    while j + L <= cols.end {
        let mut wv = [S::zero(); R];
        for (i, v) in wv.iter_mut().enumerate() {
            let p = w.add((k0 + i) * ld + j);
            S::prefetch(p.wrapping_add(AHEAD_ROWS * ld));
            *v = S::load(p);
        }
        for r in 0..M {
            let yp = y.add(r * n + j);
            let mut acc = S::loadf(yp);
            for (i, v) in wv.iter().enumerate() {
                let a = if hoist { xb[r][i] } else { S::splat(*xp.add(r * xs + k0 + i)) };
                acc = S::madd(a, *v, acc);
            }
            S::store(yp, acc);
        }
        j += L;
    }
    for jj in j..cols.end {
        for r in 0..M {
            let yp = y.add(r * n + jj);
            let mut s = *yp;
            for i in 0..R {
                s = S::madd1(*xp.add(r * xs + k0 + i), (*w.add((k0 + i) * ld + jj)).widen(), s);
            }
            *yp = s;
        }
    }
}

/// All of the job's `k` rows for the columns `cols`, [`KB`] weight rows per pass.
///
/// # Safety
/// As [`strip`].
#[inline(always)]
unsafe fn columns<S: Simd, W: Elem, const M: usize>(job: Job<'_, W>, cols: Range<usize>) {
    let k = job.k;
    let mut k0 = 0;
    while k0 + KB <= k {
        strip::<S, W, M, KB>(job, k0, &cols);
        k0 += KB;
    }
    while k0 < k {
        strip::<S, W, M, 1>(job, k0, &cols);
        k0 += 1;
    }
}

/// `y[r, j + c] += Σ_k x[r, k] · wt[j + c, k]` for `c < C`: `C` columns of a transposed weight
/// (each a contiguous run of `k`) for `M` rows. Lane `l` sums the products at `k ≡ l (mod 16)`
/// in order of `k`, then the lanes are summed ([`Simd::sum`]), then the tail of `k` is added in
/// order.
///
/// # Safety
/// `wt` holds `(n - 1) · ld + k` elements, `x` `(M - 1) · xs + k`, `y` `M × n`; `j + C ≤ n`;
/// no other thread writes `y`'s columns `j..j + C`; the CPU has `S`'s instruction set.
#[inline(always)]
unsafe fn dot_group<S: Simd, W: Elem, const M: usize, const C: usize>(job: Job<'_, W>, j: usize) {
    let Job { x, xs, k, w: wt, ld, n, y } = job;
    let xp = x.as_ptr();
    let full = k / L * L;
    let mut acc = [[S::zero(); M]; C];
    let mut kk = 0;
    while kk < full {
        let mut wv = [S::zero(); C];
        for (c, v) in wv.iter_mut().enumerate() {
            let p = wt.add((j + c) * ld + kk);
            S::prefetch((p as *const u8).wrapping_add(AHEAD_BYTES));
            *v = S::load(p);
        }
        for r in 0..M {
            let xv = S::loadf(xp.add(r * xs + kk));
            for c in 0..C {
                acc[c][r] = S::madd(xv, wv[c], acc[c][r]);
            }
        }
        kk += L;
    }
    for (c, rows) in acc.iter().enumerate() {
        let src = wt.add((j + c) * ld);
        for (r, a) in rows.iter().enumerate() {
            let mut s = S::sum(*a);
            for t in full..k {
                s = S::madd1(*xp.add(r * xs + t), (*src.add(t)).widen(), s);
            }
            *y.add(r * n + j + c) += s;
        }
    }
}

/// `y[r, j] += Σ_k x[r, k] · wt[j, k]` for `j` in `cols`: the weight given transposed (its
/// columns contiguous, rows `ld` apart: W_U as a tied W_Eᵀ), as dot products of contiguous
/// runs, each weight run read once for all rows; four columns at a time for one or two rows,
/// two for more (at most 16 accumulators).
///
/// # Safety
/// As [`dot_group`], for every column of `cols`.
#[inline(always)]
unsafe fn dots<S: Simd, W: Elem, const M: usize>(job: Job<'_, W>, cols: Range<usize>) {
    let mut j = cols.start;
    if M <= 2 {
        while j + 4 <= cols.end {
            dot_group::<S, W, M, 4>(job, j);
            j += 4;
        }
    } else {
        while j + 2 <= cols.end {
            dot_group::<S, W, M, 2>(job, j);
            j += 2;
        }
    }
    while j < cols.end {
        dot_group::<S, W, M, 1>(job, j);
        j += 1;
    }
}

/// [`columns`] (`w` row-major) or [`dots`] (`w` transposed) for the columns `cols` and
/// `m ≤ 8` rows (`M = m` chosen here).
///
/// # Safety
/// As [`strip`] or [`dot_group`] for `M = m`.
#[inline(always)]
pub unsafe fn either<S: Simd, W: Elem>(transposed: bool, m: usize, job: Job<'_, W>, cols: Range<usize>) {
    macro_rules! rows {
        ($($mm:literal)*) => {
            match m {
                $($mm => if transposed { dots::<S, W, $mm>(job, cols) } else { columns::<S, W, $mm>(job, cols) },)*
                _ => if transposed { dots::<S, W, 8>(job, cols) } else { columns::<S, W, 8>(job, cols) },
            }
        };
    }
    rows!(1 2 3 4 5 6 7)
}
