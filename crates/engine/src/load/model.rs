//! From a folder of HF files (hub snapshot or local) to a processed `HookedModel`.

use std::path::Path;

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::families;
use crate::load::hub::ModelFiles;
use crate::load::safetensors::WeightFile;
use crate::load::spec;
use crate::model::transformer::Arch;
use crate::load::tokenizer::Tokenizer;
use crate::model::transformer::HookedModel;
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
}

pub struct Loaded {
    pub model: HookedModel,
    pub tokenizer: Option<Tokenizer>,
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

pub fn load_tokenizer(files: &ModelFiles) -> Result<Option<Tokenizer>> {
    if !files.has("tokenizer.json") {
        return Ok(None);
    }
    Tokenizer::from_path(&files.dir).map(Some)
}

pub fn load_from_dir(dir: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    let hf = files.read_json("config.json")?;
    let arch = families::architecture_of(&hf)?;
    let fam = families::family(&arch)?;
    let mut cfg = (fam.config)(&hf)?;
    crate::model::validate::check(&cfg).map_err(|p| fam.config_error(p))?;
    cfg.model_name = opts.official_name.rsplit('/').next().unwrap_or(&opts.official_name).to_string();
    cfg.tokenizer_name = Some(opts.official_name.clone());
    cfg.init_weights = false;
    cfg.dtype = dtype_name(opts.dtype).to_string();
    cfg.device = Some(crate::device::label(&opts.device_label));
    if let Some(b) = opts.default_prepend_bos {
        cfg.default_prepend_bos = b;
    }
    if let Some(n) = opts.first_n_layers {
        if n == 0 {
            return Err(Error::invalid("first_n_layers must be at least 1"));
        }
        cfg.n_layers = n.min(cfg.n_layers);
    }
    cfg.finalize()?;
    // Behaviour the engine cannot run (an unknown act_fn, ...) is refused before weights are read.
    Arch::check(&cfg)?;
    let trace = std::env::var_os("TL_TRACE_LOAD").is_some();
    let t0 = std::time::Instant::now();
    // Weights are read and processed on the CPU (the fast, exact path), then moved. Every size
    // and tensor the config implies is checked against the headers before anything is read.
    let wf = WeightFile::open(&files, opts.dtype, &Device::Cpu)?;
    spec::bound_by_files(&cfg, &wf)?;
    let checked = spec::check(&wf, fam, &cfg)?;
    let mut weights = (fam.convert)(&cfg, &checked)?;
    drop(checked);
    drop(wf);
    let t1 = std::time::Instant::now();
    // Families' conversions give every weight its own storage (a tied W_U viewing W_E aside),
    // so processing may write them in place.
    process::process_owned(&mut cfg, &mut weights, opts.process, Ownership::Fresh)?;
    let t2 = std::time::Instant::now();
    let tokenizer = load_tokenizer(&files)?.map(|mut t| {
        t.padding_side_left = opts.padding_left; // set in place: no copy of the vocabulary
        t
    });
    if trace {
        eprintln!("[tl load] weights {:?}, processing {:?}, tokenizer {:?}", t1 - t0, t2 - t1, t2.elapsed());
    }
    if let Some(t) = &tokenizer {
        t.apply_to_config(&mut cfg);
    }
    let weights = if opts.device.is_cpu() { weights } else { weights.to_device(&opts.device)? };
    let model = HookedModel::new(cfg, weights, opts.device.clone())?;
    Ok(Loaded { model, tokenizer })
}
