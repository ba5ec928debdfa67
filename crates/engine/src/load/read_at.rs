//! f32 weights read with positioned reads (`pread`) straight into their final buffer, two
//! threads per tensor. Against copying out of the mmap this skips the mapping's page faults
//! and its unmapping; writing the fresh buffer (page faults) is most of what is left.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernels::split::par_rows_mut;

/// Where each tensor's bytes start: shard index and file offset.
pub struct Shards {
    files: Vec<File>,
    at: HashMap<String, (usize, u64)>,
}

/// Larger headers are not safetensors (the format caps them at 100 MB).
const MAX_HEADER: u64 = 100 << 20;

fn data_starts(file: &File, path: &Path) -> Result<HashMap<String, u64>> {
    let bad = |what: &str| Error::corrupt(format!("{}: {what}", path.display()));
    let mut len = [0u8; 8];
    file.read_exact_at(&mut len, 0).map_err(|e| bad(&e.to_string()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(bad("header too large"));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact_at(&mut header, 8).map_err(|e| bad(&e.to_string()))?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(&format!("bad header: {e}")))?;
    Ok(map
        .into_iter()
        .filter_map(|(name, info)| {
            let start = info.get("data_offsets")?.get(0)?.as_u64()?;
            Some((name, 8 + n + start))
        })
        .collect())
}

/// The bytes of an f32 slice, to read into.
fn as_bytes_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirement, every bit pattern is an f32, and the
    // byte slice covers exactly the f32 slice's memory for the same lifetime.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

impl Shards {
    /// Opens the shards and reads where their tensors start. The files were validated as
    /// safetensors already (by mapping them).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut at = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            let f = File::open(p).map_err(|e| Error::from(e).context(p.display()))?;
            at.extend(data_starts(&f, p)?.into_iter().map(|(name, off)| (name, (i, off))));
            files.push(f);
        }
        Ok(Shards { files, at })
    }

    /// The `n_bytes` of little-endian f32s of tensor `name`; None when its place is unknown.
    /// NaN or an infinity is `TL_CORRUPT_FILE` (checked in the pass that reads the bytes).
    pub fn read_f32(&self, name: &str, n_bytes: usize) -> Result<Option<Vec<f32>>> {
        let Some((file, start)) = self.at.get(name).and_then(|&(i, off)| Some((self.files.get(i)?, off))) else {
            return Ok(None);
        };
        if !n_bytes.is_multiple_of(4) {
            return Err(Error::corrupt(format!("tensor '{name}': {n_bytes} bytes is not a whole number of f32s")));
        }
        // calloc: a fresh mapping is not written before the read fills it.
        let mut out = vec![0f32; n_bytes / 4];
        par_rows_mut(&mut out, 1, |part, first| {
            file.read_exact_at(as_bytes_mut(part), start + 4 * first as u64)
                .map_err(|e| Error::corrupt(format!("tensor '{name}': {e}")))?;
            let mut finite = true;
            for x in part.iter_mut() {
                *x = f32::from_bits(u32::from_le(x.to_bits()));
                finite &= x.is_finite();
            }
            if finite {
                Ok(())
            } else {
                Err(crate::load::spec::non_finite(name))
            }
        })?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn reads_what_candle_wrote() {
        let dir = std::env::temp_dir().join(format!("tl-read-at-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        let a = Tensor::randn(0f32, 1.0, (300, 301), &Device::Cpu).unwrap();
        let b = Tensor::arange(0f32, 5.0, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&[("a", a.clone()), ("b", b.clone())].into_iter().collect(), &path).unwrap();
        let shards = Shards::open(std::slice::from_ref(&path)).unwrap();
        assert_eq!(shards.read_f32("a", 300 * 301 * 4).unwrap().unwrap(), a.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(shards.read_f32("b", 20).unwrap().unwrap(), vec![0f32, 1.0, 2.0, 3.0, 4.0]);
        assert!(shards.read_f32("c", 4).unwrap().is_none());
        assert!(shards.read_f32("b", 6).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
