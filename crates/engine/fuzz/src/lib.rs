//! Shared harness of the cargo-fuzz targets: a scratch copy of the tiny GPT-2 seed checkpoint
//! per process, one file of it replaced by the fuzz input, then the checks a user's load makes.
//! A finding is a crash, a hang or out-of-memory (libFuzzer's -timeout / -rss_limit_mb /
//! -malloc_limit_mb), a TL_INTERNAL error, a forward that fails or gives non-finite logits after
//! a successful load, or a tokenizer that loads and then panics on plain text: each panics here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tl_engine::candle_core::{Device, Tensor};
use tl_engine::load::model::{load_from_dir, LoadOptions};
use tl_engine::load::tokenizer::Tokenizer;
use tl_engine::model::hooks::NoHooks;
use tl_engine::model::transformer::{ForwardInput, ForwardOptions};
use tl_engine::process::ProcessOptions;
use tl_engine::ErrorCode;

/// The seed: `TL_FUZZ_SEED_DIR`, else the committed `models--gpt2` fixture snapshot.
pub fn seed_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TL_FUZZ_SEED_DIR") {
        return PathBuf::from(d);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../__test__/fixtures/hub/models--gpt2");
    let rev = std::fs::read_to_string(repo.join("refs/main")).expect("the gpt2 fixture has refs/main");
    repo.join("snapshots").join(rev.trim())
}

/// A per-process copy of the seed folder that targets overwrite one file of.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn get() -> &'static Scratch {
        static S: OnceLock<Scratch> = OnceLock::new();
        S.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("tl-engine-fuzz-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for e in std::fs::read_dir(seed_dir()).expect("seed folder") {
                let p = e.unwrap().path();
                std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
            }
            Scratch { dir }
        })
    }

    /// The seed's bytes of `name`.
    pub fn seed(name: &str) -> Vec<u8> {
        std::fs::read(seed_dir().join(name)).unwrap()
    }

    /// Writes `bytes` as `name` and returns the folder.
    pub fn with(&self, name: &str, bytes: &[u8]) -> &Path {
        std::fs::write(self.dir.join(name), bytes).unwrap();
        &self.dir
    }
}

/// A safetensors file: `header` (the fuzz input) in front of the seed's data section.
pub fn with_header(seed: &[u8], header: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&seed[8 + n..]);
    out
}

/// TL's processing on (as `fromPretrained`), or off with TL_FUZZ_NO_PROCESSING=1.
fn options(dir: &Path) -> LoadOptions {
    let process = if std::env::var_os("TL_FUZZ_NO_PROCESSING").is_some() { ProcessOptions::NONE } else { ProcessOptions::ALL };
    LoadOptions::cpu_f32(dir.display().to_string(), process)
}

/// Loads the folder as a user would; if it loads, it must run and give finite logits.
pub fn check_model(dir: &Path) {
    panic_count();
    let loaded = match load_from_dir(dir, &options(dir)) {
        Ok(l) => l,
        Err(e) => {
            assert!(e.code != ErrorCode::Internal, "TL_INTERNAL on load: {}", e.message);
            return;
        }
    };
    let cfg = loaded.model.cfg().clone();
    assert!(cfg.d_vocab > 0 && cfg.n_ctx > 0, "loaded a model with d_vocab {} n_ctx {}", cfg.d_vocab, cfg.n_ctx);
    let pos = cfg.n_ctx.min(7);
    let ids: Vec<i64> = (0..pos).map(|i| ((i * 37 + 5) % cfg.d_vocab) as i64).collect();
    let tokens = Tensor::from_vec(ids, (1, pos), &Device::Cpu).unwrap();
    let out = loaded
        .model
        .forward(ForwardInput::Tokens(tokens), &ForwardOptions::default(), &mut NoHooks)
        .unwrap_or_else(|e| panic!("loaded, but forward failed: {:?} {}", e.code, e.message));
    let logits = out.logits.expect("logits");
    assert_eq!(logits.dims(), [1, pos, cfg.d_vocab_out.max(0) as usize], "logits shape");
    let vals: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    assert!(vals.iter().all(|x| x.is_finite()), "loaded, but logits are not finite");
    if let Some(t) = &loaded.tokenizer {
        exercise(t, cfg.default_prepend_bos);
    }
}

/// Encode/decode/to_tokens on plain text: errors are allowed, panics and TL_INTERNAL are not.
pub fn exercise(t: &Tokenizer, prepend_bos: bool) {
    let before = panic_count();
    let long = format!("{}héllo wörld ✓ 日本語 🦀\n\t end", "The quick brown fox jumps over the lazy dog. ".repeat(100));
    for text in ["", "Hello world", long.as_str()] {
        match t.encode_one(text, true) {
            Ok(ids) => {
                if let Err(e) = t.decode(&ids, false) {
                    assert!(e.code != ErrorCode::Internal, "TL_INTERNAL on decode: {}", e.message);
                }
            }
            Err(e) => assert!(e.code != ErrorCode::Internal, "TL_INTERNAL on encode: {}", e.message),
        }
    }
    let batch = ["Hello world".to_string(), "A somewhat longer second row".to_string()];
    if let Err(e) = t.to_tokens(&batch, prepend_bos, false, None, &Device::Cpu) {
        assert!(e.code != ErrorCode::Internal, "TL_INTERNAL on to_tokens: {}", e.message);
    }
    assert_eq!(panic_count(), before, "the tokenizer loaded, then panicked on plain text (the engine caught it)");
}

/// Loads only the tokenizer of the folder (faster than a whole model) and exercises it.
pub fn check_tokenizer(dir: &Path) {
    panic_count();
    match Tokenizer::from_path(dir) {
        Ok(t) => exercise(&t, true),
        Err(e) => assert!(e.code != ErrorCode::Internal, "TL_INTERNAL on tokenizer load: {}", e.message),
    }
}

/// Panics so far in this process, caught or not. The first call replaces libFuzzer's panic
/// hook (which aborts on any panic, even one the engine catches and turns into an error) by
/// one that counts and prints: an uncaught panic still aborts (libfuzzer-sys catches it at the
/// target's boundary), a caught one is judged by where it happened. TL_FUZZ_STRICT_PANICS=1
/// keeps libFuzzer's hook: every panic is then a crash.
pub fn panic_count() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        if std::env::var_os("TL_FUZZ_STRICT_PANICS").is_none() {
            std::panic::set_hook(Box::new(|info| {
                COUNT.fetch_add(1, Ordering::SeqCst);
                eprintln!("panic: {info}");
            }));
        }
    });
    COUNT.load(Ordering::SeqCst)
}

/// The torch-written seed of the `pickle` target: `TL_FUZZ_BIN_SEED`, else the committed
/// `__test__/fixtures/pickle/gpt2-bin/pytorch_model.bin` (the GPT-2 seed as `torch.save` wrote it).
pub fn bin_seed_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TL_FUZZ_BIN_SEED") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../__test__/fixtures/pickle/gpt2-bin/pytorch_model.bin")
}

/// A per-process copy of the seed folder without model.safetensors, where the input goes in
/// as pytorch_model.bin.
pub fn bin_scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tl-engine-fuzz-bin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(seed_dir()).expect("seed folder") {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n != "model.safetensors") {
                std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
            }
        }
        Scratch { dir }
    })
}

/// The seed .bin's entries re-zipped (stored) with `pkl` as its data.pkl: the pickle reads the
/// seed's storages (`data/0` ... by key).
pub fn bin_with_pickle(pkl: &[u8]) -> Vec<u8> {
    use tl_engine::load::zip::{build_stored, Archive};
    static SEED: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let entries = SEED.get_or_init(|| {
        let bytes = std::fs::read(bin_seed_path()).expect("the pytorch_model.bin seed (scripts/reference/make_pickle_fixtures.py)");
        let a = Archive::parse(&bytes, "seed").expect("the seed is a valid archive");
        a.entries().iter().map(|e| (e.name.clone(), a.data(&bytes, e).to_vec())).collect()
    });
    let refs: Vec<(&str, &[u8])> =
        entries.iter().map(|(n, b)| (n.as_str(), if n.ends_with("/data.pkl") { pkl } else { b.as_slice() })).collect();
    build_stored(&refs, false)
}
