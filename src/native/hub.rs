//! Finding model folders in the HF cache.

use napi_derive::napi;
use tl_engine::load::hub;

use crate::errors::{guard, IntoNapi};

/// The HF hub cache folder this process reads (`HF_HUB_CACHE`, `HF_HOME/hub`, or the default).
#[napi]
pub fn hub_cache_dir() -> String {
    hub::cache_dir().to_string_lossy().into_owned()
}

/// The snapshot folder of `repoId` at `revision` in `cacheDir`, or null when not cached.
/// `repoType` is `model` (the default), `dataset` or `space`.
#[napi]
pub fn find_snapshot(cache_dir: String, repo_id: String, revision: String, repo_type: Option<String>) -> napi::Result<Option<String>> {
    guard(|| {
        let kind = repo_type.as_deref().unwrap_or("model");
        let p = hub::find_typed_snapshot(std::path::Path::new(&cache_dir), kind, &repo_id, &revision).napi()?;
        Ok(p.map(|p| p.to_string_lossy().into_owned()))
    })
}
