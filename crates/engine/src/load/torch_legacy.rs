//! torch's legacy checkpoint format (before torch 1.6, or `_use_new_zipfile_serialization=False`):
//! five pickles in a row — a magic number, protocol version 1001, system info, the object, the
//! sorted storage keys — then each storage as an 8-byte little-endian element count followed by
//! its bytes. The pickles go through the same reader as the zip format's `data.pkl`.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::load::pickle::{self, StorageDtype, TensorRef, Value};

/// The first pickle: `0x1950a86a20f9469cfc6c` as a LONG1.
pub const MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
/// The second: protocol version 1001.
const PROTOCOL: &[u8] = b"\x80\x02M\xe9\x03.";

/// The state dict and, per storage key, the file offset and length of its bytes.
pub(crate) type Parsed = (Vec<(String, TensorRef)>, HashMap<String, (u64, u64)>);

/// The element type of every storage a tensor anywhere in `v` reads.
fn storage_dtypes(v: &Value, out: &mut HashMap<String, StorageDtype>) {
    match v {
        Value::Tensor(t) => {
            out.insert(t.key.clone(), t.dtype);
        }
        Value::Tuple(xs, _) | Value::List(xs, _) => xs.iter().for_each(|x| storage_dtypes(x, out)),
        Value::Dict(xs, _) => xs.iter().for_each(|(_, x)| storage_dtypes(x, out)),
        _ => {}
    }
}

fn dict_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Dict(xs, _) => xs.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, x)| x),
        _ => None,
    }
}

pub(crate) fn read(b: &[u8], what: &str) -> Result<Parsed> {
    let bad = |why: String| Error::corrupt(format!("{what} (torch legacy format): {why}"));
    let mut at = MAGIC.len();
    if !b[at..].starts_with(PROTOCOL) {
        return Err(bad("not protocol version 1001".into()));
    }
    at += PROTOCOL.len();
    let (info, n) = pickle::load_prefix(&b[at..], what)?;
    at += n;
    match dict_get(&info, "little_endian") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(Error::unsupported(format!("{what} was saved on a big-endian machine; only little-endian checkpoints are read"))),
        _ => return Err(bad("the system info does not say the byte order".into())),
    }
    let (obj, n) = pickle::load_prefix(&b[at..], what)?;
    at += n;
    let mut dtypes = HashMap::new();
    storage_dtypes(&obj, &mut dtypes);
    let tensors = pickle::state_dict(obj, what)?;
    let (keys, n) = pickle::load_prefix(&b[at..], what)?;
    at += n;
    let Value::List(keys, _) = keys else {
        return Err(bad("the storage keys are not a list".into()));
    };
    let mut spans = HashMap::new();
    for k in keys {
        let Value::Str(k) = k else { return Err(bad("a storage key is not a string".into())) };
        let dtype = dtypes.get(&k).ok_or_else(|| bad(format!("storage '{k}' is read by no tensor, so its size is unknown")))?;
        let numel = b.get(at..at + 8).map(|x| u64::from_le_bytes(x.try_into().expect("8 bytes"))).ok_or_else(|| bad(format!("storage '{k}' is cut off")))?;
        let start = at as u64 + 8;
        let len = numel.checked_mul(dtype.size() as u64).filter(|&l| start.checked_add(l).is_some_and(|e| e <= b.len() as u64));
        let len = len.ok_or_else(|| bad(format!("storage '{k}' of {numel} elements runs past the end of the file")))?;
        if spans.insert(k.clone(), (start, len)).is_some() {
            return Err(bad(format!("storage '{k}' is listed twice")));
        }
        at = (start + len) as usize;
    }
    Ok((tensors, spans))
}
