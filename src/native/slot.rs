//! How each native model class (decoder, encoder, encoder-decoder) holds its model: one shared
//! `Arc` that runs clone for themselves, replaced whole when a flag, device or set of weights
//! changes, and taken on `dispose()`. Every method takes `&self`, so a JS hook running during a
//! forward on the JS thread may call any of them, `dispose()` included: runs in flight keep their
//! own `Arc` and finish normally; the memory goes when the last of them ends.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use napi::{Env, Result};
use tl_engine::{Error, ErrorCode};

use crate::errors::to_napi;

pub(crate) struct ModelSlot<M> {
    model: RefCell<Option<Arc<M>>>,
    /// The bytes of weights reported to V8 as external memory (so its GC sees them).
    bytes: Cell<i64>,
}

impl<M> ModelSlot<M> {
    /// Holds `model` and reports its `bytes` of weights to V8.
    pub fn new(env: &Env, model: M, bytes: i64) -> Result<Self> {
        env.adjust_external_memory(bytes)?;
        Ok(ModelSlot { model: RefCell::new(Some(Arc::new(model))), bytes: Cell::new(bytes) })
    }

    /// The model, or `TL_DISPOSED`.
    pub fn get(&self) -> Result<Arc<M>> {
        self.model.borrow().clone().ok_or_else(|| to_napi(Error::new(ErrorCode::Disposed, "this model was disposed")))
    }

    /// Replaces the model (same weights' size); runs in flight keep the old one.
    pub fn replace(&self, next: M) {
        *self.model.borrow_mut() = Some(Arc::new(next));
    }

    /// Replaces the model with one of `bytes` of weights, reporting the difference to V8.
    pub fn replace_sized(&self, env: &Env, next: M, bytes: i64) -> Result<()> {
        env.adjust_external_memory(bytes - self.bytes.replace(bytes))?;
        self.replace(next);
        Ok(())
    }

    /// Clones the model, lets `edit` change the clone, and holds it: the model is unchanged
    /// when `edit` fails.
    pub fn edit(&self, edit: impl FnOnce(&mut M) -> tl_engine::Result<()>) -> Result<()>
    where
        M: Clone,
    {
        let mut next = M::clone(&*self.get()?);
        edit(&mut next).map_err(to_napi)?;
        self.replace(next);
        Ok(())
    }

    /// Lets go of the model (freed when the last run holding it ends) and its V8 report, and
    /// hands freed memory back to the system.
    pub fn dispose(&self, env: &Env) -> Result<()> {
        let had = self.model.borrow_mut().take().is_some();
        if had && self.bytes.get() != 0 {
            env.adjust_external_memory(-self.bytes.replace(0))?;
        }
        crate::alloc::release_free_memory();
        Ok(())
    }

    pub fn is_disposed(&self) -> bool {
        self.model.borrow().is_none()
    }
}
