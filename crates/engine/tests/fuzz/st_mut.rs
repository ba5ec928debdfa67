//! Mutations of `model.safetensors`: header (shapes, dtypes, offsets, names, structure), raw
//! bytes (length prefix, truncation, appended bytes) and data (non-finite or random values).
//! Most leave the verdict to the weight oracle (`st::oracle`); those whose file is invalid
//! whatever the oracle reads say so themselves.

use super::rng::Rng;
use super::st::{self, encode, floats, role, Entry, StFile, FLOAT_DTYPES};
use super::{Applied, Expect};

const HUGE: &[u64] = &[1 << 40, 1 << 32, u64::MAX, (1 << 63) + 1, 1 << 62];

fn shape_str(s: &[u64]) -> String {
    format!("{s:?}")
}

/// Random finite values in [-lim, lim].
fn finite_values(rng: &mut Rng, n: usize, lim: f64) -> Vec<f64> {
    (0..n).map(|_| (rng.unit() * 2.0 - 1.0) * lim).collect()
}

/// Resizes a tensor's data to `numel` elements of its dtype (new elements random, small).
fn resize(rng: &mut Rng, e: &mut Entry, numel: u64) {
    let bytes_per = st::dtype_bits(&e.dtype).unwrap_or(32) / 8;
    let want = numel as usize * bytes_per;
    if want <= e.data.len() {
        e.data.truncate(want);
    } else {
        let more = finite_values(rng, (want - e.data.len()) / bytes_per, 0.5);
        let dtype = if FLOAT_DTYPES.contains(&e.dtype.as_str()) { e.dtype.clone() } else { "F32".into() };
        e.data.extend(encode(&more, &dtype));
    }
}

/// Changes a tensor's shape and resizes its data to match: a well-formed file whose tensor
/// does not fit the config (broadcastable shapes included).
pub fn shape_consistent(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let i = rng.below(f.entries.len());
    let e = &mut f.entries[i];
    let old = e.shape.clone();
    let d0 = *old.first().unwrap_or(&1);
    let last = *old.last().unwrap_or(&1);
    let (kind, new): (&str, Vec<u64>) = match rng.below(10) {
        0 => ("[1]", vec![1]),
        1 => ("[d,1]", vec![d0, 1]),
        2 => ("[1,d]", vec![1, last]),
        3 => ("reversed", old.iter().rev().copied().collect()),
        4 if !old.is_empty() => {
            let mut s = old.clone();
            s[rng.below(old.len())] += 1;
            ("dim+1", s)
        }
        5 => {
            let mut s = old.clone();
            if let Some(x) = s.iter_mut().find(|x| **x > 1) {
                *x -= 1;
            }
            ("dim-1", s)
        }
        6 => ("scalar[]", vec![]),
        7 => ("[0]", vec![0]),
        8 => ("[1,..]", std::iter::once(1).chain(old.iter().copied()).collect()),
        _ => ("flat", vec![old.iter().product()]),
    };
    if new == old {
        return None;
    }
    let numel: u64 = new.iter().product();
    e.shape = new.clone();
    resize(rng, e, numel);
    let (name, r) = (e.name.clone(), role(&e.name));
    Some(Applied::new(
        format!("st.shape {r} ->{kind}"),
        format!("model.safetensors: {name} shape {} -> {} (data resized to match)", shape_str(&old), shape_str(&new)),
        None,
    ))
}

/// A shape in the header that the data does not back (huge dims, negative, wrong types).
pub fn shape_inconsistent(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let i = rng.below(f.entries.len());
    let e = &mut f.entries[i];
    let h = *rng.pick(HUGE);
    let (kind, text) = match rng.below(7) {
        0 => ("huge", format!("[{h}]")),
        1 => ("huge2", format!("[{h},{h}]")),
        2 => ("huge*small", format!("[{h},{}]", e.shape.last().unwrap_or(&1))),
        3 => ("negative", "[-1,32]".to_string()),
        4 => ("float", "[1.5]".to_string()),
        5 => ("string", "[\"32\"]".to_string()),
        _ => ("doubled", shape_str(&e.shape.iter().map(|d| d * 2).collect::<Vec<_>>())),
    };
    let d = format!("model.safetensors: {} shape {} -> {text} (data unchanged)", e.name, shape_str(&e.shape));
    e.shape_json = Some(text);
    Some(Applied::new(format!("st.shape-header {kind}"), d, Some(Expect::MustRefuse)))
}

/// The dtype label changes, the bytes do not.
pub fn dtype_label(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let i = rng.below(f.entries.len());
    let e = &mut f.entries[i];
    let to = *rng.pick(&["I64", "U8", "F16", "BF16", "F64", "BOOL", "I32", "U32", "F8_E4M3", "garbage", "", "f32", "F32 "]);
    if to == e.dtype {
        return None;
    }
    let d = format!("model.safetensors: {} dtype label {} -> {to:?} (bytes unchanged)", e.name, e.dtype);
    e.dtype = to.into();
    Some(Applied::new(format!("st.dtype-label {to}"), d, None))
}

/// One tensor, or the whole file, re-encoded in another dtype (values converted).
pub fn dtype_reencode(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let all = rng.chance(0.4);
    let to = if all { *rng.pick(&["F16", "BF16", "F64"]) } else { *rng.pick(&["F16", "BF16", "F64", "I64", "I32", "U8", "BOOL"]) };
    let idx: Vec<usize> = if all { (0..f.entries.len()).collect() } else { vec![rng.below(f.entries.len())] };
    if idx.iter().any(|&i| floats(&f.entries[i]).is_none()) {
        return None;
    }
    let mut name = String::new();
    for i in idx {
        let e = &mut f.entries[i];
        let vals = floats(e)?;
        e.data = encode(&vals, to);
        e.dtype = to.into();
        name = e.name.clone();
    }
    let (class, d) = if all {
        (format!("st.reencode all ->{to}"), format!("model.safetensors: every tensor re-encoded as {to}"))
    } else {
        (format!("st.reencode one ->{to}"), format!("model.safetensors: {name} re-encoded as {to}"))
    };
    Some(Applied::new(class, d, None))
}

/// data_offsets that are wrong: overlapping, out of range, reversed, negative, not integers.
pub fn offsets(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let total: usize = f.entries.iter().map(|e| e.data.len()).sum();
    let i = rng.below(f.entries.len());
    let start: usize = f.entries[..i].iter().map(|e| e.data.len()).sum();
    let end = start + f.entries[i].data.len();
    let (kind, text) = match rng.below(8) {
        0 => ("overlap", format!("[{},{}]", start.saturating_sub(4), end.saturating_sub(4))),
        1 => ("past-end", format!("[{start},{}]", total + 100)),
        2 => ("reversed", format!("[{end},{start}]")),
        3 => ("huge", format!("[{start},{}]", u64::MAX)),
        4 => ("negative", format!("[-4,{end}]")),
        5 => ("float", format!("[{start},{end}.5]")),
        6 => ("three", format!("[{start},{end},{end}]")),
        _ => ("null", "null".to_string()),
    };
    let e = &mut f.entries[i];
    let d = format!("model.safetensors: {} data_offsets [{start},{end}] -> {text}", e.name);
    e.offsets_json = Some(text);
    Some(Applied::new(format!("st.offsets {kind}"), d, Some(Expect::MustRefuse)))
}

pub fn drop_tensor(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let i = rng.below(f.entries.len());
    let e = f.entries.remove(i);
    Some(Applied::new(format!("st.drop {}", role(&e.name)), format!("model.safetensors: tensor {} removed", e.name), None))
}

/// The same key twice in the header (the second with another shape or the same entry).
pub fn duplicate(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let i = rng.below(f.entries.len());
    let e = &f.entries[i];
    let start: usize = f.entries[..i].iter().map(|e| e.data.len()).sum();
    let same = rng.chance(0.5);
    let shape = if same { shape_str(&e.shape) } else { "[1]".into() };
    let end = if same { start + e.data.len() } else { start + 4 };
    let v = format!(r#"{{"dtype":"{}","shape":{shape},"data_offsets":[{start},{end}]}}"#, e.dtype);
    let d = format!("model.safetensors: header key {} repeated{}", e.name, if same { "" } else { " with shape [1] last" });
    f.extra_members.push((e.name.clone(), v));
    Some(Applied::new(format!("st.duplicate-key {}", if same { "same" } else { "[1]" }), d, Some(Expect::Either)))
}

pub fn rename(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let i = rng.below(f.entries.len());
    let old = f.entries[i].name.clone();
    let other = f.entries[rng.below(f.entries.len())].name.clone();
    let (kind, new) = match rng.below(6) {
        0 => ("typo", format!("{old}X")),
        1 => ("no-prefix", old.strip_prefix("transformer.").unwrap_or(&old).to_string()),
        2 => ("collide", other),
        3 => ("empty", String::new()),
        4 => ("long", "w".repeat(100_000)),
        _ => ("odd-chars", format!("{old}\u{0}\u{202e}é")),
    };
    if new == old {
        return None;
    }
    f.entries[i].name = new.clone();
    let shown: String = new.chars().take(60).collect();
    Some(Applied::new(format!("st.rename {kind}"), format!("model.safetensors: tensor {old} renamed {shown:?}"), None))
}

/// An extra tensor: a tied `lm_head` (right or transposed), or one no GPT-2 reads.
pub fn add_tensor(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let wte = f.entries.iter().find(|e| e.name.ends_with("wte.weight"))?.clone();
    let (kind, mut e) = match rng.below(3) {
        0 => ("lm_head", Entry { name: "lm_head.weight".into(), ..wte }),
        1 => ("lm_head^T", Entry { name: "lm_head.weight".into(), shape: wte.shape.iter().rev().copied().collect(), ..wte }),
        _ => ("unknown", Entry { name: "transformer.h.9.attn.bias".into(), shape: vec![4], data: encode(&[0.0; 4], "F32"), dtype: "F32".into(), ..wte }),
    };
    e.shape_json = None;
    let d = format!("model.safetensors: extra tensor {} {}", e.name, shape_str(&e.shape));
    f.entries.push(e);
    Some(Applied::new(format!("st.add {kind}"), d, None))
}

/// A header that is not an object, or nests deeper than any parser should follow.
pub fn header_structure(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let (kind, text) = match rng.below(9) {
        0 => ("array", "[]".to_string()),
        1 => ("null", "null".into()),
        2 => ("number", "42".into()),
        3 => ("string", "\"GPT2\"".into()),
        4 => ("empty", String::new()),
        5 => ("empty-object", "{}".into()),
        6 => ("deep-array", deep(100_000)),
        7 => ("deep-shape", format!(r#"{{"a":{{"dtype":"F32","shape":{},"data_offsets":[0,4]}}}}"#, deep(5_000))),
        _ => ("deep-object", format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000))),
    };
    f.header_override = Some(text);
    Some(Applied::new(format!("st.header {kind}"), format!("model.safetensors: header replaced by {kind} JSON"), Some(Expect::MustRefuse)))
}

/// `__metadata__` that is not a map of strings, unknown members in a tensor's info, or the
/// header keys in another order (valid).
pub fn header_extras(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    match rng.below(4) {
        0 => {
            f.meta = Some(rng.pick(&[r#"{"format":1}"#, r#"{"format":{"a":[1]}}"#, "null", "[]"]).to_string());
            Some(Applied::new("st.metadata non-string", "model.safetensors: __metadata__ not a map of strings", Some(Expect::Either)))
        }
        1 => {
            let i = rng.below(f.entries.len());
            f.entries[i].extra_json = Some(r#","quant":{"bits":4},"x":null"#.into());
            Some(Applied::new("st.info extra-members", format!("model.safetensors: unknown members in {}'s info", f.entries[i].name), Some(Expect::Either)))
        }
        2 => {
            let mut order: Vec<usize> = (0..f.entries.len()).collect();
            rng.shuffle(&mut order);
            f.header_order = Some(order);
            Some(Applied::new("st.header-order", "model.safetensors: header keys shuffled (offsets unchanged)", None))
        }
        _ => {
            rng.shuffle(&mut f.entries);
            Some(Applied::new("st.data-order", "model.safetensors: tensors laid out in another order (valid)", None))
        }
    }
}

/// A non-finite value at one element of one float tensor.
pub fn non_finite(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let floats_at: Vec<usize> = (0..f.entries.len()).filter(|&i| FLOAT_DTYPES.contains(&f.entries[i].dtype.as_str())).collect();
    if floats_at.is_empty() {
        return None;
    }
    let i = *rng.pick(&floats_at);
    let e = &mut f.entries[i];
    let mut vals = floats(e)?;
    if vals.is_empty() {
        return None;
    }
    let k = rng.below(vals.len());
    let (kind, x) = *rng.pick(&[("NaN", f64::NAN), ("-NaN", -f64::NAN), ("+Inf", f64::INFINITY), ("-Inf", f64::NEG_INFINITY)]);
    vals[k] = x;
    e.data = encode(&vals, &e.dtype.clone());
    let d = format!("model.safetensors: {}[{k}] (flat, {}) = {kind}", e.name, e.dtype);
    Some(Applied::new(format!("st.data {kind} in {}", role(&e.name)), d, None))
}

/// Random finite values in [-4, 4] at a few elements of a few tensors: still a valid model.
pub fn finite_noise(rng: &mut Rng, f: &mut StFile) -> Option<Applied> {
    let mut touched = Vec::new();
    for _ in 0..rng.range(1, 3) {
        let i = rng.below(f.entries.len());
        let e = &mut f.entries[i];
        let Some(mut vals) = floats(e) else { continue };
        if vals.is_empty() {
            continue;
        }
        for _ in 0..rng.range(1, 16) {
            let k = rng.below(vals.len());
            vals[k] = (rng.unit() * 2.0 - 1.0) * 4.0;
        }
        e.data = encode(&vals, &e.dtype.clone());
        touched.push(e.name.clone());
    }
    if touched.is_empty() {
        return None;
    }
    Some(Applied::new("st.data finite-noise", format!("model.safetensors: random values in [-4,4] written into {touched:?}"), None))
}

/// Raw-byte mutations of a serialised file.
pub fn raw(rng: &mut Rng, bytes: &mut Vec<u8>) -> Option<Applied> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().unwrap());
    let len = bytes.len();
    if len < 16 || n >= (len - 8) as u64 {
        return None;
    }
    match rng.below(3) {
        0 => {
            let (kind, v) = *rng.pick(&[
                ("huge", u64::MAX),
                ("2^62", 1 << 62),
                ("zero", 0),
                ("+1", n + 1),
                ("-1", n.saturating_sub(1)),
                ("+8", n + 8),
                ("-8", n.saturating_sub(8)),
                ("100MB+1", 100_000_001),
                ("file-len", len as u64),
            ]);
            bytes[..8].copy_from_slice(&v.to_le_bytes());
            Some(Applied::new(format!("st.len-prefix {kind}"), format!("model.safetensors: header length {n} -> {v}"), Some(Expect::MustRefuse)))
        }
        1 => {
            let mid_data = rng.range(8 + n as usize, len - 1);
            let at = *rng.pick(&[0, 4, 8, 8 + n as usize / 2, 8 + n as usize, 8 + n as usize + 1, mid_data, len - 1]);
            bytes.truncate(at.min(len - 1));
            Some(Applied::new("st.truncate", format!("model.safetensors: truncated to {} of {len} bytes", bytes.len()), Some(Expect::MustRefuse)))
        }
        _ => {
            let k = rng.range(1, 64);
            let extra = rng.bytes(k);
            bytes.extend_from_slice(&extra);
            Some(Applied::new("st.append", format!("model.safetensors: {} bytes appended", extra.len()), None))
        }
    }
}

/// One byte of the header flipped (the oracle decides whether the result is still valid).
pub fn header_byte(rng: &mut Rng, bytes: &mut [u8]) -> Option<Applied> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().unwrap());
    if n == 0 || n > bytes.len() as u64 - 8 {
        return None;
    }
    let at = 8 + rng.below(n as usize);
    let old = *bytes.get(at)?;
    let new = old ^ (1 << rng.below(8));
    bytes[at] = new;
    Some(Applied::new("st.header-byte", format!("model.safetensors: header byte {at} {old:#04x} -> {new:#04x}"), None))
}

pub const STRUCTURED: &[(&str, fn(&mut Rng, &mut StFile) -> Option<Applied>, u32)] = &[
    ("shape", shape_consistent, 6),
    ("shape-header", shape_inconsistent, 2),
    ("dtype-label", dtype_label, 2),
    ("dtype-reencode", dtype_reencode, 3),
    ("offsets", offsets, 2),
    ("drop", drop_tensor, 1),
    ("duplicate", duplicate, 1),
    ("rename", rename, 2),
    ("add", add_tensor, 1),
    ("header", header_structure, 1),
    ("extras", header_extras, 2),
    ("non-finite", non_finite, 6),
    ("noise", finite_noise, 4),
];
