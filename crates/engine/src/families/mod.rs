//! One module per HF architecture: its config mapping (TL's `convert_hf_model_config`) and its
//! HF → compute-layout weight conversion. Chosen from `config.json`'s `architectures[0]`.

pub mod gpt2;

use crate::error::{Error, Result};
use crate::load::safetensors::WeightFile;
use crate::model::config::Config;
use crate::model::weights::ModelWeights;

pub struct Family {
    pub architecture: &'static str,
    pub config: fn(&serde_json::Value) -> Result<Config>,
    pub convert: fn(&Config, &WeightFile) -> Result<ModelWeights>,
}

const FAMILIES: &[Family] = &[Family { architecture: "GPT2LMHeadModel", config: gpt2::config, convert: gpt2::convert }];

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
        .ok_or_else(|| Error::unsupported(format!("architecture '{architecture}' is not supported yet")))
}

/// Reads a numeric field of config.json, naming it when missing.
pub(crate) fn hf_usize(hf: &serde_json::Value, key: &str) -> Result<usize> {
    hf.get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| Error::corrupt(format!("config.json has no integer '{key}'")))
}

pub(crate) fn hf_f64(hf: &serde_json::Value, key: &str, default: f64) -> f64 {
    hf.get(key).and_then(|v| v.as_f64()).unwrap_or(default)
}
