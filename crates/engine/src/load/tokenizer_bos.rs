//! Which tokenizers TL's `add_bos_token=True` changes: transformers' classes that rebuild their
//! post-processor for it (fast ones, or slow ones when TL loads the tokenizer slow).

/// transformers' fast tokenizer classes that honour `add_bos_token` (by rebuilding their
/// post-processor), which TL passes as True when it loads a model's tokenizer; and the
/// config.json `model_type`s whose default tokenizer is one of them.
const ADD_BOS_CLASSES: &[&str] = &["GPTNeoXTokenizer", "LlamaTokenizer", "CodeLlamaTokenizer", "GemmaTokenizer", "CohereTokenizer"];
const ADD_BOS_MODEL_TYPES: &[&str] = &["gpt_neox", "llama", "gemma", "gemma2", "gemma3", "cohere", "phi3"];
/// The slow (Python) classes that honour `add_bos_token` while their fast twins do not, and the
/// `model_type`s whose default tokenizer is one of them. TL loads the tokenizer of a model
/// whose name contains "phi" slow (`use_fast=False`), so that phi's CodeGen tokenizer adds BOS.
const SLOW_ADD_BOS_CLASSES: &[&str] = &["GPT2Tokenizer", "CodeGenTokenizer"];
const SLOW_ADD_BOS_MODEL_TYPES: &[&str] = &["gpt2", "gpt_neo", "gptj", "opt", "codegen", "phi"];

/// TL's choice of tokenizer class for the model it loads: slow when `"phi"` is in its
/// tokenizer name (the official name, or the folder path of a local model).
pub fn tl_loads_slow(tokenizer_name: &str) -> bool {
    tokenizer_name.to_lowercase().contains("phi")
}

pub(crate) fn adds_bos_when_asked(config: Option<&serde_json::Value>, model_config: Option<&serde_json::Value>, slow: bool) -> bool {
    match config.and_then(|c| c.get("tokenizer_class")).and_then(|v| v.as_str()) {
        Some(class) => {
            let class = class.strip_suffix("Fast").unwrap_or(class);
            ADD_BOS_CLASSES.contains(&class) || (slow && SLOW_ADD_BOS_CLASSES.contains(&class))
        }
        None => model_config.and_then(|c| c.get("model_type")).and_then(|v| v.as_str()).is_some_and(|t| {
            ADD_BOS_MODEL_TYPES.contains(&t) || (slow && SLOW_ADD_BOS_MODEL_TYPES.contains(&t))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slow_gpt2_style_classes_add_bos_only_when_tl_loads_them_slow() {
        assert!(tl_loads_slow("microsoft/phi-2") && tl_loads_slow("microsoft/Phi-3-mini-4k-instruct"));
        assert!(!tl_loads_slow("gpt2") && !tl_loads_slow("Qwen/Qwen3-0.6B"));
        let class = |c: &str| json!({ "tokenizer_class": c });
        for c in ["CodeGenTokenizer", "GPT2Tokenizer", "GPT2TokenizerFast"] {
            assert!(adds_bos_when_asked(Some(&class(c)), None, true), "{c} slow");
            assert!(!adds_bos_when_asked(Some(&class(c)), None, false), "{c} fast");
        }
        // Llama's fast class rebuilds its post-processor too; Qwen2's and Qwen v1's classes never add BOS.
        assert!(adds_bos_when_asked(Some(&class("LlamaTokenizer")), None, false));
        assert!(!adds_bos_when_asked(Some(&class("Qwen2Tokenizer")), None, true));
        assert!(!adds_bos_when_asked(Some(&class("QWenTokenizer")), None, true));
        // Without a tokenizer_class, config.json's model_type picks the class, as for AutoTokenizer.
        let phi = json!({ "model_type": "phi" });
        assert!(adds_bos_when_asked(None, Some(&phi), true) && !adds_bos_when_asked(None, Some(&phi), false));
        assert!(adds_bos_when_asked(None, Some(&json!({ "model_type": "phi3" })), false));
    }
}
