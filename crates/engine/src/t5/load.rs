//! From a folder of HF files to a `T5Model`: TL's config, every tensor declared and checked
//! against the safetensors headers before any is read, TL's conversion, the tokenizer.

use std::path::Path;

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::families;
use crate::load::hub::ModelFiles;
use crate::load::safetensors::WeightFile;
use crate::load::spec;
use crate::load::tokenizer::Tokenizer;
use crate::model::config::Config;
use crate::t5::config::{self, ARCHITECTURE};
use crate::t5::model::T5Model;
use crate::t5::weights;

pub struct T5Loaded {
    pub model: T5Model,
    pub tokenizer: Option<Tokenizer>,
}

fn config_of(hf: &serde_json::Value, official_name: &str, dtype: DType, device_label: &str) -> Result<Config> {
    let mut cfg = config::from_hf(hf)?;
    config::finish(&mut cfg, official_name, dtype, device_label)?;
    Ok(cfg)
}

/// TL's `get_pretrained_model_config` for a folder holding a T5 config.json; None for any
/// other folder (no config.json, or another architecture).
pub fn pretrained_config(dir: &Path, official_name: &str, dtype: DType, device_label: &str) -> Result<Option<Config>> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    let Ok(hf) = files.read_json("config.json") else { return Ok(None) };
    if families::architecture_of(&hf).ok().as_deref() != Some(ARCHITECTURE) {
        return Ok(None);
    }
    config_of(&hf, official_name, dtype, device_label).map(Some)
}

/// `official_name`: TL's official name (or the folder path); `device_label` the device as the
/// user named it (TL keeps it in `cfg.device`).
pub fn load_from_dir(dir: &Path, official_name: &str, dtype: DType, device: &Device, device_label: &str) -> Result<T5Loaded> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    let hf = files.read_json("config.json")?;
    let arch = families::architecture_of(&hf)?;
    if arch != ARCHITECTURE {
        return Err(match families::family(&arch) {
            Ok(_) => Error::unsupported(format!("'{official_name}' is a {arch}, a decoder-only model: load it with HookedTransformer, not HookedEncoderDecoder")),
            Err(_) => Error::unsupported(format!("'{official_name}' is a {arch}: HookedEncoderDecoder loads {ARCHITECTURE} (T5) only")),
        });
    }
    let cfg = config_of(&hf, official_name, dtype, device_label)?;
    let wf = WeightFile::open(&files, dtype, &Device::Cpu)?;
    spec::bound_by_files(&cfg, &wf)?;
    let checked = spec::check_groups(&wf, &[""], weights::all_specs(&cfg))?;
    let w = weights::convert(&cfg, &checked, dtype)?;
    drop(checked);
    drop(wf);
    // TL's HookedEncoderDecoder keeps its tokenizer out of the config (no set_tokenizer: its
    // tokenizer_prepends_bos stays None; d_vocab_out is the config's vocab_size).
    let tokenizer = crate::load::model::load_tokenizer(&files, official_name)?;
    let mut model = T5Model::new(cfg, w, Device::Cpu);
    if !device.is_cpu() {
        model.to_device(device, device_label)?;
    }
    Ok(T5Loaded { model, tokenizer })
}
