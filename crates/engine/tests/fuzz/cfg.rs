//! Mutations of `config.json`, and the config oracle: what a GPT-2 loader must do with a
//! config, given the seed's weights (n_embd 32, 4 heads, 3 layers, n_ctx 64, vocab 512).

use serde_json::{json, Map, Value};

use super::json_mut::{pretty, walk_mutate, ODD_VALUES};
use super::rng::Rng;
use super::{Applied, Expect};

pub const NUMERIC_FIELDS: &[&str] =
    &["n_embd", "n_head", "n_layer", "n_ctx", "n_positions", "vocab_size", "layer_norm_epsilon", "n_inner"];

/// Keys whose value a GPT-2 forward does not depend on (dropout, init, bookkeeping).
const INERT: &[&str] = &[
    "attn_pdrop", "embd_pdrop", "resid_pdrop", "initializer_range", "summary_activation", "summary_first_dropout",
    "summary_proj_to_labels", "summary_type", "summary_use_proj", "transformers_version", "use_cache", "model_type",
    "torch_dtype", "bos_token_id", "eos_token_id",
];

/// Activations HF's GPT-2 accepts besides `gelu_new` (an engine may or may not support them).
const OTHER_ACTS: &[&str] = &["gelu", "relu", "silu", "swish", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "tanh"];

pub struct Verdict {
    pub expect: Expect,
    pub why: Vec<(Expect, String)>,
    /// The layers the weights must hold (the seed's 3 unless the config validly says fewer).
    pub n_layers: u64,
}

/// A field's JSON value, or `absent`.
fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "absent".to_string(), Value::to_string)
}

/// The config oracle. `seed` is the seed's config.json.
pub fn oracle(bytes: &[u8], seed: &Value) -> Verdict {
    let mut v = Verdict { expect: Expect::MustLoad, why: vec![], n_layers: 3 };
    let note = |v: &mut Verdict, e: Expect, w: String| {
        v.expect = v.expect.and(e);
        v.why.push((e, format!("config: {w}")));
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            note(&mut v, Expect::MustRefuse, format!("text not UTF-8 ({e})"));
            return v;
        }
    };
    let cfg: Value = match serde_json::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            note(&mut v, Expect::MustRefuse, format!("text not JSON ({e})"));
            return v;
        }
    };
    let Some(obj) = cfg.as_object() else {
        note(&mut v, Expect::MustRefuse, "top-level is not an object".into());
        return v;
    };
    let arch_ok = obj.get("architectures").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str)
        == Some("GPT2LMHeadModel");
    if !arch_ok {
        note(&mut v, Expect::MustRefuse, format!("architectures is {}", show(obj.get("architectures"))));
    }
    let int = |k: &str| obj.get(k).and_then(Value::as_u64);
    for (k, want) in [("n_embd", 32), ("vocab_size", 512)] {
        if int(k) != Some(want) {
            note(&mut v, Expect::MustRefuse, format!("{k} is {}; the weights need {want}", show(obj.get(k))));
        }
    }
    match int("n_head") {
        Some(h) if h >= 1 && 32 % h == 0 => {}
        _ => note(&mut v, Expect::MustRefuse, format!("n_head {} does not divide n_embd 32", show(obj.get("n_head")))),
    }
    match int("n_layer") {
        Some(3) => {}
        Some(l @ 1..=2) => {
            v.n_layers = l;
            note(&mut v, Expect::Either, format!("n_layer {l} < the 3 layers stored"));
        }
        _ => note(&mut v, Expect::MustRefuse, format!("n_layer is {}; the weights hold 3", show(obj.get("n_layer")))),
    }
    match obj.get("n_ctx") {
        Some(Value::Null) | None => {
            let e = if obj.get("n_ctx").is_some() { Expect::Either } else { Expect::MustLoad };
            if int("n_positions") == Some(64) {
                note(&mut v, e, "n_ctx absent or null, n_positions 64".into());
            } else {
                note(&mut v, Expect::MustRefuse, format!("n_ctx absent and n_positions {}", show(obj.get("n_positions"))));
            }
        }
        Some(x) if x.as_u64() == Some(64) => {
            if obj.get("n_positions").is_some_and(|p| p.as_u64() != Some(64)) {
                note(&mut v, Expect::Either, format!("n_positions {} disagrees with n_ctx 64", show(obj.get("n_positions"))));
            }
        }
        Some(x) => note(&mut v, Expect::MustRefuse, format!("n_ctx is {x}; wpe holds 64 positions")),
    }
    match obj.get("layer_norm_epsilon") {
        None => {}
        Some(Value::Null) => note(&mut v, Expect::Either, "layer_norm_epsilon null".into()),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x < 0.0 {
                note(&mut v, Expect::MustRefuse, format!("layer_norm_epsilon {x} is negative"));
            } else if x == 0.0 || x > 0.1 {
                note(&mut v, Expect::Either, format!("layer_norm_epsilon {x} is unusual"));
            }
        }
        Some(x) => note(&mut v, Expect::MustRefuse, format!("layer_norm_epsilon is {x}")),
    }
    match obj.get("n_inner") {
        None | Some(Value::Null) => {}
        Some(x) if x.as_u64() == Some(128) => {}
        Some(x) => note(&mut v, Expect::MustRefuse, format!("n_inner is {x}; the MLP weights are 32x128")),
    }
    match obj.get("activation_function") {
        None => note(&mut v, Expect::Either, "activation_function absent (HF default gelu_new)".into()),
        Some(Value::String(s)) if s == "gelu_new" => {}
        Some(Value::String(s)) if OTHER_ACTS.contains(&s.as_str()) => note(&mut v, Expect::Either, format!("activation {s}")),
        Some(Value::Null) => note(&mut v, Expect::Either, "activation_function null (absent?)".into()),
        Some(x) => note(&mut v, Expect::MustRefuse, format!("activation_function is {x}")),
    }
    match obj.get("scale_attn_by_inverse_layer_idx") {
        None | Some(Value::Bool(_)) => {}
        Some(x) => note(&mut v, Expect::Either, format!("scale_attn_by_inverse_layer_idx is {x}")),
    }
    let handled = |k: &str| {
        NUMERIC_FIELDS.contains(&k) || ["architectures", "activation_function", "scale_attn_by_inverse_layer_idx"].contains(&k)
    };
    let seed = seed.as_object().cloned().unwrap_or_default();
    for k in obj.keys().chain(seed.keys()) {
        if handled(k) || INERT.contains(&k.as_str()) || obj.get(k) == seed.get(k) {
            continue;
        }
        note(&mut v, Expect::Either, format!("{k} changed from {} to {}", show(seed.get(k)), show(obj.get(k))));
    }
    v
}

fn parse_obj(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<Value>(bytes).ok()?.as_object().cloned()
}

/// The value for a field: the odd ones, or ones plausible for that field.
fn value_for(rng: &mut Rng, field: &str) -> Value {
    if rng.chance(0.6) {
        return rng.pick(ODD_VALUES)();
    }
    match field {
        "n_head" => json!(*rng.pick(&[1, 2, 3, 5, 8, 16, 32, 64])),
        "n_layer" => json!(*rng.pick(&[1, 2, 4, 100])),
        "n_inner" => json!(*rng.pick(&[64, 128, 129])),
        "n_ctx" | "n_positions" => json!(*rng.pick(&[1, 32, 63, 65, 1024])),
        "layer_norm_epsilon" => json!(*rng.pick(&[0.0, -1e-5, 1e-12, 0.5, 1e-300])),
        _ => json!(*rng.pick(&[16, 31, 33, 64, 511, 513])),
    }
}

/// Sets one numeric field to an odd or plausible value (the oracle judges).
pub fn set_field(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let mut obj = parse_obj(cfg)?;
    let field = *rng.pick(NUMERIC_FIELDS);
    let value = value_for(rng, field);
    if obj.get(field) == Some(&value) {
        return None;
    }
    let d = format!("config.json: {field} {} -> {value}", show(obj.get(field)));
    let class = format!("cfg.{field}={}", short(&value));
    obj.insert(field.into(), value);
    *cfg = pretty(&Value::Object(obj));
    Some(Applied::new(class, d, None))
}

pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 24 { format!("{}...", s.chars().take(20).collect::<String>()) } else { s }
}

pub fn delete_key(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let mut obj = parse_obj(cfg)?;
    let keys: Vec<String> = obj.keys().cloned().collect();
    let k = if rng.chance(0.6) { rng.pick(NUMERIC_FIELDS).to_string() } else { rng.pick(&keys).clone() };
    obj.remove(&k)?;
    *cfg = pretty(&Value::Object(obj));
    Some(Applied::new(format!("cfg.delete {k}"), format!("config.json: key {k} deleted"), None))
}

/// The same key twice in the text, the new value first or last (JSON parsers keep the last).
pub fn duplicate_key(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let text = String::from_utf8(cfg.clone()).ok()?;
    let (open, close) = (text.find('{')?, text.rfind('}')?);
    let field = *rng.pick(NUMERIC_FIELDS);
    let value = value_for(rng, field);
    let last = rng.chance(0.5);
    let member = format!("\"{field}\": {value}");
    let new = if last {
        format!("{},\n  {member}\n{}", text[..close].trim_end(), &text[close..])
    } else {
        format!("{}\n  {member},{}", &text[..=open], &text[open + 1..])
    };
    *cfg = new.into_bytes();
    let place = if last { "last" } else { "first" };
    Some(Applied::new(
        format!("cfg.duplicate {field} ({place})"),
        format!("config.json: key {field} written twice, {value} {place}"),
        Some(Expect::Either),
    ))
}

pub fn architectures(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let mut obj = parse_obj(cfg)?;
    let (kind, v) = *rng.pick(&[
        ("unknown", "[\"LlamaForCausalLM\"]"),
        ("bogus", "[\"NoSuchModelForCausalLM\"]"),
        ("string", "\"GPT2LMHeadModel\""),
        ("empty", "[]"),
        ("null-entry", "[null]"),
        ("number-entry", "[1]"),
        ("lowercase", "[\"gpt2lmheadmodel\"]"),
        ("object", "{\"0\": \"GPT2LMHeadModel\"}"),
        ("two", "[\"GPT2LMHeadModel\", \"GPT2Model\"]"),
    ]);
    obj.insert("architectures".into(), serde_json::from_str(v).unwrap());
    *cfg = pretty(&Value::Object(obj));
    Some(Applied::new(format!("cfg.architectures {kind}"), format!("config.json: architectures = {v}"), None))
}

pub fn activation(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let mut obj = parse_obj(cfg)?;
    let v = rng.pick(&[json!("relu"), json!("gelu"), json!("bogus_act"), json!(""), json!(1), json!(null), json!(["gelu"])]).clone();
    let d = format!("config.json: activation_function = {v}");
    obj.insert("activation_function".into(), v.clone());
    *cfg = pretty(&Value::Object(obj));
    Some(Applied::new(format!("cfg.activation {}", short(&v)), d, None))
}

/// Text-level damage: not an object, not UTF-8, not JSON, too deep.
pub fn text(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let (kind, new): (&str, Vec<u8>) = match rng.below(8) {
        0 => ("array-top", b"[{\"n_embd\": 32}]".to_vec()),
        1 => ("null-top", b"null".to_vec()),
        2 => ("invalid-utf8", { let mut c = cfg.clone(); let at = rng.below(c.len()); c.insert(at, 0xff); c }),
        3 => ("truncated", cfg[..rng.below(cfg.len())].to_vec()),
        4 => ("bom", [b"\xef\xbb\xbf".as_slice(), cfg].concat()),
        5 => ("nan-literal", String::from_utf8_lossy(cfg).replacen("1e-05", "NaN", 1).into_bytes()),
        6 => ("deep", format!("{{\"x\": {}{}}}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes()),
        _ => ("trailing-garbage", [cfg.as_slice(), b"}}garbage"].concat()),
    };
    if new == *cfg {
        return None;
    }
    *cfg = new;
    Some(Applied::new(format!("cfg.text {kind}"), format!("config.json: {kind}"), None))
}

/// Swaps the type of a random top-level value.
pub fn structural(rng: &mut Rng, cfg: &mut Vec<u8>) -> Option<Applied> {
    let mut v: Value = serde_json::from_slice(cfg).ok()?;
    let d = walk_mutate(rng, &mut v, 1)?;
    *cfg = pretty(&v);
    Some(Applied::new("cfg.structural", format!("config.json: {d}"), None))
}

pub const MUTATORS: &[(&str, fn(&mut Rng, &mut Vec<u8>) -> Option<Applied>, u32)] = &[
    ("set", set_field, 8),
    ("delete", delete_key, 2),
    ("duplicate", duplicate_key, 2),
    ("architectures", architectures, 1),
    ("activation", activation, 1),
    ("text", text, 2),
    ("structural", structural, 2),
];
