//! Mutations of `tokenizer.json` (and the small tokenizer configs beside it). Each says its own
//! expectation: most tokenizers below may be loaded or refused, but none may crash or hang the
//! loader, and a few are invalid by the `tokenizers` crate's own rules (a template naming an
//! undefined special token, a truncation stride not below max_length) and must be refused.

use serde_json::{json, Value};

use super::json_mut::{brief, pretty, walk_mutate};
use super::rng::Rng;
use super::{Applied, Expect};

const EOT: &str = "<|endoftext|>";

fn edit(tok: &mut Vec<u8>, f: impl FnOnce(&mut serde_json::Map<String, Value>) -> Option<(String, String, Option<Expect>)>) -> Option<Applied> {
    let mut v: Value = serde_json::from_slice(tok).ok()?;
    let (class, desc, expect) = f(v.as_object_mut()?)?;
    *tok = pretty(&v);
    Some(Applied::new(class, format!("tokenizer.json: {desc}"), expect))
}

pub fn padding_value(strategy: Value, multiple: Value) -> Value {
    json!({"strategy": strategy, "direction": "Right", "pad_to_multiple_of": multiple,
           "pad_id": 511, "pad_type_id": 0, "pad_token": EOT})
}

/// Fixed padding to a huge length, or a huge pad_to_multiple_of, or ordinary padding.
pub fn padding(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let huge = *rng.pick(&[1u64 << 40, 1 << 31, 1 << 62, u64::MAX, 1_000_000]);
    edit(tok, |t| {
        let (kind, p, e) = match rng.below(3) {
            0 => ("fixed-huge", padding_value(json!({"Fixed": huge}), Value::Null), Expect::Either),
            1 => ("multiple-huge", padding_value(json!("BatchLongest"), json!(huge)), Expect::Either),
            _ => ("batch-longest", padding_value(json!("BatchLongest"), Value::Null), Expect::MustLoad),
        };
        let d = format!("padding = {}", p);
        t.insert("padding".into(), p);
        Some((format!("tok.padding {kind}"), d, Some(e)))
    })
}

pub fn truncation_value(max_length: u64, stride: u64) -> Value {
    json!({"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": stride})
}

/// Truncation; with stride >= max_length `encode` panics on long input. A loader may refuse
/// it, or drop the tokenizer's own truncation (transformers overrides it on every call TL
/// makes); honouring it shows as a panic in the child's encode of a long string.
pub fn truncation(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let (m, s) = *rng.pick(&[(4u64, 4u64), (4, 10), (1, 1), (0, 0), (0, 5), (8, 2), (2, 1)]);
    let e = if s >= m || m == 0 { Expect::Either } else { Expect::MustLoad };
    edit(tok, |t| {
        t.insert("truncation".into(), truncation_value(m, s));
        Some((format!("tok.truncation max{m}/stride{s}"), format!("truncation max_length {m} stride {s}"), Some(e)))
    })
}

pub fn template(special: &str, specials: Value) -> Value {
    json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": special, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": specials,
    })
}

/// TemplateProcessing post-processors: naming an undefined special token (must refuse),
/// defining it with an id past the vocabulary or with mismatched ids/tokens, or a valid one.
pub fn post_processor(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let (kind, pp, e) = match rng.below(4) {
        0 => ("undefined-special", template("<s>", json!({})), Expect::MustRefuse),
        1 => ("special-id-past-vocab", template("<s>", json!({"<s>": {"id": "<s>", "ids": [99999], "tokens": ["<s>"]}})), Expect::Either),
        2 => ("special-ids-tokens-mismatch", template(EOT, json!({EOT: {"id": EOT, "ids": [511, 511], "tokens": [EOT]}})), Expect::Either),
        _ => ("valid-bos", template(EOT, json!({EOT: {"id": EOT, "ids": [511], "tokens": [EOT]}})), Expect::MustLoad),
    };
    edit(tok, |t| {
        t.insert("post_processor".into(), pp.clone());
        Some((format!("tok.post_processor {kind}"), format!("post_processor = {}", brief(&pp)), Some(e)))
    })
}

/// Replace normalizers and Split pre-tokenizers with empty or invalid patterns.
pub fn patterns(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let (kind, key, v) = match rng.below(6) {
        0 => ("replace-empty-string", "normalizer", json!({"type": "Replace", "pattern": {"String": ""}, "content": "x"})),
        1 => ("replace-empty-regex", "normalizer", json!({"type": "Replace", "pattern": {"Regex": ""}, "content": "xy"})),
        2 => ("replace-bad-regex", "normalizer", json!({"type": "Replace", "pattern": {"Regex": "("}, "content": ""})),
        3 => ("split-empty-regex", "pre_tokenizer", json!({"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": false})),
        4 => ("decoder-replace-empty", "decoder", json!({"type": "Replace", "pattern": {"String": ""}, "content": "x"})),
        _ => ("replace-huge-content", "normalizer", json!({"type": "Replace", "pattern": {"String": "e"}, "content": "e".repeat(4096)})),
    };
    edit(tok, |t| {
        t.insert(key.into(), v.clone());
        Some((format!("tok.{key} {kind}"), format!("{key} = {}", brief(&v)), Some(Expect::Either)))
    })
}

/// Vocabulary ids that are huge, negative, colliding or past the model's vocabulary.
pub fn vocab_ids(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let id = rng.pick(&[json!(u32::MAX), json!(1u64 << 40), json!(-1), json!(1e10), json!(511), json!(600), json!(0)]).clone();
    let k = rng.below(500);
    edit(tok, |t| {
        let vocab = t.get_mut("model")?.get_mut("vocab")?.as_object_mut()?;
        let key = vocab.keys().nth(k % vocab.len())?.clone();
        let d = format!("model.vocab[{key:?}] {} -> {id}", vocab[&key]);
        vocab.insert(key, id.clone());
        Some((format!("tok.vocab-id {id}"), d, Some(Expect::Either)))
    })
}

/// Added tokens with huge or colliding ids, or empty content.
pub fn added_tokens(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let (kind, id, content) = *rng.pick(&[("huge-id", u32::MAX as u64, "<huge>"), ("collide", 5, "<five>"), ("empty", 600, ""), ("past-vocab", 700, "<x>")]);
    edit(tok, |t| {
        let added = t.get_mut("added_tokens")?.as_array_mut()?;
        added.push(json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
        Some((format!("tok.added {kind}"), format!("added token {content:?} id {id}"), Some(Expect::Either)))
    })
}

/// Another model type over BPE's fields, or merges naming tokens not in the vocabulary.
pub fn model_kind(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let which = rng.below(5);
    edit(tok, |t| {
        let model = t.get_mut("model")?.as_object_mut()?;
        let d = match which {
            0..=3 => {
                let ty = ["WordPiece", "Unigram", "WordLevel", "Bogus"][which];
                model.insert("type".into(), json!(ty));
                format!("model.type = {ty}")
            }
            _ => {
                model.get_mut("merges")?.as_array_mut()?.push(json!("zzq qqz"));
                "merge of unknown tokens added".into()
            }
        };
        Some((format!("tok.model {}", d.split(' ').next().unwrap_or("")), d, Some(Expect::Either)))
    })
}

/// A random key deleted or renamed, or a value's type swapped, anywhere in the tree.
pub fn structural(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let mut v: Value = serde_json::from_slice(tok).ok()?;
    let depth = rng.range(1, 4);
    let d = walk_mutate(rng, &mut v, depth)?;
    *tok = pretty(&v);
    Some(Applied::new(format!("tok.structural depth{depth}"), format!("tokenizer.json: {d}"), Some(Expect::Either)))
}

/// Text-level damage to tokenizer.json.
pub fn text(rng: &mut Rng, tok: &mut Vec<u8>) -> Option<Applied> {
    let (kind, new) = match rng.below(4) {
        0 => ("truncated", tok[..rng.below(tok.len())].to_vec()),
        1 => ("not-object", b"[1,2,3]".to_vec()),
        2 => ("deep", format!("{{\"version\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
        _ => ("invalid-utf8", { let mut t = tok.clone(); let at = rng.below(t.len()); t.insert(at, 0xfe); t }),
    };
    *tok = new;
    Some(Applied::new(format!("tok.text {kind}"), format!("tokenizer.json: {kind}"), Some(Expect::Either)))
}

pub const MUTATORS: &[(&str, fn(&mut Rng, &mut Vec<u8>) -> Option<Applied>, u32)] = &[
    ("padding", padding, 2),
    ("truncation", truncation, 2),
    ("post_processor", post_processor, 2),
    ("patterns", patterns, 2),
    ("vocab", vocab_ids, 1),
    ("added", added_tokens, 1),
    ("model", model_kind, 1),
    ("structural", structural, 4),
    ("text", text, 1),
];

/// tokenizer_config.json / special_tokens_map.json: special tokens that do not exist or are
/// of the wrong type (a loader falls back or refuses; it must not crash).
pub fn special_config(rng: &mut Rng, bytes: &mut Vec<u8>, file: &str) -> Option<Applied> {
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    let key = *rng.pick(&["eos_token", "bos_token", "pad_token", "unk_token"]);
    let val = rng.pick(&[json!("<nope>"), json!({"content": 5}), json!(5), json!(null), json!([]), json!(""), json!({"content": "<nope>"})]).clone();
    let d = format!("{file}: {key} = {val}");
    v.as_object_mut()?.insert(key.into(), val.clone());
    *bytes = pretty(&v);
    Some(Applied::new(format!("tokcfg.{key} {}", brief(&val)), d, Some(Expect::Either)))
}
