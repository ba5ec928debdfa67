//! The Node addon: thin napi bindings over `tl-engine`. Bindings convert types, map errors and
//! wrap tasks; every export runs inside `guard` so a Rust panic becomes a JS error.
#![deny(clippy::all)]

mod errors;
mod generate;
mod grad;
mod hub;
mod kv;
mod model;
mod run;
mod tensor;
mod tokenizer;

/// Runs once when the addon loads, before any candle work. Candle's elementwise pool spins
/// ~25k iterations after every op waiting for the next one; on few cores that spinning steals
/// the cores gemm's threads need, so the default here is short (an explicit setting wins).
#[napi_derive::module_init]
fn init() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "200");
    }
}
