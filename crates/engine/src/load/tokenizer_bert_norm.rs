//! transformers' BERT-style fast tokenizers rebuild tokenizer.json's `BertNormalizer` from
//! tokenizer_config.json: `do_lower_case` (default true), `strip_accents` (default null) and
//! `tokenize_chinese_chars` (default true) win over the normalizer's `lowercase`,
//! `strip_accents` and `handle_chinese_chars` when any of them differs. TL's AutoTokenizer
//! loads them so (a cased tokenizer.json whose tokenizer_config.json does not say
//! `do_lower_case: false` lowercases).

use serde_json::Value;

/// transformers' fast classes whose `__init__` does this (the class name without `Fast`).
const CLASSES: &[&str] = &[
    "BertTokenizer", "ConvBertTokenizer", "DistilBertTokenizer", "ElectraTokenizer", "FunnelTokenizer", "LayoutLMTokenizer",
    "LxmertTokenizer", "MobileBertTokenizer", "RoFormerTokenizer", "SqueezeBertTokenizer",
];
/// config.json `model_type`s whose default tokenizer is one of them.
const MODEL_TYPES: &[&str] = &["bert", "convbert", "distilbert", "electra", "funnel", "layoutlm", "lxmert", "mobilebert", "roformer", "squeezebert"];

fn rebuilds(config: Option<&Value>, model_config: Option<&Value>) -> bool {
    match config.and_then(|c| c.get("tokenizer_class")).and_then(Value::as_str) {
        Some(class) => CLASSES.contains(&class.strip_suffix("Fast").unwrap_or(class)),
        None => model_config.and_then(|c| c.get("model_type")).and_then(Value::as_str).is_some_and(|t| MODEL_TYPES.contains(&t)),
    }
}

/// Applies the rebuild to a tokenizer.json `json` whose class (tokenizer_config.json's
/// `tokenizer_class`, else config.json's `model_type`) does it.
pub(crate) fn apply(json: &mut Value, config: Option<&Value>, model_config: Option<&Value>) {
    if !rebuilds(config, model_config) {
        return;
    }
    let Some(norm) = json.get_mut("normalizer").and_then(Value::as_object_mut) else { return };
    if norm.get("type").and_then(Value::as_str) != Some("BertNormalizer") {
        return;
    }
    let setting = |key: &str, default: Value| config.and_then(|c| c.get(key)).cloned().unwrap_or(default);
    let wanted = [
        ("lowercase", setting("do_lower_case", Value::Bool(true))),
        ("strip_accents", setting("strip_accents", Value::Null)),
        ("handle_chinese_chars", setting("tokenize_chinese_chars", Value::Bool(true))),
    ];
    // transformers: `state.get(key, wanted) != wanted` for any key rebuilds with all three.
    if wanted.iter().any(|(k, v)| norm.get(*k).is_some_and(|have| have != v)) {
        for (k, v) in wanted {
            norm.insert(k.to_string(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tok(lowercase: bool) -> Value {
        json!({ "normalizer": { "type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": lowercase } })
    }

    #[test]
    fn tokenizer_config_settings_win_for_bert_classes_only() {
        // No do_lower_case: transformers' default (true) lowercases a cased normalizer.
        let mut t = tok(false);
        apply(&mut t, Some(&json!({ "tokenizer_class": "BertTokenizer" })), None);
        assert_eq!(t["normalizer"]["lowercase"], json!(true));
        // Consistent settings leave it alone; so does a class that does not rebuild.
        let mut t = tok(false);
        apply(&mut t, Some(&json!({ "tokenizer_class": "BertTokenizerFast", "do_lower_case": false })), None);
        assert_eq!(t, tok(false));
        let mut t = tok(false);
        apply(&mut t, Some(&json!({ "tokenizer_class": "GPT2Tokenizer" })), Some(&json!({ "model_type": "bert" })));
        assert_eq!(t, tok(false));
        // Without a class, config.json's model_type picks it; strip_accents and CJK rebuild too.
        let mut t = tok(true);
        apply(&mut t, Some(&json!({ "strip_accents": false, "tokenize_chinese_chars": false })), Some(&json!({ "model_type": "bert" })));
        assert_eq!(t["normalizer"]["strip_accents"], json!(false));
        assert_eq!(t["normalizer"]["handle_chinese_chars"], json!(false));
        assert_eq!(t["normalizer"]["lowercase"], json!(true));
    }
}
