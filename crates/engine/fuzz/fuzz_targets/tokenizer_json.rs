//! The input is tokenizer.json; only the tokenizer is loaded (with the seed's
//! tokenizer_config.json and special_tokens_map.json) and then used on plain text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_engine_fuzz::{check_tokenizer, Scratch};

fuzz_target!(|tokenizer: &[u8]| {
    check_tokenizer(Scratch::get().with("tokenizer.json", tokenizer));
});
