//! Writing a weight's numbers in place. Freshly loaded weights are owned by nobody else, so
//! processing them in place avoids a fresh buffer (page faults) per step; weights that may be
//! shared (the public `process`) are copied first.

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp1, Layout, Storage, Tensor};

use crate::error::{Error, Result};
use crate::kernels::is_cpu_f32;

/// Who else may hold a weight's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Just loaded: only these weights refer to their storage (a view of another weight aside,
    /// which callers check with `same_storage`). Written in place.
    Fresh,
    /// Possibly shared with a caller: copied before writing.
    Shared,
}

struct Apply<F> {
    f: RefCell<Option<F>>,
    err: RefCell<Option<Error>>,
}

impl<F: FnOnce(&mut [f32]) -> Result<()>> InplaceOp1 for Apply<F> {
    fn name(&self) -> &'static str {
        "tl-process-in-place"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(v), Some((a, b))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("in-place processing takes contiguous f32 weights")
        };
        match (self.f.borrow_mut().take(), v.get_mut(a..b)) {
            (Some(f), Some(data)) => *self.err.borrow_mut() = f(data).err(),
            _ => candle_core::bail!("in-place processing: bad layout or op applied twice"),
        }
        Ok(())
    }
}

/// `f` on the numbers of `t` (contiguous f32 on the CPU, else None): in place when `Fresh`,
/// on a copy when `Shared`. Returns the tensor holding the result.
pub fn update_f32(t: &Tensor, own: Ownership, f: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<Option<Tensor>> {
    if !is_cpu_f32(t) {
        return Ok(None);
    }
    let target = match own {
        Ownership::Fresh => t.clone(),
        Ownership::Shared => t.copy()?,
    };
    let op = Apply { f: RefCell::new(Some(f)), err: RefCell::new(None) };
    target.inplace_op1(&op)?;
    match op.err.into_inner() {
        Some(e) => Err(e),
        None => Ok(Some(target)),
    }
}

/// Whether `a` and `b` are views of one f32 CPU buffer (`W_U` as the transpose of `W_E`); the
/// in-place kernels only write f32 CPU weights.
pub fn same_storage(a: &Tensor, b: &Tensor) -> bool {
    let ptr = |t: &Tensor| match &*t.storage_and_layout().0 {
        Storage::Cpu(CpuStorage::F32(v)) => Some(v.as_ptr() as usize),
        _ => None,
    };
    matches!((ptr(a), ptr(b)), (Some(x), Some(y)) if x == y)
}
