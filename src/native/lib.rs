//! The Node addon: thin napi bindings over `tl-engine`. Bindings convert types, map errors and
//! wrap tasks; every export runs inside `guard` so a Rust panic becomes a JS error.
#![deny(clippy::all)]

mod alloc;
mod bert;
mod config;
mod device;
mod errors;
mod generate;
mod grad;
mod hub;
mod kv;
mod lens;
mod model;
mod run;
mod slot;
mod tensor;
mod tokenizer;
mod train;
mod t5;
mod torch_io;

/// Runs once when the addon loads, before any candle work: candle's elementwise pool gets a
/// short spin limit (see `tl_engine::kernels::threads`) and the allocator a longer purge delay
/// (see `alloc::tune`), each unless the user set one.
#[napi_derive::module_init]
fn init() {
    alloc::tune();
    tl_engine::kernels::threads::tune_candle_pool();
}
