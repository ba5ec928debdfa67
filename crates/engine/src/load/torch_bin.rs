//! A `torch.save` checkpoint (`pytorch_model.bin`, `.pth`, `.pt`): a zip archive (`zip.rs`)
//! holding `<archive>/data.pkl`, a pickle that rebuilds the state dict (read by `pickle.rs`,
//! which runs no code), and one `<archive>/data/<key>` entry per storage; or torch's legacy
//! format (`torch_legacy.rs`), pickles and storages in a row. The file is mapped;
//! its index and tensor descriptions are checked when opened, so dtypes and shapes are known
//! before anything is read. Contiguous tensors are read with positioned reads straight into
//! their buffer; strided ones are gathered from the mapping.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::load::pickle::{self, StorageDtype, TensorRef};
use crate::load::zip::{self, Archive};

pub struct TorchFile {
    map: Mmap,
    file: File,
    path: PathBuf,
    tensors: Vec<(String, TensorRef)>,
    index: HashMap<String, usize>,
    /// Storage key → the file offset of its first byte.
    storages: HashMap<String, u64>,
}

/// The candle dtype a storage dtype loads as (None: one candle cannot hold).
pub fn candle_dtype(d: StorageDtype) -> Option<DType> {
    Some(match d {
        StorageDtype::F64 => DType::F64,
        StorageDtype::F32 => DType::F32,
        StorageDtype::F16 => DType::F16,
        StorageDtype::BF16 => DType::BF16,
        StorageDtype::I64 => DType::I64,
        StorageDtype::I32 => DType::I32,
        StorageDtype::I16 => DType::I16,
        StorageDtype::U8 => DType::U8,
        StorageDtype::I8 | StorageDtype::Bool => return None,
    })
}

/// The archive's folder: the part before the first `/` of its first entry, as torch reads it.
fn archive_prefix(a: &Archive, what: &str) -> Result<String> {
    let first = a.entries().first().ok_or_else(|| Error::corrupt(format!("{what} is an empty zip archive, not a torch checkpoint")))?;
    match first.name.split_once('/') {
        Some((p, _)) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(Error::corrupt(format!("{what}: the archive's first entry {:?} is not inside a folder, as torch.save writes", first.name))),
    }
}

/// The zip format: the state dict and, per storage key, where its entry's bytes are.
fn read_zip(map: &[u8], what: &str) -> Result<crate::load::torch_legacy::Parsed> {
    let archive = Archive::parse(map, what)?;
    let prefix = archive_prefix(&archive, what)?;
    if let Some(e) = archive.get(&format!("{prefix}/byteorder")) {
        match archive.data(map, e) {
            b"little" => {}
            b"big" => return Err(Error::unsupported(format!("{what} was saved on a big-endian machine; only little-endian checkpoints are read"))),
            other => return Err(Error::corrupt(format!("{what}: unknown byte order {:?}", String::from_utf8_lossy(&other[..other.len().min(16)])))),
        }
    }
    let pkl = archive.get(&format!("{prefix}/data.pkl")).ok_or_else(|| Error::corrupt(format!("{what} has no {prefix}/data.pkl")))?;
    let bytes = archive.data(map, pkl);
    if zip::crc32(bytes) != pkl.crc32 {
        return Err(Error::corrupt(format!("{what}: {prefix}/data.pkl fails its CRC check")));
    }
    let tensors = pickle::state_dict(pickle::load(bytes, what)?, what)?;
    let mut spans = HashMap::new();
    for (_, t) in &tensors {
        if let Some(e) = archive.get(&format!("{prefix}/data/{}", t.key)) {
            spans.insert(t.key.clone(), (e.start, e.size));
        }
    }
    Ok((tensors, spans))
}

impl TorchFile {
    /// Reads the index and the state dict's tensor descriptions (the zip format, or torch's
    /// legacy one), each checked to lie inside its storage's bytes.
    pub fn open(path: &Path) -> Result<TorchFile> {
        let what = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::from(e).context(&what))?;
        // SAFETY: mapped read-only; a concurrent writer would be a user error (as for safetensors).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::corrupt(format!("cannot map {what}: {e}")))?;
        let (tensors, spans) = if map.starts_with(b"PK\x03\x04") {
            read_zip(&map, &what)?
        } else if map.starts_with(crate::load::torch_legacy::MAGIC) {
            crate::load::torch_legacy::read(&map, &what)?
        } else {
            return Err(Error::corrupt(format!("{what} is not a PyTorch checkpoint (neither a zip archive nor torch's legacy format)")));
        };
        let mut storages = HashMap::new();
        for (name, t) in &tensors {
            let &(start, size) = spans
                .get(&t.key)
                .ok_or_else(|| Error::corrupt(format!("{what}: tensor '{name}' reads storage '{}', which the file lacks", t.key)))?;
            let need = t.storage_len.checked_mul(t.dtype.size() as u64);
            if need.is_none_or(|n| n > size) {
                return Err(Error::corrupt(format!(
                    "{what}: storage '{}' holds {size} bytes, less than the {} {} elements tensor '{name}' says it has",
                    t.key,
                    t.storage_len,
                    t.dtype.name()
                )));
            }
            storages.insert(t.key.clone(), start);
        }
        let index = tensors.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        Ok(TorchFile { map, file, path: path.to_path_buf(), tensors, index, storages })
    }

    /// The state dict's tensors, in the file's order.
    pub fn tensors(&self) -> &[(String, TensorRef)] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&TensorRef> {
        self.index.get(name).map(|&i| &self.tensors[i].1)
    }

    /// Tensor `name` in `dtype` on `device`, refused when a value is not finite. Float storages only.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let t = self.get(name).ok_or_else(|| Error::missing_weight(name))?;
        let start = *self.storages.get(&t.key).ok_or_else(|| Error::corrupt(format!("tensor '{name}': no storage")))?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let base = start + t.offset * t.dtype.size() as u64;
        let out = match t.dtype {
            StorageDtype::F32 => Tensor::from_vec(self.read::<f32>(name, t, base)?, shape, device)?,
            StorageDtype::F16 => Tensor::from_vec(self.read::<f16>(name, t, base)?, shape, device)?,
            StorageDtype::BF16 => Tensor::from_vec(self.read::<bf16>(name, t, base)?, shape, device)?,
            StorageDtype::F64 => Tensor::from_vec(self.read::<f64>(name, t, base)?, shape, device)?,
            other => {
                return Err(Error::corrupt(format!("weight '{name}' in {} is stored as {}, not a float type", self.path.display(), other.name())));
            }
        };
        let out = if out.dtype() == dtype { out } else { out.to_dtype(dtype)? };
        crate::load::spec::check_finite(&out, name)?;
        Ok(out)
    }

    /// The view's elements in row-major order; `base` is the file offset of element `offset`.
    fn read<T: Plain>(&self, name: &str, t: &TensorRef, base: u64) -> Result<Vec<T>> {
        let n = t.numel() as usize;
        let mut out = vec![T::default(); n];
        if t.is_contiguous() {
            self.read_at(name, as_bytes_mut(&mut out), base)?;
            return Ok(out);
        }
        // Strided: gather element by element from the mapping (odometer over the shape).
        let size = std::mem::size_of::<T>();
        let bytes = as_bytes_mut(&mut out);
        let mut idx = vec![0u64; t.shape.len()];
        for i in 0..n {
            let at: u64 = idx.iter().zip(&t.stride).map(|(&i, &s)| i * s).sum();
            let src = zip::slice(&self.map, base + at * size as u64, size as u64).ok_or_else(|| Error::corrupt(format!("tensor '{name}' reads past its storage")))?;
            bytes[i * size..(i + 1) * size].copy_from_slice(src);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < t.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(out)
    }

    /// `dst.len()` bytes from file offset `at`, two threads for large reads.
    fn read_at(&self, name: &str, dst: &mut [u8], at: u64) -> Result<()> {
        let bad = || Error::corrupt(format!("tensor '{name}' reads past the end of {}", self.path.display()));
        zip::slice(&self.map, at, dst.len() as u64).ok_or_else(bad)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            crate::kernels::split::par_rows_mut(dst, 4096, |part, first| {
                self.file.read_exact_at(part, at + 4096 * first as u64).map_err(|e| Error::corrupt(format!("tensor '{name}': {e}")))
            })
        }
        #[cfg(not(unix))]
        {
            let _ = &self.file;
            dst.copy_from_slice(zip::slice(&self.map, at, dst.len() as u64).ok_or_else(bad)?);
            Ok(())
        }
    }
}

/// Element types whose every bit pattern is valid and that have no padding, stored
/// little-endian (the platforms this builds for are little-endian).
pub trait Plain: Copy + Default + Send {}
impl Plain for f32 {}
impl Plain for f64 {}
impl Plain for f16 {}
impl Plain for bf16 {}

fn as_bytes_mut<T: Plain>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: `Plain` types have no padding and accept every bit pattern; the byte slice covers
    // exactly the slice's memory for the same lifetime, and u8 has no alignment requirement.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

#[cfg(test)]
#[path = "torch_bin_tests.rs"]
mod tests;
