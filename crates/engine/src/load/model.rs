//! From a folder of HF files (hub snapshot or local) to a processed `HookedModel`.

use std::path::Path;

use candle_core::{DType, Device};

pub use crate::load::config::dtype_name;

use crate::error::Result;
use crate::load::config::{pretrained_config, ConfigOptions};
use crate::load::hub::ModelFiles;
use crate::load::safetensors::WeightFile;
use crate::load::spec;
use crate::load::tokenizer::Tokenizer;
use crate::model::config::Config;
use crate::model::transformer::HookedModel;
use crate::model::weights::ModelWeights;
use crate::process::{self, Ownership, ProcessOptions};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// TL's official name (`gpt2`, `EleutherAI/pythia-70m`), or the folder path for local loads.
    pub official_name: String,
    pub process: ProcessOptions,
    pub dtype: DType,
    pub device: Device,
    /// The device's name as the user gave it (`cuda`, `cuda:0`): TL keeps it in `cfg.device`.
    pub device_label: String,
    pub default_prepend_bos: Option<bool>,
    pub first_n_layers: Option<usize>,
    /// TL's `default_padding_side`: the tokenizer pads on the left (TL's default is the right,
    /// whatever the tokenizer's own config says).
    pub padding_left: bool,
    /// A training checkpoint: label type, index, value (see `load::config::ConfigOptions`).
    pub checkpoint: Option<(String, i64, i64)>,
}

impl LoadOptions {
    /// A float32 load onto the CPU with `process` and TL's other defaults (tools and tests).
    pub fn cpu_f32(official_name: impl Into<String>, process: ProcessOptions) -> Self {
        LoadOptions {
            official_name: official_name.into(),
            process,
            dtype: DType::F32,
            device: Device::Cpu,
            device_label: "cpu".into(),
            default_prepend_bos: None,
            first_n_layers: None,
            padding_left: false,
            checkpoint: None,
        }
    }
}

pub struct Loaded {
    pub model: HookedModel,
    pub tokenizer: Option<Tokenizer>,
}

/// The model's tokenizer, as TL loads it for `tokenizer_name` (slow for "phi" names).
pub fn load_tokenizer(files: &ModelFiles, tokenizer_name: &str) -> Result<Option<Tokenizer>> {
    if !Tokenizer::in_folder(&files.dir) {
        return Ok(None);
    }
    Tokenizer::from_path_as(&files.dir, crate::load::tokenizer::tl_loads_slow(tokenizer_name)).map(Some)
}

pub fn load_from_dir(dir: &Path, opts: &LoadOptions) -> Result<Loaded> {
    // TL's own checkpoints (NeelNanda/..., ArthurConmy/..., Baidicoot/...): chosen by name, as TL.
    if crate::load::tl_native::is_tl_native(&opts.official_name) {
        return crate::load::tl_native::load(dir, opts);
    }
    if let Some(cfg) = crate::load::tl_dir::tl_config(dir)? {
        return crate::load::tl_dir::load(dir, cfg, opts);
    }
    let files = ModelFiles { dir: dir.to_path_buf() };
    // The config as TL builds it; the norm rename of fold_ln happens with the folding itself.
    let (fam, cfg) = pretrained_config(
        Some(dir),
        &ConfigOptions {
            official_name: opts.official_name.clone(),
            dtype: opts.dtype,
            device_label: opts.device_label.clone(),
            default_prepend_bos: opts.default_prepend_bos,
            first_n_layers: opts.first_n_layers,
            fold_ln: false,
            n_devices: 1,
            checkpoint: opts.checkpoint.clone(),
        },
    )?;
    let trace = std::env::var_os("TL_TRACE_LOAD").is_some();
    let t0 = std::time::Instant::now();
    // Weights are read and processed on the CPU (the fast, exact path), then moved. Every size
    // and tensor the config implies is checked against the headers before anything is read.
    let wf = WeightFile::open(&files, opts.dtype, &Device::Cpu)?;
    spec::bound_by_files(&cfg, &wf)?;
    let checked = spec::check(&wf, fam, &cfg)?;
    let weights = (fam.convert)(&cfg, &checked)?;
    drop(checked);
    drop(wf);
    if trace {
        eprintln!("[tl load] weights {:?}", t0.elapsed());
    }
    finish(cfg, weights, &files, opts)
}

/// The end every loader shares: TL's processing of freshly converted weights (each with its
/// own storage, a tied W_U viewing W_E aside, so processing may write them in place), the
/// tokenizer (padding side set in place: no copy of the vocabulary), the move to the device.
pub(crate) fn finish(mut cfg: Config, mut weights: ModelWeights, files: &ModelFiles, opts: &LoadOptions) -> Result<Loaded> {
    process::process_owned(&mut cfg, &mut weights, opts.process, Ownership::Fresh)?;
    let tokenizer = load_tokenizer(files, &opts.official_name)?.map(|mut t| {
        t.padding_side_left = opts.padding_left;
        t
    });
    if let Some(t) = &tokenizer {
        t.apply_to_config(&mut cfg);
    }
    let weights = if opts.device.is_cpu() { weights } else { weights.to_device(&opts.device)? };
    Ok(Loaded { model: HookedModel::new(cfg, weights, opts.device.clone())?, tokenizer })
}
