//! The HuggingFace hub cache layout: `models--{org}--{name}/refs/{revision}` names a snapshot
//! folder `snapshots/{commit}/` that holds the files.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};

/// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

/// `gpt2` → `models--gpt2`; `EleutherAI/pythia-70m` → `models--EleutherAI--pythia-70m`.
pub fn repo_folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

/// The snapshot folder of `repo_id` at `revision` (a branch/tag name under `refs/`, or a commit).
/// `Ok(None)` when the cache does not hold it.
pub fn find_snapshot(cache: &Path, repo_id: &str, revision: &str) -> Result<Option<PathBuf>> {
    let repo = cache.join(repo_folder_name(repo_id));
    if !repo.is_dir() {
        return Ok(None);
    }
    let ref_file = repo.join("refs").join(revision);
    let commit = if ref_file.is_file() {
        std::fs::read_to_string(&ref_file)?.trim().to_string()
    } else {
        revision.to_string()
    };
    let snap = repo.join("snapshots").join(&commit);
    Ok(if snap.is_dir() { Some(snap) } else { None })
}

/// A model's files: a folder (snapshot or local) to read named files from.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
}

impl ModelFiles {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.path(name).is_file()
    }
    pub fn require(&self, name: &str) -> Result<PathBuf> {
        let p = self.path(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(ErrorCode::MissingFile, format!("'{name}' is missing from {}", self.dir.display())))
        }
    }
    pub fn read_json(&self, name: &str) -> Result<serde_json::Value> {
        let p = self.require(name)?;
        let text = std::fs::read_to_string(&p)?;
        serde_json::from_str(&text).map_err(|e| Error::corrupt(format!("{} is not valid JSON: {e}", p.display())))
    }
}
