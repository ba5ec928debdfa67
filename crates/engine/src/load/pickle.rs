//! A pickle reader for what `torch.save` writes, that never runs code: a small VM over the
//! opcodes of protocols 2–5 that build plain values (ints, floats, strings, bytes, tuples,
//! lists, dicts), with calls limited to an allowlist of tensor rebuilds and `OrderedDict`.
//! Every other global, every other opcode, and persistent ids other than torch's storage
//! tuples are `TL_CORRUPT_FILE`. Memory is bounded by the input: memoised values are copied
//! (no sharing), the copies count against a budget proportional to the pickle's size, and
//! values nest at most [`MAX_DEPTH`] deep.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// How deep values may nest (a state dict needs 4).
pub const MAX_DEPTH: u32 = 64;
/// Longest `GLOBAL` line (module or name).
pub(crate) const MAX_LINE: usize = 256;

/// Element types of torch's storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

/// (storage class, dtype name, our name, bytes per element).
const DTYPES: &[(StorageDtype, &str, &str, &str, usize)] = &[
    (StorageDtype::F64, "DoubleStorage", "float64", "F64", 8),
    (StorageDtype::F32, "FloatStorage", "float32", "F32", 4),
    (StorageDtype::F16, "HalfStorage", "float16", "F16", 2),
    (StorageDtype::BF16, "BFloat16Storage", "bfloat16", "BF16", 2),
    (StorageDtype::I64, "LongStorage", "int64", "I64", 8),
    (StorageDtype::I32, "IntStorage", "int32", "I32", 4),
    (StorageDtype::I16, "ShortStorage", "int16", "I16", 2),
    (StorageDtype::I8, "CharStorage", "int8", "I8", 1),
    (StorageDtype::U8, "ByteStorage", "uint8", "U8", 1),
    (StorageDtype::Bool, "BoolStorage", "bool", "BOOL", 1),
];

impl StorageDtype {
    fn row(self) -> &'static (StorageDtype, &'static str, &'static str, &'static str, usize) {
        DTYPES.iter().find(|r| r.0 == self).expect("every dtype has a row")
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        self.row().4
    }
    /// The safetensors-style name (`F32`, `BOOL`).
    pub fn name(self) -> &'static str {
        self.row().3
    }
}

/// The globals a pickle may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    OrderedDict,
    /// A legacy typed storage class (`torch.FloatStorage`).
    Storage(StorageDtype),
    /// A dtype object (`torch.float32`), an inert value.
    Dtype(StorageDtype),
}

/// `module.name` if it is allowed, else None.
pub fn allowed(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => Some(Global::RebuildParameterWithState),
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch", n) => DTYPES.iter().find_map(|r| {
            if r.1 == n {
                Some(Global::Storage(r.0))
            } else if r.2 == n {
                Some(Global::Dtype(r.0))
            } else {
                None
            }
        }),
        _ => None,
    }
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view of a storage, in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage's key: its bytes are the archive's `data/<key>`.
    pub key: String,
    pub dtype: StorageDtype,
    /// Elements the storage holds, as its persistent id states.
    pub storage_len: u64,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

impl TensorRef {
    /// Elements of the view.
    pub fn numel(&self) -> u64 {
        if self.shape.contains(&0) {
            return 0;
        }
        self.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
    /// Whether the view is the row-major layout of its shape.
    pub fn is_contiguous(&self) -> bool {
        let mut want = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != want {
                return false;
            }
            want = want.saturating_mul(d);
        }
        true
    }
    /// One past the last storage element the view reads (its offset when it is empty).
    fn end(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(self.offset);
        }
        self.shape.iter().zip(&self.stride).try_fold(self.offset.checked_add(1)?, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
    }
}

/// A torch storage named by a persistent id.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: StorageDtype,
    pub len: u64,
}

/// A value the VM built. Containers carry how deep they nest.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>, u32),
    List(Vec<Value>, u32),
    /// Pairs in insertion order (a later equal key is kept as well; readers take the last).
    Dict(Vec<(Value, Value)>, u32),
    Global(Global),
    Storage(StorageRef),
    Tensor(Box<TensorRef>),
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(_, d) | Value::List(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }
    /// The cost of copying this value (nodes plus string bytes / 16), at most `limit + 1`.
    fn cost(&self, limit: u64) -> u64 {
        let mut c = 1;
        let add = |v: &Value, c: &mut u64| *c += v.cost(limit.saturating_sub(*c));
        match self {
            Value::Str(s) => c += s.len() as u64 / 16,
            Value::Bytes(b) => c += b.len() as u64 / 16,
            Value::Tensor(t) => c += t.shape.len() as u64 / 4 + t.key.len() as u64 / 16,
            Value::Tuple(v, _) | Value::List(v, _) => {
                for x in v {
                    if c > limit {
                        break;
                    }
                    add(x, &mut c);
                }
            }
            Value::Dict(v, _) => {
                for (k, x) in v {
                    if c > limit {
                        break;
                    }
                    add(k, &mut c);
                    add(x, &mut c);
                }
            }
            _ => {}
        }
        c
    }
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(..) => "tuple",
            Value::List(..) => "list",
            Value::Dict(..) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

fn seq_depth(items: &[Value]) -> u32 {
    1 + items.iter().map(Value::depth).max().unwrap_or(0)
}

/// Runs the pickle `data` (named `what` in errors) and returns the value it builds.
pub fn load(data: &[u8], what: &str) -> Result<Value> {
    crate::load::pickle_vm::Vm::new(data, what).run().map(|(v, _)| v)
}

/// The first pickle of `data` (files may hold several in a row): its value and its length.
pub fn load_prefix(data: &[u8], what: &str) -> Result<(Value, usize)> {
    crate::load::pickle_vm::Vm::new(data, what).run()
}

pub(crate) fn tuple(items: Vec<Value>) -> Value {
    let d = seq_depth(&items);
    Value::Tuple(items, d)
}

pub(crate) fn copy_cost(v: &Value, limit: u64) -> u64 {
    v.cost(limit)
}

pub(crate) fn depth(v: &Value) -> u32 {
    v.depth()
}

pub(crate) fn kind(v: &Value) -> &'static str {
    v.kind()
}

/// What `REDUCE` makes of an allowed callable and its arguments.
pub(crate) fn call(f: Global, args: Vec<Value>) -> std::result::Result<Value, String> {
    let ints = |v: &Value, what: &str| -> std::result::Result<Vec<u64>, String> {
        match v {
            Value::Tuple(xs, _) => xs
                .iter()
                .map(|x| match x {
                    Value::Int(i) if *i >= 0 => Ok(*i as u64),
                    _ => Err(format!("a tensor's {what} holds {}, not a non-negative int", x.kind())),
                })
                .collect(),
            _ => Err(format!("a tensor's {what} is a {}, not a tuple", v.kind())),
        }
    };
    match (f, args.as_slice()) {
        (Global::OrderedDict, []) => Ok(Value::Dict(Vec::new(), 1)),
        (Global::RebuildTensor, [Value::Storage(s), Value::Int(off), size, stride, Value::Bool(_), Value::Dict(..), rest @ ..]) if rest.len() <= 1 => {
            if let Some(Value::Dict(m, _)) = rest.first() {
                if !m.is_empty() {
                    return Err("a tensor carries metadata (conjugate or negative bits), which is not supported".into());
                }
            } else if !rest.is_empty() {
                return Err("a tensor's metadata is not a dict".into());
            }
            let (shape, stride) = (ints(size, "size")?, ints(stride, "stride")?);
            if shape.len() != stride.len() {
                return Err(format!("a tensor's size {shape:?} and stride {stride:?} differ in length"));
            }
            let offset = u64::try_from(*off).map_err(|_| format!("a tensor's storage offset is {off}"))?;
            let t = TensorRef { key: s.key.clone(), dtype: s.dtype, storage_len: s.len, offset, shape, stride };
            match t.end() {
                Some(end) if end <= t.storage_len => Ok(Value::Tensor(Box::new(t))),
                _ => Err(format!(
                    "tensor of size {:?}, stride {:?} at offset {} does not fit its storage '{}' of {} elements",
                    t.shape, t.stride, t.offset, t.key, t.storage_len
                )),
            }
        }
        (Global::RebuildParameter, [Value::Tensor(t), Value::Bool(_), Value::Dict(..)])
        | (Global::RebuildParameterWithState, [Value::Tensor(t), Value::Bool(_), Value::Dict(..), _]) => Ok(Value::Tensor(t.clone())),
        (f, a) => Err(format!("{f:?} called with ({})", a.iter().map(Value::kind).collect::<Vec<_>>().join(", "))),
    }
}

/// torch's persistent id of a storage: `('storage', <storage class>, key, location, numel)`.
pub(crate) fn persistent_load(pid: Value) -> std::result::Result<Value, String> {
    match pid {
        Value::Tuple(v, _) => match v.as_slice() {
            // torch's legacy format adds a sixth item, a storage view (None since torch 1.0).
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(_), Value::Int(n), rest @ ..]
                if tag == "storage" && *n >= 0 && matches!(rest, [] | [Value::None]) =>
            {
                Ok(Value::Storage(StorageRef { key: key.clone(), dtype: *dtype, len: *n as u64 }))
            }
            _ => Err(format!("a persistent id ({}) is not a torch storage", v.iter().map(Value::kind).collect::<Vec<_>>().join(", "))),
        },
        other => Err(format!("a persistent id is a {}, not a tuple", other.kind())),
    }
}

/// The tensors of a state dict (the top-level dict; other values are skipped), in order. A key
/// given twice keeps its first place and its last value, as a Python dict.
pub fn state_dict(root: Value, what: &str) -> Result<Vec<(String, TensorRef)>> {
    let Value::Dict(pairs, _) = root else {
        return Err(Error::corrupt(format!("{what} holds a {}, not a state dict", root.kind())));
    };
    let mut out: Vec<(String, TensorRef)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (k, v) in pairs {
        let (Value::Str(k), Value::Tensor(t)) = (k, v) else { continue };
        match at.get(&k) {
            Some(&i) => out[i].1 = *t,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, *t));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
