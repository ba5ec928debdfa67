//! What a `tokenizer.json` must not hold before `tokenizers` is given it: the settings that make
//! that library panic, loop or allocate without bound on the first encode. (Padding and
//! truncation settings are not checked here: the loader drops them, as transformers overrides
//! them on every call TL makes.)

use serde_json::Value;

/// The first problem found, as a sentence naming the part of the file.
pub fn check(json: &Value) -> Result<(), String> {
    if !json.is_object() {
        return Err("the file is not a JSON object".into());
    }
    for part in ["normalizer", "pre_tokenizer"] {
        if let Some(v) = json.get(part) {
            empty_patterns(v, part)?;
        }
    }
    if let Some(pp) = json.get("post_processor") {
        post_processor(pp)?;
    }
    Ok(())
}

/// A `Replace` or `Split` whose pattern is empty matches between every two characters; the
/// replacement loop of `tokenizers` panics on it.
fn empty_patterns(v: &Value, part: &str) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str);
            if matches!(ty, Some("Replace" | "Split")) {
                let pattern = o.get("pattern");
                let text = pattern.and_then(|p| p.get("String").or_else(|| p.get("Regex"))).and_then(Value::as_str);
                if text == Some("") {
                    return Err(format!("its {part} has a {} with an empty pattern", ty.unwrap_or_default()));
                }
            }
            o.values().try_for_each(|c| empty_patterns(c, part))
        }
        Value::Array(a) => a.iter().try_for_each(|c| empty_patterns(c, part)),
        _ => Ok(()),
    }
}

/// A `TemplateProcessing` may only name special tokens it defines (it indexes its table by the
/// names its templates use), and each must have as many ids as tokens.
fn post_processor(v: &Value) -> Result<(), String> {
    let Some(o) = v.as_object() else { return Ok(()) };
    match o.get("type").and_then(Value::as_str) {
        Some("Sequence") => o.get("processors").and_then(Value::as_array).into_iter().flatten().try_for_each(post_processor),
        Some("TemplateProcessing") => {
            let defined = o.get("special_tokens").and_then(Value::as_object);
            for (name, tok) in defined.into_iter().flatten() {
                let ids = tok.get("ids").and_then(Value::as_array).map_or(0, Vec::len);
                let tokens = tok.get("tokens").and_then(Value::as_array).map_or(0, Vec::len);
                if ids != tokens {
                    return Err(format!("its post_processor's special token {name:?} has {ids} ids for {tokens} tokens"));
                }
            }
            for template in ["single", "pair"] {
                for piece in o.get(template).and_then(Value::as_array).into_iter().flatten() {
                    let Some(id) = piece.get("SpecialToken").and_then(|s| s.get("id")).and_then(Value::as_str) else { continue };
                    if !defined.is_some_and(|d| d.contains_key(id)) {
                        return Err(format!("its post_processor's {template} template uses the special token {id:?}, which it does not define"));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_what_panics_and_accepts_real_files() {
        let template = |single: Value| {
            json!({"post_processor": {"type": "TemplateProcessing", "single": single, "pair": [],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}})
        };
        let ok = template(json!([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]));
        assert_eq!(check(&ok), Ok(()));
        let undefined = template(json!([{"SpecialToken": {"id": "<bos>", "type_id": 0}}]));
        assert!(check(&undefined).unwrap_err().contains("<bos>"));
        let nested = json!({"post_processor": {"type": "Sequence", "processors": [undefined["post_processor"]]}});
        assert!(check(&nested).is_err());
        let replace = |p: &str| json!({"normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"String": p}, "content": "x"}]}});
        assert_eq!(check(&replace(" ")), Ok(()));
        assert!(check(&replace("")).unwrap_err().contains("empty pattern"));
        let split = json!({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": false}});
        assert!(check(&split).is_err());
        assert!(check(&json!([1, 2])).is_err());
    }
}
