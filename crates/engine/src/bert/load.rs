//! From a folder of HF BERT files (hub snapshot or local) to a `HookedEncoder`, as TL's
//! `HookedEncoder.from_pretrained`: TL's config, `convert_bert_weights`, no weight processing.

use std::path::Path;

use candle_core::{DType, Device};

use crate::bert::config::{config, config_error, type_vocab_size};
use crate::bert::weights::{convert, layer_tensors, tensors, LnNames, PREFIXES};
use crate::bert::{is_encoder_architecture, HookedEncoder};
use crate::error::{Error, Result};
use crate::model::config::Config;
use crate::families::architecture_of;
use crate::load::config::{finish, ConfigOptions};
use crate::load::hub::ModelFiles;
use crate::load::safetensors::WeightFile;
use crate::load::spec;
use crate::load::tokenizer::Tokenizer;

pub struct EncoderLoadOptions {
    /// TL's official name, or the folder path for local loads.
    pub official_name: String,
    pub dtype: DType,
    pub device: Device,
    pub device_label: String,
}

pub struct LoadedEncoder {
    pub model: HookedEncoder,
    pub tokenizer: Option<Tokenizer>,
    /// transformers' `tokenizer.mask_token_id` (`[MASK]` unless the tokenizer config names another).
    pub mask_token_id: Option<u32>,
    /// transformers' `tokenizer.pad_token_id` (`[PAD]` unless the tokenizer config names another).
    pub pad_token_id: Option<u32>,
}

/// A special token as the tokenizer config names it, else transformers' BertTokenizer default
/// (the hub's bert-base-* tokenizer configs name none).
fn special_token(files: &ModelFiles, key: &str, default: &str) -> String {
    for name in ["tokenizer_config.json", "special_tokens_map.json"] {
        let v = files.has(name).then(|| files.read_json(name).ok()).flatten();
        let m = v.as_ref().and_then(|v| v.get(key)).and_then(|m| m.as_str().map(String::from).or_else(|| m.get("content").and_then(|c| c.as_str()).map(String::from)));
        if let Some(m) = m {
            return m;
        }
    }
    default.to_string()
}

/// TL's `get_pretrained_model_config` for a BERT checkpoint in `dir` (None when its config.json
/// is not a BERT encoder's): the `BertForMaskedLM` config with TL's common processing.
pub fn encoder_config(dir: Option<&Path>, o: &ConfigOptions) -> Result<Option<Config>> {
    let Some(dir) = dir else { return Ok(None) };
    let hf = ModelFiles { dir: dir.to_path_buf() }.read_json("config.json")?;
    let arch = architecture_of(&hf)?;
    if !is_encoder_architecture(&arch) {
        return Ok(None);
    }
    let mut cfg = config(&hf, &arch)?;
    crate::model::validate::check(&cfg).map_err(config_error)?;
    finish(&mut cfg, o)?;
    Ok(Some(cfg))
}

/// The encoder and its tokenizer (if the folder has one).
pub fn load_encoder(dir: &Path, o: &EncoderLoadOptions) -> Result<LoadedEncoder> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    let opts = ConfigOptions {
        official_name: o.official_name.clone(),
        dtype: o.dtype,
        device_label: o.device_label.clone(),
        default_prepend_bos: None,
        first_n_layers: None,
        fold_ln: false,
        n_devices: 1,
        checkpoint: None,
    };
    let Some(cfg) = encoder_config(Some(dir), &opts)? else {
        let arch = architecture_of(&files.read_json("config.json")?)?;
        return Err(Error::unsupported(format!(
            "'{}' is a {arch} checkpoint, not a BERT encoder: HookedEncoder loads BertForMaskedLM checkpoints (load decoders with HookedTransformer.fromPretrained)",
            o.official_name
        )));
    };
    let types = type_vocab_size(&files.read_json("config.json")?)?;
    let wf = WeightFile::open(&files, o.dtype, &Device::Cpu)?;
    spec::bound_by_files(&cfg, &wf)?;
    let ln = LnNames::of(&wf);
    let checked = spec::check_listed(&wf, PREFIXES, &tensors(&cfg, types, ln), cfg.n_layers, |l| layer_tensors(&cfg, l, ln))?;
    let weights = convert(&cfg, &checked, ln)?;
    drop(checked);
    drop(wf);
    let weights = if o.device.is_cpu() { weights } else { weights.to_device(&o.device)? };
    // TL's HookedEncoder keeps the tokenizer as loaded (no set_tokenizer, right padding).
    let tokenizer = if files.has("tokenizer.json") { Some(Tokenizer::from_path(dir)?) } else { None };
    let id = |key: &str, default: &str| tokenizer.as_ref().and_then(|t| t.token_to_id(&special_token(&files, key, default)));
    let (mask_token_id, pad_token_id) = (id("mask_token", "[MASK]"), id("pad_token", "[PAD]"));
    Ok(LoadedEncoder { model: HookedEncoder::new(cfg, weights, o.device.clone()), tokenizer, mask_token_id, pad_token_id })
}
