//! One module per HF architecture: its config mapping (TL's `convert_hf_model_config`), the
//! tensors that config implies, and its HF → compute-layout weight conversion. Chosen from
//! `config.json`'s `architectures[0]`.
//!
//! Every family goes through the same checks on the way in (`load::model`): its config is
//! validated (`model::validate`), its sizes are bounded by the weight files, and every tensor
//! it declares is checked against the safetensors headers (`load::spec`) before any is read.

pub mod bloom;
pub mod gemma;
pub mod gemma_table;
pub mod gpt2;
pub mod gpt_neo;
pub mod gpt_neox;
pub mod gptj;
pub mod hf_linear;
pub mod llama;
pub mod llama_table;
pub mod mistral;
pub mod mixtral;
pub mod opt;
pub mod phi;
pub mod phi3;
pub mod qwen;
pub mod qwen2;
pub mod qwen3;
pub mod santacoder;

use crate::error::{Error, Result};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::validate::Problem;
use crate::model::weights::ModelWeights;

pub struct Family {
    pub architecture: &'static str,
    /// Module prefixes the checkpoint's tensor names may carry, tried in order.
    pub prefixes: &'static [&'static str],
    /// TL config field → the config.json key it comes from, to name the file's key in errors.
    pub hf_fields: &'static [(&'static str, &'static str)],
    pub config: fn(&serde_json::Value) -> Result<Config>,
    /// The tensors outside the blocks that the config implies (names without prefix, shapes).
    pub tensors: fn(&Config) -> Vec<TensorSpec>,
    /// The tensors of block `layer`.
    pub layer_tensors: fn(&Config, usize) -> Vec<TensorSpec>,
    pub convert: fn(&Config, &Checked) -> Result<ModelWeights>,
}

const FAMILIES: &[Family] = &[
    gpt2::FAMILY, gpt_neox::FAMILY, llama::FAMILY, mistral::FAMILY, qwen2::FAMILY,
    gpt_neo::FAMILY,
    gptj::FAMILY,
    opt::FAMILY,
    phi::FAMILY,
    phi3::FAMILY,
    qwen3::FAMILY,
    bloom::FAMILY,
    gemma::FAMILY,
    gemma::FAMILY2,
    mixtral::FAMILY,
    santacoder::FAMILY,
    qwen::FAMILY,
];

pub fn architecture_of(hf: &serde_json::Value) -> Result<String> {
    hf.get("architectures")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|a| a.as_str())
        .map(String::from)
        .ok_or_else(|| Error::corrupt("config.json has no 'architectures' entry"))
}

pub fn family(architecture: &str) -> Result<&'static Family> {
    FAMILIES
        .iter()
        .find(|f| f.architecture == architecture)
        .ok_or_else(|| match architecture {
            crate::t5::config::ARCHITECTURE => Error::unsupported(format!("{architecture} is an encoder-decoder (T5): load it with HookedEncoderDecoder, not HookedTransformer")),
            a if crate::bert::is_encoder_architecture(a) => {
                Error::unsupported(format!("'{a}' is a BERT encoder, not a decoder: load it with HookedEncoder.fromPretrained (TL's HookedEncoder)"))
            }
            a => Error::unsupported(format!("architecture '{a}' is not supported yet")),
        })
}

impl Family {
    /// A config problem as `TL_CORRUPT_FILE`, naming config.json's key where the family maps one.
    pub fn config_error(&self, p: Problem) -> Error {
        let key = self.hf_fields.iter().find(|(tl, _)| *tl == p.field).map(|(_, hf)| *hf);
        match key {
            Some(hf) if hf != p.field => Error::corrupt(format!("config.json: '{hf}' (TL's {}) {}", p.field, p.message)),
            _ => Error::corrupt(format!("config.json: {} {}", p.field, p.message)),
        }
    }
}

/// Dimensions past this are not a model's (2^48 elements is a petabyte of weights); capping
/// here keeps products of config values from overflowing before the files bound them.
const MAX_DIM: u64 = 1 << 48;

/// A size field of config.json: a non-negative integer below [`MAX_DIM`], named when missing
/// or malformed.
pub(crate) fn hf_usize(hf: &serde_json::Value, key: &str) -> Result<usize> {
    match hf.get(key) {
        None | Some(serde_json::Value::Null) => Err(Error::corrupt(format!("config.json has no integer '{key}'"))),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_DIM => Ok(n as usize),
            Some(n) => Err(Error::corrupt(format!("config.json: '{key}' is {n}, too large for a model dimension"))),
            None => Err(Error::corrupt(format!("config.json: '{key}' must be a non-negative integer, got {v}"))),
        },
    }
}

/// A size field that may be absent (`None`); present, it must be valid as for [`hf_usize`].
pub(crate) fn hf_opt_usize(hf: &serde_json::Value, key: &str) -> Result<Option<usize>> {
    match hf.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => hf_usize(hf, key).map(Some),
    }
}

/// A float field, `default` when absent; present, it must be a number.
pub(crate) fn hf_f64(hf: &serde_json::Value, key: &str, default: f64) -> Result<f64> {
    match hf.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| Error::corrupt(format!("config.json: '{key}' must be a number, got {v}"))),
    }
}

/// A boolean field, `default` when absent; present, it must be a boolean.
pub(crate) fn hf_bool(hf: &serde_json::Value, key: &str, default: bool) -> Result<bool> {
    match hf.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| Error::corrupt(format!("config.json: '{key}' must be true or false, got {v}"))),
    }
}

/// A string field, `default` when absent; present, it must be a string.
pub(crate) fn hf_str(hf: &serde_json::Value, key: &str, default: &str) -> Result<String> {
    match hf.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default.to_string()),
        Some(v) => v.as_str().map(String::from).ok_or_else(|| Error::corrupt(format!("config.json: '{key}' must be a string, got {v}"))),
    }
}

/// `total / parts` where the family requires an exact split (d_model into heads), naming both
/// config.json keys when `parts` is 0 or does not divide.
pub(crate) fn exact_div(total: usize, total_key: &str, parts: usize, parts_key: &str) -> Result<usize> {
    if parts == 0 || !total.is_multiple_of(parts) {
        return Err(Error::corrupt(format!("config.json: '{total_key}' {total} is not divisible by '{parts_key}' {parts}")));
    }
    Ok(total / parts)
}

/// A size config.json may give that TL never reads, taking `tl` (`rule`) instead. HF's model
/// honours `key`: a checkpoint built with another value does not fit TL's state dict and TL
/// cannot load it, so it is refused here too, naming the field.
pub(crate) fn tl_fixed_size(hf: &serde_json::Value, key: &str, tl: usize, rule: &str) -> Result<usize> {
    match hf_opt_usize(hf, key)? {
        Some(n) if n != tl => Err(Error::unsupported(format!(
            "config.json: '{key}' {n} is not {rule} ({tl}); TL takes {tl} and cannot load this checkpoint"
        ))),
        _ => Ok(tl),
    }
}

/// TL's `d_mlp = 4 * d_model` for the families whose MLP width TL never reads (GPT-2, GPT-Neo,
/// GPT-J, SantaCoder): `key` must be absent or that.
pub(crate) fn tl_mlp_width(hf: &serde_json::Value, key: &str, d_model: usize) -> Result<usize> {
    tl_fixed_size(hf, key, d_model.saturating_mul(4), "4 * the model width")
}

/// A config.json switch that removes tensors TL's weight conversion reads (`attention_bias`,
/// `enable_bias`): set to false, TL cannot load the checkpoint, and neither does this.
pub(crate) fn tl_needs_true(hf: &serde_json::Value, key: &str, architecture: &str) -> Result<()> {
    if !hf_bool(hf, key, true)? {
        return Err(Error::unsupported(format!("{architecture} with '{key}' false is not supported (TL's conversion reads those biases and cannot load it)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn an_mlp_width_tl_does_not_read_must_be_four_times_the_model_width() {
        assert_eq!(tl_mlp_width(&json!({}), "n_inner", 32).unwrap(), 128);
        assert_eq!(tl_mlp_width(&json!({"n_inner": null}), "n_inner", 32).unwrap(), 128);
        assert_eq!(tl_mlp_width(&json!({"n_inner": 128}), "n_inner", 32).unwrap(), 128);
        let e = tl_mlp_width(&json!({"n_inner": 64}), "n_inner", 32).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unsupported);
        assert!(e.message.contains("'n_inner' 64"), "{}", e.message);
    }

    #[test]
    fn a_bias_switch_tl_does_not_read_must_be_on() {
        assert!(tl_needs_true(&json!({}), "attention_bias", "GPT-NeoX").is_ok());
        assert!(tl_needs_true(&json!({"attention_bias": true}), "attention_bias", "GPT-NeoX").is_ok());
        let e = tl_needs_true(&json!({"attention_bias": false}), "attention_bias", "GPT-NeoX").unwrap_err();
        assert_eq!(e.code, ErrorCode::Unsupported);
        assert!(e.message.contains("attention_bias"), "{}", e.message);
    }
}
