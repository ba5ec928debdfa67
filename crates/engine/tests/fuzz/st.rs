//! safetensors files for the fuzzer: an editable form (entries in data order, each field
//! overridable with raw JSON so invalid headers can be written), its serialisation, and the
//! weight oracle: a strict, independent reading of a file that says whether the GPT-2 loader
//! must load it, must refuse it, or may do either.

use serde_json::Value;

use super::Expect;

pub const FLOAT_DTYPES: &[&str] = &["F32", "F16", "BF16", "F64"];
pub const INT_DTYPES: &[&str] = &["I64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "U64"];

/// Bits per element of a safetensors dtype (None: not a dtype of the format).
pub fn dtype_bits(d: &str) -> Option<usize> {
    Some(match d {
        "F64" | "I64" | "U64" | "C64" => 64,
        "F32" | "I32" | "U32" => 32,
        "F16" | "BF16" | "I16" | "U16" => 16,
        "F8_E4M3" | "F8_E5M2" | "F8_E8M0" | "I8" | "U8" | "BOOL" => 8,
        "F4" => 4,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
    /// Raw JSON written instead of the computed field.
    pub shape_json: Option<String>,
    pub offsets_json: Option<String>,
    /// Raw JSON members appended inside the tensor's object (`,"x":1`).
    pub extra_json: Option<String>,
}

impl Entry {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug, Default)]
pub struct StFile {
    /// Raw JSON of `__metadata__` (None: left out).
    pub meta: Option<String>,
    /// In data order: offsets are computed from this order unless overridden.
    pub entries: Vec<Entry>,
    /// Raw JSON members added to the header after the tensors (`"name": value`), duplicates allowed.
    pub extra_members: Vec<(String, String)>,
    /// Header key order (indices into `entries`); None: data order.
    pub header_order: Option<Vec<usize>>,
    /// The whole header text, replacing the generated one.
    pub header_override: Option<String>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl StFile {
    /// Reads a file this module can edit (a valid safetensors file); Err says why not.
    pub fn parse(bytes: &[u8]) -> Result<StFile, String> {
        let (entries, meta, trailing) = strict_read(bytes).map_err(|(_, why)| why)?;
        if trailing > 0 {
            return Err(format!("{trailing} trailing bytes"));
        }
        Ok(StFile { meta, entries, ..Default::default() })
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut members: Vec<(String, String)> = Vec::new();
        for e in &self.entries {
            let (s, end) = (data.len(), data.len() + e.data.len());
            data.extend_from_slice(&e.data);
            let shape = e.shape_json.clone().unwrap_or_else(|| serde_json::to_string(&e.shape).unwrap());
            let offsets = e.offsets_json.clone().unwrap_or_else(|| format!("[{s},{end}]"));
            let extra = e.extra_json.as_deref().unwrap_or("");
            let v = format!(r#"{{"dtype":{},"shape":{shape},"data_offsets":{offsets}{extra}}}"#, json_str(&e.dtype));
            members.push((e.name.clone(), v));
        }
        if let Some(order) = &self.header_order {
            members = order.iter().filter_map(|&i| members.get(i).cloned()).collect();
        }
        if let Some(m) = &self.meta {
            members.insert(0, ("__metadata__".into(), m.clone()));
        }
        members.extend(self.extra_members.iter().cloned());
        let mut header = self.header_override.clone().unwrap_or_else(|| {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
            format!("{{{}}}", body.join(","))
        });
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }
}

/// Strict reading per the format: (entries in data order, metadata JSON, trailing bytes), or
/// (how bad, why). Duplicate keys follow serde_json (the last wins), as the safetensors crate.
#[allow(clippy::type_complexity)]
pub fn strict_read(bytes: &[u8]) -> Result<(Vec<Entry>, Option<String>, usize), (Expect, String)> {
    let refuse = |why: String| (Expect::MustRefuse, why);
    let n = u64::from_le_bytes(bytes.get(..8).ok_or_else(|| refuse("shorter than 8 bytes".into()))?.try_into().unwrap());
    if n > 100_000_000 || 8 + n > bytes.len() as u64 {
        return Err(refuse(format!("header length {n} does not fit the {}-byte file", bytes.len())));
    }
    let header = std::str::from_utf8(&bytes[8..8 + n as usize]).map_err(|e| refuse(format!("header is not UTF-8: {e}")))?;
    let v: Value = serde_json::from_str(header).map_err(|e| refuse(format!("header is not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| refuse("header is not a JSON object".into()))?;
    let data = &bytes[8 + n as usize..];
    let mut meta = None;
    let mut entries: Vec<(u64, u64, Entry)> = Vec::new();
    for (k, info) in obj {
        if k == "__metadata__" {
            let ok = info.as_object().is_some_and(|m| m.values().all(|x| x.is_string()));
            if !ok {
                return Err((Expect::Either, format!("__metadata__ is not a map of strings: {info}")));
            }
            meta = Some(info.to_string());
            continue;
        }
        let bad = |what: &str| refuse(format!("tensor {k:?}: {what}"));
        let dtype = info.get("dtype").and_then(Value::as_str).ok_or_else(|| bad("no string dtype"))?;
        let bits = dtype_bits(dtype).ok_or_else(|| bad(&format!("unknown dtype {dtype:?}")))?;
        let shape: Vec<u64> = info
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_u64).collect())
            .ok_or_else(|| bad("shape is not an array of non-negative integers"))?;
        let offs: Vec<u64> = info
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .and_then(|a| a.iter().map(Value::as_u64).collect())
            .ok_or_else(|| bad("data_offsets is not two non-negative integers"))?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("element count overflows"))?;
        let size = numel.checked_mul(bits as u64).ok_or_else(|| bad("byte size overflows"))?;
        if size % 8 != 0 || offs[1] < offs[0] || offs[1] - offs[0] != size / 8 {
            return Err(bad(&format!("data_offsets {offs:?} do not hold {numel} x {dtype}")));
        }
        let e = Entry { name: k.clone(), dtype: dtype.into(), shape, data: vec![], shape_json: None, offsets_json: None, extra_json: None };
        entries.push((offs[0], offs[1], e));
    }
    entries.sort_by_key(|(s, e, _)| (*s, *e));
    let mut at = 0u64;
    for (s, e, entry) in entries.iter_mut() {
        if *s != at {
            return Err(refuse(format!("tensor {:?} starts at {s}, not at {at}: gap or overlap", entry.name)));
        }
        if *e > data.len() as u64 {
            return Err(refuse(format!("tensor {:?} ends at {e}, past the {} data bytes", entry.name, data.len())));
        }
        entry.data = data[*s as usize..*e as usize].to_vec();
        at = *e;
    }
    let trailing = data.len() - at as usize;
    Ok((entries.into_iter().map(|(_, _, e)| e).collect(), meta, trailing))
}

/// Element `i` of a float tensor as f64 (None for other dtypes).
pub fn read_float(e: &Entry, i: usize) -> Option<f64> {
    let b = &e.data;
    Some(match e.dtype.as_str() {
        "F32" => f32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap()) as f64,
        "F64" => f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap()),
        "F16" => half::f16::from_bits(u16::from_le_bytes(b[2 * i..2 * i + 2].try_into().unwrap())).to_f64(),
        "BF16" => half::bf16::from_bits(u16::from_le_bytes(b[2 * i..2 * i + 2].try_into().unwrap())).to_f64(),
        _ => return None,
    })
}

/// Encodes values in a dtype (ints round and saturate; BOOL is x != 0).
pub fn encode(values: &[f64], dtype: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 8);
    for &x in values {
        match dtype {
            "F32" => out.extend((x as f32).to_le_bytes()),
            "F64" => out.extend(x.to_le_bytes()),
            "F16" => out.extend(half::f16::from_f64(x).to_bits().to_le_bytes()),
            "BF16" => out.extend(half::bf16::from_f64(x).to_bits().to_le_bytes()),
            "I64" => out.extend((x.round() as i64).to_le_bytes()),
            "U64" => out.extend((x.round() as u64).to_le_bytes()),
            "I32" => out.extend((x.round() as i32).to_le_bytes()),
            "U32" => out.extend((x.round() as u32).to_le_bytes()),
            "I16" => out.extend((x.round() as i16).to_le_bytes()),
            "U16" => out.extend((x.round() as u16).to_le_bytes()),
            "I8" => out.extend((x.round() as i8).to_le_bytes()),
            "U8" => out.push(x.round() as u8),
            "BOOL" => out.push((x != 0.0) as u8),
            other => panic!("encode: dtype {other}"),
        }
    }
    out
}

/// All values of a float tensor (None for other dtypes).
pub fn floats(e: &Entry) -> Option<Vec<f64>> {
    let bits = dtype_bits(&e.dtype)?;
    if !FLOAT_DTYPES.contains(&e.dtype.as_str()) {
        return None;
    }
    let n = e.data.len() * 8 / bits;
    (0..n).map(|i| read_float(e, i)).collect()
}

/// The tensors the seed checkpoint holds, by name, with their shapes (the reference).
pub struct Reference {
    pub shapes: Vec<(String, Vec<u64>)>,
}

impl Reference {
    pub fn from_seed(seed_weights: &[u8]) -> Reference {
        let st = StFile::parse(seed_weights).expect("the seed model.safetensors is valid");
        Reference { shapes: st.entries.iter().map(|e| (e.name.clone(), e.shape.clone())).collect() }
    }
}

/// A tensor name without the module prefix and layer index (`h.*.mlp.c_proj.bias`).
pub fn role(name: &str) -> String {
    let n = name.strip_prefix("transformer.").unwrap_or(name);
    match n.strip_prefix("h.") {
        Some(rest) => match rest.split_once('.') {
            Some((l, tail)) if l.parse::<u64>().is_ok() => format!("h.*.{tail}"),
            _ => n.to_string(),
        },
        None => n.to_string(),
    }
}

fn layer_of(name: &str) -> Option<u64> {
    let n = name.strip_prefix("transformer.").unwrap_or(name);
    n.strip_prefix("h.")?.split_once('.')?.0.parse().ok()
}

/// The weight oracle: what the loader must do with these bytes as `model.safetensors` of a
/// GPT-2 whose config (otherwise the seed's) has `n_layers` layers.
pub fn oracle(bytes: &[u8], reference: &Reference, n_layers: u64) -> (Expect, Vec<(Expect, String)>) {
    let (entries, _meta, trailing) = match strict_read(bytes) {
        Ok(x) => x,
        Err((e, why)) => return (e, vec![(e, format!("weights: format: {why}"))]),
    };
    let mut expect = Expect::MustLoad;
    let mut why = Vec::new();
    let mut note = |e: Expect, w: String, expect: &mut Expect| {
        *expect = expect.and(e);
        why.push((e, format!("weights: {w}")));
    };
    if trailing > 0 {
        note(Expect::Either, format!("{trailing} bytes past the last tensor"), &mut expect);
    }
    let by_name = |n: &str| -> Vec<&Entry> { entries.iter().filter(|e| e.name == n).collect() };
    let mut dtypes: Vec<&str> = Vec::new();
    for (full, shape) in &reference.shapes {
        if layer_of(full).is_some_and(|l| l >= n_layers) {
            continue;
        }
        let short = full.strip_prefix("transformer.").unwrap_or(full);
        let mut found: Vec<&Entry> = by_name(full);
        if short != full {
            found.extend(by_name(short));
        }
        let Some(e) = found.first() else {
            note(Expect::MustRefuse, format!("required tensor {full} is missing"), &mut expect);
            continue;
        };
        if found.len() > 1 {
            note(Expect::Either, format!("{full} is present with and without the prefix"), &mut expect);
        }
        check_tensor(e, shape, true, &mut dtypes, &mut |x, w| note(x, w, &mut expect));
    }
    let wte = reference.shapes.iter().find(|(n, _)| n.ends_with("wte.weight")).map(|(_, s)| s.clone());
    for e in &entries {
        let known = reference.shapes.iter().any(|(n, _)| n == &e.name || n.strip_prefix("transformer.") == Some(&e.name));
        let unused_layer = layer_of(&e.name).is_some_and(|l| l >= n_layers);
        if e.name == "lm_head.weight" {
            check_tensor(e, wte.as_deref().unwrap_or(&[]), true, &mut dtypes, &mut |x, w| note(x, w, &mut expect));
        } else if !known || unused_layer {
            note(Expect::Either, format!("tensor {} is not read by a {n_layers}-layer GPT-2", e.name), &mut expect);
        }
    }
    dtypes.sort();
    dtypes.dedup();
    if dtypes.len() > 1 {
        note(Expect::Either, format!("mixed float dtypes {dtypes:?}"), &mut expect);
    }
    (expect, why)
}

fn check_tensor<'a>(e: &'a Entry, shape: &[u64], used: bool, dtypes: &mut Vec<&'a str>, note: &mut dyn FnMut(Expect, String)) {
    if e.shape != shape {
        note(Expect::MustRefuse, format!("{} has shape {:?}, a GPT-2 of this config needs {shape:?}", e.name, e.shape));
    }
    if !FLOAT_DTYPES.contains(&e.dtype.as_str()) {
        note(Expect::MustRefuse, format!("{} has non-float dtype {}", e.name, e.dtype));
        return;
    }
    dtypes.push(&e.dtype);
    if let Some(vals) = floats(e) {
        if let Some((i, x)) = vals.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            let level = if used { Expect::MustRefuse } else { Expect::Either };
            note(level, format!("{}[{i}] (flat) is {x}", e.name));
        } else if vals.iter().any(|x| x.abs() > 1e4) {
            note(Expect::Either, format!("{} has values beyond 1e4", e.name));
        }
    }
}

/// A file with `header` (raw JSON bytes) in front of the data section of `file` (a valid
/// safetensors file): what the `safetensors_header` fuzz target loads.
pub fn with_header(file: &[u8], header: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&file[8 + n..]);
    out
}
