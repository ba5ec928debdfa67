//! The input is the data.pkl of a pytorch_model.bin whose storages are the torch-written seed's
//! (`__test__/fixtures/pickle/gpt2-bin`): opcodes, globals, memo, nesting and tensor views
//! against the pickle reader's allowlist and bounds, then the whole load.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_engine_fuzz::{bin_scratch, bin_with_pickle, check_model};

fuzz_target!(|pkl: &[u8]| {
    let dir = bin_scratch().with("pytorch_model.bin", &bin_with_pickle(pkl));
    check_model(dir);
});
