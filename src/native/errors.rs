//! Engine errors → JS errors. The message carries the stable code as `CODE|message`; the TS
//! layer turns it into a `TransformerLensError` with `code`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tl_engine::{Error, ErrorCode};

pub fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{}|{}", e.code.as_str(), e.message))
}

pub trait IntoNapi<T> {
    fn napi(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for tl_engine::Result<T> {
    fn napi(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

impl<T> IntoNapi<T> for Result<T, tl_engine::candle_core::Error> {
    fn napi(self) -> napi::Result<T> {
        self.map_err(|e| to_napi(Error::from(e)))
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `f`, turning a panic into a `TL_INTERNAL` error.
pub fn guard<T>(f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(to_napi(Error::new(ErrorCode::Internal, format!("internal error (Rust panic): {}", panic_message(p))))),
    }
}

pub fn invalid(msg: impl Into<String>) -> napi::Error {
    to_napi(Error::invalid(msg))
}

/// Locks state shared with pool tasks without waiting: busy is an error naming `what`.
pub fn try_lock<'a, T>(m: &'a std::sync::Mutex<T>, busy: &str) -> napi::Result<std::sync::MutexGuard<'a, T>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Err(to_napi(Error::new(ErrorCode::InvalidArgument, busy.to_string()))),
    }
}
