//! TL's `get_pretrained_model_config`: the family and the config of a model from its official
//! name and (unless TL hard-codes it) its config.json, with TL's common processing applied
//! (model name, dtype, device, fold_ln's norm rename, default_prepend_bos, first_n_layers) and
//! every value checked before anything is sized from it.

use std::path::Path;

use candle_core::DType;

use crate::error::{Error, ErrorCode, Result};
use crate::families::{self, gemma_table, llama_table, Family};
use crate::load::hub::ModelFiles;
use crate::model::config::Config;
use crate::model::transformer::Arch;

#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// TL's official name (`gpt2`, `EleutherAI/pythia-70m`), or the folder path for local loads.
    pub official_name: String,
    pub dtype: DType,
    /// `cfg.device` as TL keeps it (the name the user gave).
    pub device_label: String,
    pub default_prepend_bos: Option<bool>,
    pub first_n_layers: Option<usize>,
    /// Rename LN / RMS to LNPre / RMSPre, as TL's config does when the weights will be folded.
    pub fold_ln: bool,
    pub n_devices: usize,
    /// A training checkpoint (TL's `checkpoint_index` / `checkpoint_value`): label type
    /// (`step`, `token`), index and value.
    pub checkpoint: Option<(String, i64, i64)>,
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

/// The family and TL's config: TL's hard-coded table for the names it has one for (no file is
/// read), else the family of config.json's `architectures[0]` in `dir` mapping that file.
pub fn pretrained_config(dir: Option<&Path>, o: &ConfigOptions) -> Result<(&'static Family, Config)> {
    let (fam, mut cfg) = match llama_table::lookup(&o.official_name) {
        Some(cfg) => (families::family("LlamaForCausalLM")?, cfg),
        None if gemma_table::lookup(&o.official_name).is_some() => gemma_config(dir, &o.official_name)?,
        None => {
            let dir = dir.ok_or_else(|| Error::new(ErrorCode::MissingFile, format!("the config of '{}' needs its config.json", o.official_name)))?;
            let hf = ModelFiles { dir: dir.to_path_buf() }.read_json("config.json")?;
            let fam = families::family(&families::architecture_of(&hf)?)?;
            let cfg = (fam.config)(&hf)?;
            (fam, cfg)
        }
    };
    crate::model::validate::check(&cfg).map_err(|p| fam.config_error(p))?;
    finish(&mut cfg, o)?;
    Ok((fam, cfg))
}

/// TL's hard-coded Gemma config for `name`, unless `dir` holds a Gemma checkpoint of other sizes
/// (a reduced copy, which TL could not load into its table's shapes: the test fixtures): that
/// one is read from its config.json with the table's rules.
fn gemma_config(dir: Option<&Path>, name: &str) -> Result<(&'static Family, Config)> {
    let Some((arch, table)) = gemma_table::lookup(name) else {
        return Err(Error::invalid(format!("'{name}' has no hard-coded Gemma config")));
    };
    let fam = families::family(arch)?;
    let file = dir.and_then(|d| ModelFiles { dir: d.to_path_buf() }.read_json("config.json").ok());
    if let Some(hf) = file {
        let file_arch = families::architecture_of(&hf).ok();
        if let Some(file_fam) = file_arch.as_deref().filter(|a| a.starts_with("Gemma")).and_then(|a| families::family(a).ok()) {
            let mut own = (file_fam.config)(&hf)?;
            if !gemma_table::same_sizes(&own, &table) {
                own.original_architecture = table.original_architecture;
                return Ok((fam, own));
            }
        }
    }
    Ok((fam, table))
}

/// TL's processing common to every model's config (`get_pretrained_model_config` after the
/// model-specific part), then the check that the engine can run it.
pub fn finish(cfg: &mut Config, o: &ConfigOptions) -> Result<()> {
    cfg.model_name = o.official_name.rsplit('/').next().unwrap_or(&o.official_name).to_string();
    cfg.tokenizer_name = Some(o.official_name.clone());
    cfg.init_weights = false;
    cfg.dtype = dtype_name(o.dtype).to_string();
    cfg.device = Some(crate::device::label(&o.device_label));
    cfg.n_devices = o.n_devices;
    if let Some((label_type, index, value)) = &o.checkpoint {
        cfg.from_checkpoint = true;
        cfg.checkpoint_label_type = Some(label_type.clone());
        cfg.checkpoint_index = Some(*index);
        cfg.checkpoint_value = Some(*value);
    }
    // TL never folds a shortformer model's norms (its positions join Q/K after ln1).
    if o.fold_ln && cfg.positional_embedding_type != "shortformer" {
        cfg.normalization_type = match cfg.normalization_type.as_deref() {
            Some("LN") | Some("LNPre") => Some("LNPre".into()),
            Some("RMS") | Some("RMSPre") => Some("RMSPre".into()),
            _ => cfg.normalization_type.clone(),
        };
    }
    if let Some(b) = o.default_prepend_bos {
        cfg.default_prepend_bos = b;
    }
    if let Some(n) = o.first_n_layers {
        if n == 0 {
            return Err(Error::invalid("first_n_layers must be at least 1"));
        }
        cfg.n_layers = n.min(cfg.n_layers);
    }
    cfg.finalize()?;
    // Behaviour the engine cannot run (an unknown act_fn, ...) is refused before weights are read.
    Arch::check(cfg)
}
