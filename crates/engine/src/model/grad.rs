//! Gradients at hook points: TL's backward hooks and `run_with_cache(incl_bwd=True)`.
//!
//! A run with gradient taps builds candle's autograd graph (its residual stream starts from a
//! `Var`) and wraps the activation at each tapped hook point in an identity op, [`GradTap`].
//! When the user calls [`backward`] on a scalar that depends on the run, candle's backprop
//! reaches each tap with the total gradient of its hook point's output (torch's
//! `grad_output`), hands it to the callback, and passes on the callback's replacement (or the
//! gradient unchanged) upstream. As with torch's module hooks, the taps of a run are fixed when
//! its forward runs: hooks removed afterwards still fire.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, Var};

use crate::error::{Error, ErrorCode, Result};

/// One gradient reaching a tapped hook point during [`backward`].
pub struct GradEvent<'a> {
    /// The run that created the tap (an id chosen by the caller of the forward).
    pub run: u32,
    /// The hook id.
    pub hook: u32,
    /// Creation order of the tap within its run: TL's backward hooks fire in reverse of it.
    pub seq: u32,
    pub grad: &'a Tensor,
}

/// What a backward callback does with a gradient: `Some` replaces it upstream.
pub type GradCallback<'a> = dyn FnMut(&GradEvent) -> Result<Option<Tensor>> + 'a;

/// Runs whose taps no longer exist (their graph was dropped): the binding drains this list to
/// forget the JS hooks it kept for them.
static FINISHED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Drains the ids of runs whose graphs are gone.
pub fn take_finished_runs() -> Vec<u32> {
    match FINISHED.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    }
}

/// The gradient side of one forward run: its id and the tap counter.
pub struct GradRun {
    id: u32,
    next_seq: AtomicU32,
}

impl GradRun {
    pub fn new(id: u32) -> Arc<Self> {
        Arc::new(GradRun { id, next_seq: AtomicU32::new(0) })
    }

    /// Wraps `t` (the hook point's final output) in a tap for `hook`.
    pub fn tap(self: &Arc<Self>, hook: usize, t: Tensor) -> Result<Tensor> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let op = GradTap { run: self.clone(), hook: hook as u32, seq };
        Ok(t.contiguous()?.apply_op1(op)?)
    }

    /// A leaf the autograd graph of the run starts from (a copy of `t`), unless `t` is already
    /// in a graph (computed from trainable weights): then the graph goes on through it.
    pub fn root(&self, t: &Tensor) -> Result<Tensor> {
        if t.track_op() {
            return Ok(t.clone());
        }
        Ok(Var::from_tensor(t)?.as_tensor().clone())
    }
}

impl Drop for GradRun {
    fn drop(&mut self) {
        match FINISHED.lock() {
            Ok(mut v) => v.push(self.id),
            Err(p) => p.into_inner().push(self.id),
        }
    }
}

struct GradTap {
    run: Arc<GradRun>,
    hook: u32,
    seq: u32,
}

fn copy_contiguous<T: Copy>(v: &[T], l: &Layout) -> candle_core::Result<Vec<T>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(v[a..b].to_vec()),
        None => candle_core::bail!("grad tap: the input is not contiguous"),
    }
}

impl CustomOp1 for GradTap {
    fn name(&self) -> &'static str {
        "hook-point-grad-tap"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(copy_contiguous(v, l)?),
            CpuStorage::F64(v) => CpuStorage::F64(copy_contiguous(v, l)?),
            CpuStorage::F16(v) => CpuStorage::F16(copy_contiguous(v, l)?),
            CpuStorage::BF16(v) => CpuStorage::BF16(copy_contiguous(v, l)?),
            _ => candle_core::bail!("grad tap: gradients need a float tensor"),
        };
        Ok((out, l.shape().clone()))
    }

    /// On the GPU the identity is a same-dtype cast: a fresh contiguous copy.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        Ok((s.to_dtype(l, s.dtype())?, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let event = GradEvent { run: self.run.id, hook: self.hook, seq: self.seq, grad };
        let replaced = with_callback(|cb| cb(&event)).map_err(stash_error)?;
        match replaced {
            None => Ok(Some(grad.clone())),
            Some(r) if r.dims() == grad.dims() && r.dtype() == grad.dtype() => Ok(Some(r)),
            Some(r) => {
                let e = Error::new(
                    ErrorCode::Hook,
                    format!(
                        "a backward hook returned a gradient of shape {:?} ({:?}), expected {:?} ({:?})",
                        r.dims(),
                        r.dtype(),
                        grad.dims(),
                        grad.dtype()
                    ),
                );
                Err(stash_error(e))
            }
        }
    }
}

thread_local! {
    /// The callback of the [`backward`] running on this thread (lifetime erased; only set for
    /// the duration of that call).
    static CALLBACK: Cell<Option<*mut GradCallback<'static>>> = const { Cell::new(None) };
    /// The first engine error a callback raised, to return with its code intact.
    static ERROR: Cell<Option<Error>> = const { Cell::new(None) };
}

/// Keeps `e` (unless an earlier error is kept) for [`backward`] to return with its code, and
/// gives candle an error carrying its message.
fn stash_error(e: Error) -> candle_core::Error {
    let msg = candle_core::Error::Msg(e.message.clone());
    ERROR.with(|slot| {
        let prev = slot.take();
        slot.set(Some(prev.unwrap_or(e)));
    });
    msg
}

/// Calls the current thread's backward callback, if any. While it runs the slot is empty, so a
/// nested [`backward`] (from inside a hook) installs its own.
fn with_callback(f: impl FnOnce(&mut GradCallback<'static>) -> Result<Option<Tensor>>) -> Result<Option<Tensor>> {
    let Some(ptr) = CALLBACK.with(|c| c.take()) else { return Ok(None) };
    // SAFETY: the pointer was made from a `&mut` that `backward` holds for the whole call and
    // restores below; no other reference to the callback exists while it is taken out.
    let r = f(unsafe { &mut *ptr });
    CALLBACK.with(|c| c.set(Some(ptr)));
    r
}

/// Backpropagates from the scalar `root` through the runs it depends on, calling `cb` at every
/// gradient tap it reaches (in a dependency order: a tap fires once all of its uses are done).
pub fn backward(root: &Tensor, cb: &mut GradCallback) -> Result<()> {
    if !root.track_op() {
        return Err(Error::invalid(
            "this tensor does not depend on a run with backward hooks or inclBwd, so it has no gradient graph",
        ));
    }
    if root.elem_count() != 1 {
        return Err(Error::shape(format!(
            "backward needs a scalar (one element), got shape {:?}: reduce it first (e.g. .sum())",
            root.dims()
        )));
    }
    // SAFETY: only the lifetime is erased; the pointer is removed from the slot before this
    // function returns (also on error and on panic, via the guard), so it never outlives `cb`.
    let ptr: *mut GradCallback<'static> = unsafe { std::mem::transmute::<*mut GradCallback<'_>, *mut GradCallback<'static>>(cb) };
    struct Restore(Option<*mut GradCallback<'static>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CALLBACK.with(|c| c.set(self.0.take()));
        }
    }
    let _restore = Restore(CALLBACK.with(|c| c.replace(Some(ptr))));
    ERROR.with(|e| e.set(None));
    let r = root.backward();
    let stashed = ERROR.with(|e| e.take());
    match (r, stashed) {
        (Ok(_grads), _) => Ok(()),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_tap_sees_the_gradient_and_its_replacement_flows_upstream() {
        let run = GradRun::new(7);
        let x = run.root(&Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap()).unwrap();
        let h = run.tap(4, (&x * 3.0).unwrap()).unwrap();
        let y = (h.sqr().unwrap().sum_all().unwrap() * 0.5).unwrap(); // dy/dh = h
        let mut seen = Vec::new();
        let mut cb = |ev: &GradEvent| -> Result<Option<Tensor>> {
            seen.push((ev.run, ev.hook, ev.seq, ev.grad.to_vec1::<f32>()?));
            Ok(Some(ev.grad.zeros_like()?))
        };
        backward(&y, &mut cb).unwrap();
        assert_eq!(seen, vec![(7, 4, 0, vec![3f32, 6., 9.])]);
        drop((x, h, y, run));
        assert!(take_finished_runs().contains(&7));
    }

    #[test]
    fn backward_needs_a_scalar_with_a_graph() {
        let plain = Tensor::new(3f32, &Device::Cpu).unwrap();
        let mut cb = |_: &GradEvent| -> Result<Option<Tensor>> { Ok(None) };
        assert_eq!(backward(&plain, &mut cb).unwrap_err().code, ErrorCode::InvalidArgument);
        let run = GradRun::new(8);
        let x = run.root(&Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap()).unwrap();
        let v = run.tap(0, x).unwrap();
        assert_eq!(backward(&v, &mut cb).unwrap_err().code, ErrorCode::ShapeMismatch);
    }

    #[test]
    fn a_callback_error_keeps_its_code() {
        let run = GradRun::new(9);
        let x = run.root(&Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap()).unwrap();
        let y = run.tap(1, x).unwrap().sum_all().unwrap();
        let mut cb = |_: &GradEvent| -> Result<Option<Tensor>> { Err(Error::new(ErrorCode::Aborted, "stop")) };
        assert_eq!(backward(&y, &mut cb).unwrap_err().code, ErrorCode::Aborted);
    }
}
