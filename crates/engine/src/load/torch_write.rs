//! Writing `torch.save`-style checkpoints, for tests and fuzzing only: the pickle torch emits
//! for a state dict of tensors (protocol 2, no memo), and the zip archive around it.

use crate::load::pickle::{StorageDtype, TensorRef};
use crate::load::zip;

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
