//! Writing `torch.save` checkpoints: the pickle torch emits for a state dict of tensors
//! (protocol 2, no memo: an `OrderedDict` of `_rebuild_tensor_v2` calls over persistent storage
//! ids), and the zip archive around it. [`save`] streams a state dict of candle tensors to a file
//! that `torch.load` (also with `weights_only=True`) and this crate's reader read; the in-memory
//! builders below are for tests and fuzzing.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::load::pickle::{StorageDtype, TensorRef};
use crate::load::zip;
use crate::load::zip_write::ZipWriter;

/// The storage class torch names for a dtype (`FloatStorage`).
pub fn storage_class(d: StorageDtype) -> &'static str {
    match d {
        StorageDtype::F64 => "DoubleStorage",
        StorageDtype::F32 => "FloatStorage",
        StorageDtype::F16 => "HalfStorage",
        StorageDtype::BF16 => "BFloat16Storage",
        StorageDtype::I64 => "LongStorage",
        StorageDtype::I32 => "IntStorage",
        StorageDtype::I16 => "ShortStorage",
        StorageDtype::I8 => "CharStorage",
        StorageDtype::U8 => "ByteStorage",
        StorageDtype::Bool => "BoolStorage",
    }
}

/// Pickle opcodes, appended to a buffer.
#[derive(Default)]
pub struct Pickler {
    pub out: Vec<u8>,
}

impl Pickler {
    pub fn new() -> Self {
        Pickler { out: vec![0x80, 2] }
    }
    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.op(s.as_bytes())
    }
    pub fn int(&mut self, v: u64) -> &mut Self {
        match v {
            0..=0xFF => self.op(&[b'K', v as u8]),
            0x100..=0xFFFF => self.op(b"M").op(&(v as u16).to_le_bytes()),
            _ => self.op(&[0x8a, 8]).op(&v.to_le_bytes()),
        }
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b"c").op(module.as_bytes()).op(b"\n").op(name.as_bytes()).op(b"\n")
    }
    pub fn ints(&mut self, v: &[u64]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x);
        }
        self.op(b"t")
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(&mut self, t: &TensorRef) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"((").str("storage").global("torch", storage_class(t.dtype)).str(&t.key).str("cpu");
        self.int(t.storage_len).op(b"tQ").int(t.offset).ints(&t.shape).ints(&t.stride);
        self.op(&[0x89]).global("collections", "OrderedDict").op(b")RtR")
    }
    /// An `OrderedDict` of the tensors, then STOP.
    pub fn state_dict(&mut self, tensors: &[(String, TensorRef)]) -> &mut Self {
        self.global("collections", "OrderedDict").op(b")R(");
        for (name, t) in tensors {
            self.str(name).tensor(t);
        }
        self.op(b"u.")
    }
}

/// The pickle of a state dict of these tensors.
pub fn state_dict_pickle(tensors: &[(String, TensorRef)]) -> Vec<u8> {
    let mut p = Pickler::new();
    p.state_dict(tensors);
    p.out
}

/// A checkpoint archive: `<prefix>/data.pkl`, `byteorder`, `data/<key>` for each storage, `version`.
pub fn checkpoint(prefix: &str, pickle: &[u8], storages: &[(String, Vec<u8>)], zip64: bool) -> Vec<u8> {
    let mut names = vec![(format!("{prefix}/data.pkl"), pickle.to_vec()), (format!("{prefix}/byteorder"), b"little".to_vec())];
    names.extend(storages.iter().map(|(k, b)| (format!("{prefix}/data/{k}"), b.clone())));
    names.push((format!("{prefix}/version"), b"3\n".to_vec()));
    let refs: Vec<(&str, &[u8])> = names.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    zip::build_stored(&refs, zip64)
}

/// A contiguous row-major tensor over a whole storage.
pub fn contiguous(key: &str, dtype: StorageDtype, shape: &[u64]) -> TensorRef {
    let mut stride = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1];
    }
    TensorRef { key: key.into(), dtype, storage_len: shape.iter().product(), offset: 0, shape: shape.to_vec(), stride }
}

/// The storage dtype torch uses for a candle dtype (None: torch has no legacy storage for it).
pub fn storage_dtype(d: DType) -> Option<StorageDtype> {
    Some(match d {
        DType::F64 => StorageDtype::F64,
        DType::F32 => StorageDtype::F32,
        DType::F16 => StorageDtype::F16,
        DType::BF16 => StorageDtype::BF16,
        DType::I64 => StorageDtype::I64,
        DType::I32 => StorageDtype::I32,
        DType::I16 => StorageDtype::I16,
        DType::U8 => StorageDtype::U8,
        _ => return None,
    })
}

/// Element types written by their in-memory bytes: no padding, every byte initialised.
trait Plain: candle_core::WithDType {}
impl Plain for f64 {}
impl Plain for f32 {}
impl Plain for half::f16 {}
impl Plain for half::bf16 {}
impl Plain for i64 {}
impl Plain for i32 {}
impl Plain for i16 {}
impl Plain for u8 {}

/// The row-major elements of `flat` (1-D, on the CPU) as bytes, in one copy.
fn plain_bytes<T: Plain>(flat: &Tensor) -> Result<Vec<u8>> {
    let v = flat.to_vec1::<T>()?;
    // SAFETY: `Plain` types have no padding and fully initialised bytes; the slice covers exactly
    // `v`'s memory and is copied before `v` is dropped. Little-endian targets only (checked below),
    // so these are the little-endian bytes torch stores.
    Ok(unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v.as_slice())) }.to_vec())
}

/// A tensor's elements in row-major order as little-endian bytes (copied to the CPU if needed).
fn le_bytes(name: &str, t: &Tensor) -> Result<(StorageDtype, Vec<u8>)> {
    if cfg!(target_endian = "big") {
        return Err(Error::unsupported("writing torch checkpoints on a big-endian machine is not supported"));
    }
    let dt = storage_dtype(t.dtype()).ok_or_else(|| Error::dtype(format!("tensor '{name}' is {:?}, which a torch checkpoint cannot store", t.dtype())))?;
    let flat = t.to_device(&Device::Cpu)?.flatten_all()?;
    let b = match t.dtype() {
        DType::F64 => plain_bytes::<f64>(&flat)?,
        DType::F32 => plain_bytes::<f32>(&flat)?,
        DType::F16 => plain_bytes::<half::f16>(&flat)?,
        DType::BF16 => plain_bytes::<half::bf16>(&flat)?,
        DType::I64 => plain_bytes::<i64>(&flat)?,
        DType::I32 => plain_bytes::<i32>(&flat)?,
        DType::I16 => plain_bytes::<i16>(&flat)?,
        DType::U8 => plain_bytes::<u8>(&flat)?,
        other => return Err(Error::dtype(format!("tensor '{name}' is {other:?}, which a torch checkpoint cannot store"))),
    };
    Ok((dt, b))
}

/// The archive folder torch names after the file (`params.pt` → `params`), kept to safe characters.
fn archive_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let clean: String = stem.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).collect();
    if clean.is_empty() || clean.starts_with('.') {
        "archive".into()
    } else {
        clean
    }
}

/// Writes `tensors` as `torch.save(OrderedDict(tensors), path)` does: one storage per tensor
/// (contiguous, row-major), in the given order. Names must be distinct.
pub fn save(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, _)) = tensors.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(Error::invalid(format!("tensor name '{dup}' is given twice")));
    }
    let mut refs = Vec::with_capacity(tensors.len());
    for (i, (name, t)) in tensors.iter().enumerate() {
        let dt = storage_dtype(t.dtype()).ok_or_else(|| Error::dtype(format!("tensor '{name}' is {:?}, which a torch checkpoint cannot store", t.dtype())))?;
        let shape: Vec<u64> = t.dims().iter().map(|&d| d as u64).collect();
        refs.push((name.clone(), contiguous(&i.to_string(), dt, &shape)));
    }
    let prefix = archive_name(path);
    let what = path.display().to_string();
    let file = File::create(path).map_err(|e| Error::from(e).context(&what))?;
    let mut w = ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
    let io = |e: Error| e.context(&what);
    w.add(&format!("{prefix}/data.pkl"), &state_dict_pickle(&refs)).map_err(io)?;
    w.add(&format!("{prefix}/byteorder"), b"little").map_err(io)?;
    for (i, (name, t)) in tensors.iter().enumerate() {
        let (_, bytes) = le_bytes(name, t)?;
        w.add(&format!("{prefix}/data/{i}"), &bytes).map_err(io)?;
    }
    w.add(&format!("{prefix}/version"), b"3\n").map_err(io)?;
    w.finish().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::torch_bin::TorchFile;

    #[test]
    fn saved_state_dicts_read_back_with_their_dtypes_and_order() {
        let dir = std::env::temp_dir().join(format!("tl-torch-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("params.pt");
        let w = Tensor::arange(0f32, 6f32, &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let b = Tensor::new(&[1.5f64, -2.0], &Device::Cpu).unwrap();
        let h = w.to_dtype(DType::BF16).unwrap();
        let tensors = vec![("1.weight".to_string(), w.t().unwrap()), ("0.bias".to_string(), b.clone()), ("h".to_string(), h)];
        save(&path, &tensors).unwrap();
        let f = TorchFile::open(&path).unwrap();
        let names: Vec<&str> = f.tensors().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["1.weight", "0.bias", "h"]);
        let got = f.load("1.weight", DType::F32, &Device::Cpu).unwrap();
        assert_eq!(got.dims(), &[3, 2]);
        assert_eq!(got.to_vec2::<f32>().unwrap(), w.t().unwrap().to_vec2::<f32>().unwrap());
        assert_eq!(f.load("0.bias", DType::F64, &Device::Cpu).unwrap().to_vec1::<f64>().unwrap(), vec![1.5, -2.0]);
        assert_eq!(f.get("h").unwrap().dtype, StorageDtype::BF16);
        let dup = vec![("x".to_string(), b.clone()), ("x".to_string(), b)];
        assert_eq!(save(&path, &dup).unwrap_err().code, crate::error::ErrorCode::InvalidArgument);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
