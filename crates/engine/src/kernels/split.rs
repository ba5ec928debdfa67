//! Two-way data parallelism for the load path's passes over whole weights (the machines this
//! targets have two cores): one half on a scoped thread, the other on the caller's.

use std::ops::Range;

use crate::error::{Error, ErrorCode, Result};

/// Below this many elements a pass stays on the calling thread (a spawn costs more).
const MIN_PARALLEL: usize = 1 << 16;

fn worker_panicked() -> Error {
    Error::new(ErrorCode::Internal, "a weight-loading worker thread panicked")
}

/// `f(part, first_row)` on the two halves of `data` (rows of `row_len`), split at a row boundary.
pub fn par_rows_mut<T: Send>(data: &mut [T], row_len: usize, f: impl Fn(&mut [T], usize) -> Result<()> + Sync) -> Result<()> {
    let rows = data.len().checked_div(row_len).unwrap_or(0);
    if data.len() < MIN_PARALLEL || rows < 2 {
        return f(data, 0);
    }
    let mid = rows / 2;
    let (a, b) = data.split_at_mut(mid * row_len);
    std::thread::scope(|s| {
        let h = s.spawn(|| f(b, mid));
        let first = f(a, 0);
        h.join().map_err(|_| worker_panicked()).and_then(|second| first.and(second))
    })
}

/// `f` on the two halves of `0..n` (`work` elements in all, to decide whether to split);
/// both results, first half first.
pub fn par_halves<R: Send>(n: usize, work: usize, f: impl Fn(Range<usize>) -> R + Sync) -> Result<(R, R)> {
    let mid = n / 2;
    if work < MIN_PARALLEL || n < 2 {
        return Ok((f(0..mid), f(mid..n)));
    }
    std::thread::scope(|s| {
        let h = s.spawn(|| f(mid..n));
        let a = f(0..mid);
        h.join().map(|b| (a, b))
    })
    .map_err(|_| worker_panicked())
}

/// `f(item)` for every item, the first half of the items on a scoped thread.
pub fn par_each_mut<T: Send>(items: &mut [T], f: impl Fn(&mut T) -> Result<()> + Sync) -> Result<()> {
    if items.len() < 2 {
        return items.iter_mut().try_for_each(&f);
    }
    let (a, b) = items.split_at_mut(items.len() / 2);
    std::thread::scope(|s| {
        let h = s.spawn(|| a.iter_mut().try_for_each(&f));
        let second = b.iter_mut().try_for_each(&f);
        h.join().map_err(|_| worker_panicked()).and_then(|first| first.and(second))
    })
}
