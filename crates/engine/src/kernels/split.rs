//! Two-way data parallelism for the fused kernels and the load path's passes over whole weights
//! (the machines this targets have two cores), on rayon's global pool, the one gemm runs on.
//!
//! Not a scoped thread per call: a forward makes hundreds of these splits, and each fresh thread
//! got a fresh stack, whose first touch the kernel zero-fills (a 2 MiB huge page) and whose exit
//! hands it back: a fifth of a gradient run's time at 1×128 went to that.

use std::ops::Range;

use crate::error::Result;

/// Below this many elements a pass stays on the calling thread (a hand-off costs more).
const MIN_PARALLEL: usize = 1 << 16;

/// `f(part, first_row)` on the two halves of `data` (rows of `row_len`), split at a row boundary.
pub fn par_rows_mut<T: Send>(data: &mut [T], row_len: usize, f: impl Fn(&mut [T], usize) -> Result<()> + Sync) -> Result<()> {
    let rows = data.len().checked_div(row_len).unwrap_or(0);
    if data.len() < MIN_PARALLEL || rows < 2 {
        return f(data, 0);
    }
    let mid = rows / 2;
    let (a, b) = data.split_at_mut(mid * row_len);
    let (first, second) = rayon::join(|| f(a, 0), || f(b, mid));
    first.and(second)
}

/// `f` on the two halves of `0..n` (`work` elements in all, to decide whether to split);
/// both results, first half first.
pub fn par_halves<R: Send>(n: usize, work: usize, f: impl Fn(Range<usize>) -> R + Sync) -> Result<(R, R)> {
    let mid = n / 2;
    if work < MIN_PARALLEL || n < 2 {
        return Ok((f(0..mid), f(mid..n)));
    }
    Ok(rayon::join(|| f(0..mid), || f(mid..n)))
}

/// `f(item)` for every item, the two halves of the items on the two cores.
pub fn par_each_mut<T: Send>(items: &mut [T], f: impl Fn(&mut T) -> Result<()> + Sync) -> Result<()> {
    if items.len() < 2 {
        return items.iter_mut().try_for_each(&f);
    }
    let (a, b) = items.split_at_mut(items.len() / 2);
    let (first, second) = rayon::join(|| a.iter_mut().try_for_each(&f), || b.iter_mut().try_for_each(&f));
    first.and(second)
}
