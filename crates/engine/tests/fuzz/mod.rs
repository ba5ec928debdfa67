//! The loading fuzzer's parts: a PRNG, mutators of each file of a checkpoint folder, the
//! oracles that say whether a mutated folder must load, must be refused, or may do either, and
//! the child-process runner that loads each case in isolation (see `tests/fuzz_load.rs`).

#![allow(dead_code)]

pub mod cases;
pub mod cfg;
pub mod child;
pub mod json_mut;
pub mod layout;
pub mod pickle;
pub mod rng;
pub mod runner;
pub mod st;
pub mod st_mut;
pub mod tok;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a case must do. Ordered so that combining two is their maximum: one refusal-forcing
/// mutation makes the whole case a must-refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expect {
    /// A valid checkpoint: it must load, and give finite logits.
    MustLoad,
    /// Refusing (with a proper code) and loading are both fine; crashing, hanging, TL_INTERNAL
    /// or non-finite logits are not.
    Either,
    /// Invalid by construction: loading it silently is a bug.
    MustRefuse,
}

impl Expect {
    pub fn and(self, other: Expect) -> Expect {
        self.max(other)
    }
}

/// One entry of a case folder.
#[derive(Clone, Debug)]
pub enum Node {
    File(Vec<u8>),
    Dir,
    /// A symlink to this target; `@OUTSIDE@` and `@ROOT@` are replaced by the case's paths.
    Symlink(String),
    /// A named pipe (opening it for reading blocks until a writer comes: a loader must not).
    Fifo,
    /// A sparse file of this many bytes (zeros), written with `set_len`.
    Sparse(u64),
}

/// A checkpoint folder in memory: `files` go to `<case>/m/`, `outside` to `<case>/outside/`
/// (for shard paths and symlinks that escape the model folder).
#[derive(Clone, Debug, Default)]
pub struct Folder {
    pub files: BTreeMap<String, Node>,
    pub outside: BTreeMap<String, Node>,
    /// The single-file weights the shards were cut from (the weight oracle reads these).
    pub sharded_from: Option<Vec<u8>>,
}

impl Folder {
    pub fn bytes(&self, name: &str) -> Option<&Vec<u8>> {
        match self.files.get(name) {
            Some(Node::File(b)) => Some(b),
            _ => None,
        }
    }
    pub fn set(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.insert(name.to_string(), Node::File(bytes));
    }
}

/// One applied mutation: a short class (for deduplicating failures), a full description, and
/// its own expectation (None: the oracles decide from the resulting files).
#[derive(Clone, Debug)]
pub struct Applied {
    pub class: String,
    pub desc: String,
    pub expect: Option<Expect>,
}

impl Applied {
    pub fn new(class: impl Into<String>, desc: impl Into<String>, expect: Option<Expect>) -> Self {
        Applied { class: class.into(), desc: desc.into(), expect }
    }
}

/// A ready case: the folder to write, what was done to it, and what it must do.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub folder: Folder,
    pub applied: Vec<Applied>,
    pub expect: Expect,
    /// Why the expectation is what it is (the oracles' findings, each with its level).
    pub why: Vec<(Expect, String)>,
    /// Load with TL's weight processing (fold_ln, centering, value-bias folding), as
    /// `fromPretrained`; false: as `fromPretrainedNoProcessing`.
    pub processing: bool,
}

impl Case {
    pub fn class(&self) -> String {
        let c = if self.applied.is_empty() {
            "unmodified seed".to_string()
        } else {
            self.applied.iter().map(|a| a.class.as_str()).collect::<Vec<_>>().join(" + ")
        };
        if self.processing { c } else { format!("{c} [no processing]") }
    }
    pub fn describe(&self) -> String {
        let d = if self.applied.is_empty() {
            "unmodified seed".into()
        } else {
            self.applied.iter().map(|a| a.desc.as_str()).collect::<Vec<_>>().join("; ")
        };
        if self.processing { d } else { format!("{d} (loaded without processing)") }
    }
}

/// The committed fixtures: `__test__/fixtures/hub` of the repository.
pub fn hub_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/hub")
}

/// The snapshot folder of the tiny GPT-2 seed (`models--gpt2/snapshots/<rev>/`).
pub fn seed_dir() -> PathBuf {
    let repo = hub_dir().join("models--gpt2");
    let rev = std::fs::read_to_string(repo.join("refs/main")).expect("the gpt2 fixture has refs/main");
    repo.join("snapshots").join(rev.trim())
}

/// The seed checkpoint, read into memory once per case.
pub fn seed_folder() -> Folder {
    let mut f = Folder::default();
    let dir = seed_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir).expect("seed folder").map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        f.set(&name, std::fs::read(&p).expect("seed file"));
    }
    for need in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(f.bytes(need).is_some(), "the seed {} lacks {need}", dir.display());
    }
    f
}

/// The seed corpus of the cargo-fuzz targets (replayed by the test as well).
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// An environment variable parsed, or a default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok().and_then(|n| n.to_string().parse().ok()),
                None => v.parse().ok(),
            };
            parsed.unwrap_or_else(|| panic!("{name}={v} is not a valid value"))
        }
        _ => default,
    }
}
