//! PyTorch zip-pickle checkpoints (`pytorch_model.bin`) made by torch itself
//! (`scripts/reference/make_pickle_fixtures.py`, committed under `__test__/fixtures/pickle`):
//! they load to the same model as the safetensors fixture they were converted from, and the
//! hostile ones are refused with TL_CORRUPT_FILE.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tl_engine::load::hub::ModelFiles;
use tl_engine::load::model::{load_from_dir, LoadOptions};
use tl_engine::load::safetensors::WeightFile;
use tl_engine::load::torch_bin::TorchFile;
use tl_engine::model::hooks::NoHooks;
use tl_engine::model::transformer::{ForwardInput, ForwardOptions};
use tl_engine::process::ProcessOptions;
use tl_engine::ErrorCode;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

fn pickle_dir(name: &str) -> PathBuf {
    fixtures().join("pickle").join(name)
}

fn seed_dir() -> PathBuf {
    let repo = fixtures().join("hub/models--gpt2");
    let rev = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    repo.join("snapshots").join(rev.trim())
}

fn options(processing: bool) -> LoadOptions {
    LoadOptions::cpu_f32("gpt2", if processing { ProcessOptions::ALL } else { ProcessOptions::NONE })
}

fn logits(dir: &Path, processing: bool) -> Vec<f32> {
    let loaded = load_from_dir(dir, &options(processing)).unwrap_or_else(|e| panic!("{}: {:?} {}", dir.display(), e.code, e.message));
    let tokens = Tensor::new(&[[3i64, 141, 59, 26, 5, 500, 92, 65, 3]], &Device::Cpu).unwrap();
    let out = loaded.model.forward(ForwardInput::Tokens(tokens), &ForwardOptions::default(), &mut NoHooks).unwrap();
    out.logits.unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// A scratch folder holding copies of `files` from `from` (renamed by the pairs).
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn scratch(tag: &str, files: &[(PathBuf, &str)]) -> Scratch {
    let d = std::env::temp_dir().join(format!("tl-pickle-load-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (src, name) in files {
        std::fs::copy(src, d.join(name)).unwrap();
    }
    Scratch(d)
}

#[test]
fn bin_and_sharded_bin_give_the_safetensors_logits() {
    for processing in [true, false] {
        let want = logits(&seed_dir(), processing);
        for dir in ["gpt2-bin", "gpt2-bin-sharded"] {
            let got = logits(&pickle_dir(dir), processing);
            assert_eq!(got, want, "{dir} (processing {processing}) differs from the safetensors load");
        }
    }
    let loaded = load_from_dir(&pickle_dir("gpt2-bin"), &options(true)).unwrap();
    assert!(loaded.tokenizer.is_some());
}

#[test]
fn headers_match_the_safetensors_ones() {
    let st = WeightFile::open(&ModelFiles { dir: seed_dir() }, DType::F32, &Device::Cpu).unwrap();
    let bin = WeightFile::open(&ModelFiles { dir: pickle_dir("gpt2-bin") }, DType::F32, &Device::Cpu).unwrap();
    // torch.save keeps the tied lm_head.weight, as a second view of wte's storage.
    assert_eq!(bin.tensor_count(), st.tensor_count() + 1);
    assert_eq!(bin.total_elements(), st.total_elements() + 512 * 32);
    assert!(bin.has("lm_head.weight") && !st.has("lm_head.weight"));
    let f = TorchFile::open(&pickle_dir("gpt2-bin/pytorch_model.bin")).unwrap();
    assert_eq!(f.get("lm_head.weight").unwrap().key, f.get("transformer.wte.weight").unwrap().key);
    for name in ["transformer.wte.weight", "transformer.h.2.attn.c_attn.weight", "transformer.ln_f.bias"] {
        let (a, b) = (st.header(name).unwrap(), bin.header(name).unwrap());
        assert_eq!((a.dtype, a.shape), (b.dtype, b.shape), "{name}");
        assert_eq!(b.dtype_name, "F32");
    }
}

/// Every tensor of `dir`'s pytorch_model.bin equals the safetensors one rounded to float16, and
/// the model loads with logits close to the float32 ones.
fn matches_the_f16_rounded_seed(dir: &str) -> TorchFile {
    let reference = candle_core::safetensors::load(seed_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    let f = TorchFile::open(&pickle_dir(dir).join("pytorch_model.bin")).unwrap();
    for (name, want) in &reference {
        let got = f.load(name, DType::F32, &Device::Cpu).unwrap();
        let want = want.to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(got.dims(), want.dims(), "{dir}: {name}");
        let (g, w): (Vec<f32>, Vec<f32>) = (got.flatten_all().unwrap().to_vec1().unwrap(), want.flatten_all().unwrap().to_vec1().unwrap());
        assert_eq!(g, w, "{dir}: {name}");
    }
    let full = logits(&pickle_dir(dir), true);
    let want = logits(&seed_dir(), true);
    let diff = full.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 0.05, "{dir}: float16 weights moved the logits by {diff}");
    f
}

/// float16, column-major 2-D weights and views at offsets of a shared storage, as torch wrote them.
#[test]
fn strided_f16_views_read_exactly() {
    let f = matches_the_f16_rounded_seed("gpt2-bin-strided-f16");
    let strided = f.tensors().iter().filter(|(_, t)| !t.is_contiguous()).count();
    assert!(strided >= 9, "only {strided} strided tensors");
    assert_eq!(f.get("transformer.ln_f.weight").unwrap().offset, 32);
}

/// torch's legacy (pre-1.6) format, float16.
#[test]
fn legacy_format_reads_exactly() {
    matches_the_f16_rounded_seed("gpt2-bin-legacy-f16");
}

#[test]
fn safetensors_are_preferred_over_a_bin() {
    let seed = seed_dir();
    let hostile = pickle_dir("hostile/posix_system.bin");
    let s = scratch("both", &[(seed.join("config.json"), "config.json"), (seed.join("model.safetensors"), "model.safetensors"), (hostile, "pytorch_model.bin")]);
    assert_eq!(logits(&s.0, true), logits(&seed, true));
}

#[test]
fn hostile_pickles_are_refused() {
    let config = seed_dir().join("config.json");
    for (file, needle) in [("posix_system.bin", "`posix.system`"), ("unknown_opcode.bin", "opcode 0xff")] {
        let s = scratch(file, &[(config.clone(), "config.json"), (pickle_dir("hostile").join(file), "pytorch_model.bin")]);
        let e = load_from_dir(&s.0, &options(true)).err().expect("a hostile pickle must be refused");
        assert_eq!(e.code, ErrorCode::CorruptFile, "{file}: {}", e.message);
        assert!(e.message.contains(needle), "{file}: {:?} does not mention {needle:?}", e.message);
    }
    // A folder with neither format names both.
    let s = scratch("none", &[(config, "config.json")]);
    let e = load_from_dir(&s.0, &options(true)).err().unwrap();
    assert_eq!(e.code, ErrorCode::MissingFile);
    assert!(e.message.contains("pytorch_model.bin"), "{}", e.message);
}

#[test]
fn a_sharded_index_naming_a_missing_or_escaping_shard_is_refused() {
    let dir = pickle_dir("gpt2-bin-sharded");
    let idx = std::fs::read_to_string(dir.join("pytorch_model.bin.index.json")).unwrap();
    for (tag, bad) in [("missing", "pytorch_model-00009-of-00009.bin"), ("escape", "../pytorch_model-00001-of-00003.bin")] {
        let s = scratch(tag, &[(dir.join("config.json"), "config.json")]);
        std::fs::write(s.0.join("pytorch_model.bin.index.json"), idx.replace("pytorch_model-00002-of-00003.bin", bad)).unwrap();
        for i in 1..=3 {
            let n = format!("pytorch_model-0000{i}-of-00003.bin");
            std::fs::copy(dir.join(&n), s.0.join(&n)).unwrap();
        }
        let e = load_from_dir(&s.0, &options(true)).err().expect("must be refused");
        assert!(matches!(e.code, ErrorCode::MissingFile | ErrorCode::CorruptFile), "{tag}: {:?} {}", e.code, e.message);
    }
}

/// Peak memory of loading a large checkpoint folder (`TL_PICKLE_MEM_DIR`, e.g. a GPT-2 small
/// saved with `save_pretrained(safe_serialization=False)`): run one folder per process, as
/// `TL_PICKLE_MEM_DIR=… cargo test --release -p tl-engine --test pickle_load peak_memory -- --ignored --nocapture`.
#[test]
#[ignore]
fn peak_memory_of_a_large_load() {
    let Some(dir) = std::env::var_os("TL_PICKLE_MEM_DIR") else { return };
    let hwm = || {
        let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        s.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?").to_string()
    };
    let before = hwm();
    let t = std::time::Instant::now();
    let loaded = load_from_dir(Path::new(&dir), &options(std::env::var_os("TL_PICKLE_MEM_RAW").is_none())).unwrap();
    let params = loaded.model.cfg().n_params.unwrap_or(0);
    eprintln!("loaded {} in {:?}: {before} -> {} (n_params {params})", Path::new(&dir).display(), t.elapsed(), hwm());
}
