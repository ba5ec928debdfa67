//! A deterministic mutational fuzzer of the loading path (`load::model::load_from_dir`).
//!
//! Seeds are the tiny GPT-2 checkpoint committed under `__test__/fixtures/hub`. Each case
//! copies it to a temp folder, applies one to three mutations (safetensors header and data,
//! config.json, tokenizer.json and its configs, the folder layout), and loads it in a child
//! process (this binary re-run on `fuzz_child`) under a 4 GiB address-space limit and a 20 s
//! timeout: load, forward on fixed tokens (logits of shape [1, pos, d_vocab], all finite),
//! tokenizer encode/decode/to_tokens. Every case must end with `OUTCOME ok` or
//! `OUTCOME err <code>` (not TL_INTERNAL); a crash, hang, TL_INTERNAL, non-finite logits or a
//! forward that fails after a successful load is a failure, and so is loading a case that is
//! invalid by construction (MustRefuse) or refusing a valid one (MustLoad). All failures are
//! reported together, grouped by mutation class and outcome.
//!
//! Environment: TL_FUZZ_CASES (random cases, default 300), TL_FUZZ_SEED (default fixed),
//! TL_FUZZ_ONLY (run only cases whose name contains this), TL_FUZZ_JOBS (children at once),
//! TL_FUZZ_PICKLE_CASES (random pickle cases, default 60), TL_FUZZ_TIMEOUT_S (default 20),
//! TL_FUZZ_AS_LIMIT_MB (default 4096), TL_FUZZ_KEEP (keep
//! failing case folders under target/tmp). See crates/engine/fuzz/README.md.

#![cfg(unix)]

mod fuzz;

use std::path::Path;

use fuzz::cases::{self, Base};
use fuzz::{env_or, runner, Case};

const DEFAULT_SEED: u64 = 0x7e57_10ad_f022;

fn only(cases: Vec<Case>) -> Vec<Case> {
    match std::env::var("TL_FUZZ_ONLY") {
        Ok(pat) if !pat.is_empty() => cases.into_iter().filter(|c| c.name.contains(&pat)).collect(),
        _ => cases,
    }
}

/// The child: does nothing unless the parent handed it a case folder.
#[test]
fn fuzz_child() {
    if let Some(dir) = std::env::var_os(runner::CHILD_ENV) {
        fuzz::child::run(Path::new(&dir));
    }
}

/// The handwritten cases: known loader bugs and the valid variants beside them.
#[test]
fn fuzz_load_regressions() {
    let base = Base::load();
    let cases = only(cases::regressions(&base));
    runner::run_and_assert("regressions", cases, "cargo test --release -p tl-engine --test fuzz_load fuzz_load_regressions --");
}

/// Random mutation stacks, deterministic for a given TL_FUZZ_SEED.
#[test]
fn fuzz_load_random() {
    let base = Base::load();
    let n = env_or("TL_FUZZ_CASES", 300usize);
    let seed = env_or("TL_FUZZ_SEED", DEFAULT_SEED);
    eprintln!("[random] TL_FUZZ_SEED={seed:#x} TL_FUZZ_CASES={n}");
    let cases = only(cases::random(&base, seed, n));
    let rerun = format!("TL_FUZZ_SEED={seed:#x} TL_FUZZ_CASES={n} cargo test --release -p tl-engine --test fuzz_load fuzz_load_random --");
    runner::run_and_assert("random", cases, &rerun);
}

/// PyTorch zip-pickle checkpoints (`pytorch_model.bin`) in place of model.safetensors: the
/// torch-written fixtures, container damage, and random mutations of the pickle, its tensor
/// views and the archive (TL_FUZZ_PICKLE_CASES, default 60; same TL_FUZZ_SEED).
#[test]
fn fuzz_load_pickle() {
    let base = Base::load();
    let n = env_or("TL_FUZZ_PICKLE_CASES", 60usize);
    let seed = env_or("TL_FUZZ_SEED", DEFAULT_SEED);
    let mut cases = fuzz::pickle::fixed(&base);
    cases.extend(fuzz::pickle::random(&base, seed, n));
    let rerun = format!("TL_FUZZ_SEED={seed:#x} TL_FUZZ_PICKLE_CASES={n} cargo test --release -p tl-engine --test fuzz_load fuzz_load_pickle --");
    runner::run_and_assert("pickle", only(cases), &rerun);
}

/// The cargo-fuzz seed corpus (crates/engine/fuzz/corpus), where found crashes are kept.
#[test]
fn fuzz_load_corpus() {
    let base = Base::load();
    let cases = only(cases::corpus(&base));
    runner::run_and_assert("corpus", cases, "cargo test --release -p tl-engine --test fuzz_load fuzz_load_corpus --");
}

/// The oracles agree with themselves on the seed: it must load.
#[test]
fn fuzz_seed_is_must_load() {
    let base = Base::load();
    let c = cases::finalize(&base, "seed".into(), base.folder.clone(), vec![]);
    assert_eq!(c.expect, fuzz::Expect::MustLoad, "{:?}", c.why);
    let cs = cases::random(&base, 1, 50);
    let again = cases::random(&base, 1, 50);
    for (a, b) in cs.iter().zip(&again) {
        assert_eq!(a.describe(), b.describe(), "case generation is not deterministic");
    }
}
