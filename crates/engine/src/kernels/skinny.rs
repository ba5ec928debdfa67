//! `x @ W (+ b)` for a few rows (decode steps: one row per sequence, at most [`MAX_ROWS`]),
//! streaming the weight once at memory speed, for f32, bf16 and f16 weights.
//!
//! A general GEMM packs panels of the weight for reuse across rows; with one to eight rows there
//! is nothing to reuse, and gemm reads the weight at a third to a half of what the memory gives
//! (see DESIGN.md's GEMM facts). Here every weight element is read once and widened to f32 as it
//! loads, and the rows' f32 accumulators live in registers and in the output (the loops are in
//! kernels/skinny_loops.rs, their vectors in kernels/skinny_simd.rs). A row-major weight is
//! split between the two cores by rows of `k` (each streams a contiguous half), a transposed one
//! by columns. Sums are in f32 in a fixed order that does not depend on the cores; the result is
//! rounded once to the weight's dtype, as torch's 16-bit products (f32 accumulation) do.

use std::ops::Range;

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;

use super::skinny_loops::{either, Job, KB};
#[cfg(target_arch = "x86_64")]
use super::skinny_simd::{Avx2, Avx512};
use super::skinny_simd::{Elem, Plain, L};

/// The most rows the kernel takes; more go to the blocked GEMM.
pub const MAX_ROWS: usize = 8;
/// Below this many weight elements the product stays on one core.
const MIN_PARALLEL: usize = 1 << 16;

/// The instruction sets the loops are compiled for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Plain,
}

/// The best of [`Isa`] this CPU has (checked at run time).
pub(super) fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("fma") && has!("f16c") && has!("avx2") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") && has!("f16c") {
            return Isa::Avx2;
        }
    }
    Isa::Plain
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn either_avx512<W: Elem>(transposed: bool, m: usize, job: Job<'_, W>, cols: Range<usize>) {
    either::<Avx512, W>(transposed, m, job, cols)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn either_avx2<W: Elem>(transposed: bool, m: usize, job: Job<'_, W>, cols: Range<usize>) {
    either::<Avx2, W>(transposed, m, job, cols)
}

/// The loops compiled for `isa`.
///
/// # Safety
/// As [`either`]; the CPU has `isa`.
unsafe fn run<W: Elem>(isa: Isa, transposed: bool, m: usize, job: Job<'_, W>, cols: Range<usize>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => either_avx512(transposed, m, job, cols),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => either_avx2(transposed, m, job, cols),
        Isa::Plain => either::<Plain, W>(transposed, m, job, cols),
    }
}

/// Where a row-major product's `k` splits into the two halves summed apart (a multiple of
/// [`KB`]; 0 for a short `k`, which is not split).
fn k_split(k: usize) -> usize {
    k / 2 / KB * KB
}

/// `y = x @ w (+ b)`: `x` `[m, k]` f32, `w` `[k, n]` with rows `ld` apart (or, `transposed`,
/// stored as `[n, k]` with rows `ld` apart), `b` `[n]`; `y` `[m, n]` f32, with the loops for
/// `isa`.
///
/// A transposed weight splits by columns: each core reads a contiguous half. A row-major one
/// splits by `k` at `h` ([`k_split`]; a column split would give each core half-rows, too short
/// to stream): `y = (b + x[.., ..h] @ w[..h]) + x[.., h..] @ w[h..]`, on one core or two alike.
fn product<W: Elem>(isa: Isa, x: &[f32], m: usize, k: usize, w: &[W], ld: usize, n: usize, transposed: bool, b: Option<&[f32]>) -> Vec<f32> {
    let (outer, inner) = if transposed { (n, k) } else { (k, n) };
    assert!((1..=MAX_ROWS).contains(&m) && x.len() >= m * k, "skinny: bad input");
    assert!(ld >= inner && w.len() >= (outer - 1) * ld + inner, "skinny: weight slice too short");
    let mut y = vec![0f32; m * n];
    if let Some(b) = b {
        for row in y.chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    }
    let parallel = k * n >= MIN_PARALLEL;
    let job = Job { x, xs: k, k, w: w.as_ptr(), ld, n, y: y.as_mut_ptr() };
    if transposed {
        // SAFETY: `w` holds (n - 1)·ld + k elements, `x` m·k and `y` m × n (asserted above);
        // the halves' columns are disjoint.
        let go = move |cols: Range<usize>| unsafe { run(isa, true, m, job, cols) };
        if parallel && n >= 2 * L {
            let mid = (n / 2).div_ceil(L) * L;
            rayon::join(|| go(0..mid), || go(mid..n));
        } else {
            go(0..n);
        }
        return y;
    }
    let h = k_split(k);
    if h == 0 {
        // SAFETY: as above, all of `k` on one core.
        unsafe { run(isa, false, m, job, 0..n) };
        return y;
    }
    let mut y2 = vec![0f32; m * n];
    let first = Job { k: h, ..job };
    // Rows h.. of `w` start h·ld elements in; `x[h..]` keeps the row stride k.
    let second = Job { x: &x[h..], k: k - h, w: w[h * ld..].as_ptr(), y: y2.as_mut_ptr(), ..job };
    // SAFETY: each half reads its own rows of `w` and its columns of `x` (in bounds, asserted
    // above) and writes its own buffer.
    let go = move |half: Job<'_, W>| unsafe { run(isa, false, m, half, 0..n) };
    if parallel {
        rayon::join(|| go(first), || go(second));
    } else {
        go(first);
        go(second);
    }
    for (a, b) in y.iter_mut().zip(&y2) {
        *a += b;
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
    let xs = super::half16::f32_elements(x)?;
    let bs = b.map(super::half16::f32_elements).transpose()?;
    let (ws, wl) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*ws else { return Ok(None) };
    // Rows contiguous (the usual `[k, n]`), else columns (a transposed `[n, k]`).
    let transposed = wl.stride()[1] != 1;
    let (start, ld) = (wl.start_offset(), if transposed { wl.stride()[1] } else { wl.stride()[0] });
    let end = start + if transposed { (n - 1) * ld + k } else { (k - 1) * ld + n };
    let y = match cpu {
        CpuStorage::F32(v) => product(isa(), &xs, m, k, &v[start..end], ld, n, transposed, bs.as_deref()),
        CpuStorage::BF16(v) => product(isa(), &xs, m, k, &v[start..end], ld, n, transposed, bs.as_deref()),
        CpuStorage::F16(v) => product(isa(), &xs, m, k, &v[start..end], ld, n, transposed, bs.as_deref()),
        _ => return Ok(None),
    };
    let dev = Device::Cpu;
    let t = match dtype {
        DType::BF16 => Tensor::from_vec(super::half16::narrow_bf16(&y), (m, n), &dev)?,
        DType::F16 => {
            let mut h = vec![f16::ZERO; y.len()];
            h.convert_from_f32_slice(&y);
            Tensor::from_vec(h, (m, n), &dev)?
        }
        _ => Tensor::from_vec(y, (m, n), &dev)?,
    };
    Ok(Some(t))
}

#[cfg(test)]
#[path = "skinny_tests.rs"]
mod tests;
