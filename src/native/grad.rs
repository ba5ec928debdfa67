//! Backward passes from JS: `backward(root, dispatch)` runs candle's backprop on the JS thread
//! and calls `dispatch(runId, hookId, seq, grad)` at every gradient tap it reaches; the
//! dispatcher returns a replacement gradient or nothing.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::Tensor;
use tl_engine::model::grad::{self, GradEvent};
use tl_engine::{Error, ErrorCode};

use crate::errors::{guard, IntoNapi};
use crate::model::returned_tensor;
use crate::tensor::{wrap, NativeTensor};

fn hook_err(e: napi::Error) -> Error {
    Error::new(ErrorCode::Hook, e.reason.clone())
}

#[napi]
pub fn backward(env: Env, root: &NativeTensor, dispatch: Function<FnArgs<(u32, u32, u32, NativeTensor)>, Unknown>) -> Result<()> {
    guard(|| {
        let root = root.tensor()?.clone();
        let mut cb = |ev: &GradEvent| -> tl_engine::Result<Option<Tensor>> {
            let g = wrap(&env, ev.grad.clone()).map_err(hook_err)?;
            let ret = dispatch.call(FnArgs::from((ev.run, ev.hook, ev.seq, g))).map_err(hook_err)?;
            returned_tensor(&env, ret)
        };
        grad::backward(&root, &mut cb).napi()
    })
}

/// Ids of gradient runs whose graphs are gone (their JS hooks can be forgotten).
#[napi]
pub fn take_finished_grad_runs() -> Vec<u32> {
    grad::take_finished_runs()
}
