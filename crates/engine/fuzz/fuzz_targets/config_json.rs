//! The input is config.json; the seed's weights and tokenizer stay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_engine_fuzz::{check_model, Scratch};

fuzz_target!(|config: &[u8]| {
    check_model(Scratch::get().with("config.json", config));
});
