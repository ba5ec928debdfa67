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

/// huggingface_hub's `repo_folder_name` for a repo type: `model` → `models--{org}--{name}`,
/// `dataset` → `datasets--…`, `space` → `spaces--…`.
pub fn typed_repo_folder_name(repo_id: &str, repo_type: &str) -> Result<String> {
    match repo_type {
        "model" | "dataset" | "space" => Ok(format!("{repo_type}s--{}", repo_id.replace('/', "--"))),
        other => Err(Error::invalid(format!("unknown hub repo type '{other}' (model, dataset or space)"))),
    }
}

/// One path component that stays in its folder (no separators, not `.` or `..`).
fn is_plain_name(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0'])
}

/// The snapshot folder of `repo_id` at `revision` (a branch/tag name under `refs/`, or a commit).
/// `Ok(None)` when the cache does not hold it.
pub fn find_snapshot(cache: &Path, repo_id: &str, revision: &str) -> Result<Option<PathBuf>> {
    find_typed_snapshot(cache, "model", repo_id, revision)
}

/// [`find_snapshot`] for a repo of type `repo_type` (`model`, `dataset` or `space`).
pub fn find_typed_snapshot(cache: &Path, repo_type: &str, repo_id: &str, revision: &str) -> Result<Option<PathBuf>> {
    let repo = cache.join(typed_repo_folder_name(repo_id, repo_type)?);
    if !repo.is_dir() {
        return Ok(None);
    }
    let ref_file = repo.join("refs").join(revision);
    let commit = if ref_file.is_file() {
        let c = std::fs::read_to_string(&ref_file)?.trim().to_string();
        if !is_plain_name(&c) {
            return Err(Error::corrupt(format!("{} names the snapshot {c:?}, which is not a commit hash", ref_file.display())));
        }
        c
    } else if is_plain_name(revision) {
        revision.to_string()
    } else {
        return Ok(None); // not a ref this cache holds, nor a commit
    };
    let snap = repo.join("snapshots").join(&commit);
    Ok(if snap.is_dir() { Some(snap) } else { None })
}

/// The largest JSON file read (config, index, tokenizer): real tokenizer.json files reach ~35 MB.
pub const MAX_JSON_BYTES: u64 = 512 << 20;

/// A model's files: a folder (snapshot or local) to read named files from.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
}

impl ModelFiles {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// A file named inside the folder by another file (a shard in an index): one plain name,
    /// never a path that leaves the folder.
    pub fn named_in_file(&self, name: &str, by: &str) -> Result<PathBuf> {
        if !is_plain_name(name) {
            return Err(Error::corrupt(format!("{by} names the file {name:?}, which is not a plain file name in {}", self.dir.display())));
        }
        self.require(name)
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
        let len = std::fs::metadata(&p)?.len();
        if len > MAX_JSON_BYTES {
            return Err(Error::corrupt(format!("{} is {len} bytes, more than any HF JSON file ({MAX_JSON_BYTES} at most)", p.display())));
        }
        let bytes = std::fs::read(&p)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(format!("{} is not valid JSON: {e}", p.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_repos_live_in_their_own_cache_folders() {
        assert_eq!(typed_repo_folder_name("AlignmentResearch/tuned-lens", "space").unwrap(), "spaces--AlignmentResearch--tuned-lens");
        assert_eq!(typed_repo_folder_name("gpt2", "model").unwrap(), repo_folder_name("gpt2"));
        assert_eq!(typed_repo_folder_name("a/b", "dataset").unwrap(), "datasets--a--b");
        assert_eq!(typed_repo_folder_name("a/b", "bucket").unwrap_err().code, ErrorCode::InvalidArgument);
        let dir = std::env::temp_dir().join(format!("tl-hub-typed-{}", std::process::id()));
        let snap = dir.join("spaces--o--n").join("snapshots").join("abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(dir.join("spaces--o--n").join("refs")).unwrap();
        std::fs::write(dir.join("spaces--o--n").join("refs").join("main"), "abc").unwrap();
        assert_eq!(find_typed_snapshot(&dir, "space", "o/n", "main").unwrap(), Some(snap));
        assert_eq!(find_snapshot(&dir, "o/n", "main").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
