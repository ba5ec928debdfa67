//! `NativeKvCache`: TL's `HookedTransformerKeyValueCache`, shared between JS and the runs that
//! extend it.

use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::model::kv_cache::KvCache;
use tl_engine::Error;

use crate::errors::{guard, to_napi, try_lock, IntoNapi};
use crate::tensor::{wrap, NativeTensor};

pub type SharedKv = Arc<Mutex<KvCache>>;

/// Locks a cache for one run; a cache already in use by another run is an error, not a wait.
pub fn lock_kv(kv: &SharedKv) -> Result<MutexGuard<'_, KvCache>> {
    try_lock(kv, "this KV cache is in use by another run: await it first")
}

#[napi]
pub struct NativeKvCache {
    inner: SharedKv,
}

impl NativeKvCache {
    pub fn new(kv: KvCache) -> Self {
        NativeKvCache { inner: Arc::new(Mutex::new(kv)) }
    }
    pub fn shared(&self) -> SharedKv {
        self.inner.clone()
    }
}

fn check_layer(kv: &KvCache, layer: i64) -> Result<usize> {
    let n = kv.entries.len() as i64;
    let l = if layer < 0 { layer + n } else { layer };
    if l < 0 || l >= n {
        return Err(to_napi(Error::invalid(format!("layer {layer} is out of range for a cache of {n} layers"))));
    }
    Ok(l as usize)
}

#[napi]
impl NativeKvCache {
    #[napi]
    pub fn freeze(&self) -> Result<()> {
        lock_kv(&self.inner)?.freeze();
        Ok(())
    }
    #[napi]
    pub fn unfreeze(&self) -> Result<()> {
        lock_kv(&self.inner)?.unfreeze();
        Ok(())
    }
    #[napi]
    pub fn is_frozen(&self) -> Result<bool> {
        Ok(lock_kv(&self.inner)?.frozen)
    }
    #[napi]
    pub fn entry_frozen(&self, layer: i64) -> Result<bool> {
        let kv = lock_kv(&self.inner)?;
        let l = check_layer(&kv, layer)?;
        Ok(kv.entries[l].frozen)
    }
    #[napi]
    pub fn set_entry_frozen(&self, layer: i64, frozen: bool) -> Result<()> {
        let mut kv = lock_kv(&self.inner)?;
        let l = check_layer(&kv, layer)?;
        kv.entries[l].frozen = frozen;
        Ok(())
    }
    /// Positions cached so far.
    #[napi]
    pub fn length(&self) -> Result<u32> {
        Ok(lock_kv(&self.inner)?.past_len() as u32)
    }
    #[napi]
    pub fn n_layers(&self) -> Result<u32> {
        Ok(lock_kv(&self.inner)?.entries.len() as u32)
    }
    #[napi]
    pub fn batch_size(&self) -> Result<u32> {
        Ok(lock_kv(&self.inner)?.batch as u32)
    }
    /// `[batch, pos_so_far, n_heads, d_head]` (a copy).
    #[napi]
    pub fn past_keys(&self, env: Env, layer: i64) -> Result<NativeTensor> {
        guard(|| {
            let kv = lock_kv(&self.inner)?;
            let l = check_layer(&kv, layer)?;
            wrap(&env, kv.entries[l].past_keys(kv.empty_shape()).napi()?)
        })
    }
    #[napi]
    pub fn past_values(&self, env: Env, layer: i64) -> Result<NativeTensor> {
        guard(|| {
            let kv = lock_kv(&self.inner)?;
            let l = check_layer(&kv, layer)?;
            wrap(&env, kv.entries[l].past_values(kv.empty_shape()).napi()?)
        })
    }
    /// `[batch, pos_so_far]` int64.
    #[napi]
    pub fn previous_attention_mask(&self, env: Env) -> Result<NativeTensor> {
        guard(|| {
            let kv = lock_kv(&self.inner)?;
            wrap(&env, kv.previous_attention_mask().clone())
        })
    }
    /// TL's `append_attention_mask`: returns past + new mask (stored unless frozen).
    #[napi]
    pub fn append_attention_mask(&self, env: Env, mask: &NativeTensor) -> Result<NativeTensor> {
        guard(|| {
            let mut kv = lock_kv(&self.inner)?;
            let all = kv.append_attention_mask(mask.tensor()?).napi()?;
            wrap(&env, all)
        })
    }
    /// A deep copy that can be extended independently.
    #[napi]
    pub fn duplicate(&self) -> Result<NativeKvCache> {
        guard(|| {
            let kv = lock_kv(&self.inner)?;
            Ok(NativeKvCache::new(kv.duplicate().napi()?))
        })
    }
}
