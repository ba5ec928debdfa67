//! The input is the JSON header of model.safetensors (the seed's data section follows it):
//! shapes, dtypes, offsets, names and structure against the loader's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_engine_fuzz::{check_model, with_header, Scratch};

fuzz_target!(|header: &[u8]| {
    static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let seed = SEED.get_or_init(|| Scratch::seed("model.safetensors"));
    let dir = Scratch::get().with("model.safetensors", &with_header(seed, header));
    check_model(dir);
});
