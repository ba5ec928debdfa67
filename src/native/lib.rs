//! The Node addon: thin napi bindings over `tl-engine`. Bindings convert types, map errors and
//! wrap tasks; every export runs inside `guard` so a Rust panic becomes a JS error.
#![deny(clippy::all)]

mod errors;
mod generate;
mod hub;
mod kv;
mod model;
mod run;
mod tensor;
mod tokenizer;
