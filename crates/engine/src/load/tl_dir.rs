//! Folders in TL's own format: a `config.json` holding a TL config (`cfg.to_dict()`, no HF
//! `architectures`) beside `model.safetensors` (or a PyTorch `.bin`) holding a TL state dict
//! (`embed.W_E`, `blocks.0.attn.W_Q`, ...). What `HookedTransformer.save` writes; loaded back by
//! `fromPretrained(dir)` with TL's processing, as TL loads a state dict into a model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::load::hub::ModelFiles;
use crate::load::model::{LoadOptions, Loaded};
use crate::load::safetensors::WeightFile;
use crate::model::config::Config;
use crate::model::transformer::{Arch, HookedModel};
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights, QkNorm};
use crate::process::load::weights_from_state_dict;

/// The TL config in `dir/config.json`, when the folder is in TL's format.
pub fn tl_config(dir: &Path) -> Result<Option<Config>> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    if !files.has("config.json") {
        return Ok(None);
    }
    let json = files.read_json("config.json")?;
    let tl = json.get("architectures").is_none() && json.get("d_model").is_some() && json.get("n_layers").is_some();
    if !tl {
        return Ok(None);
    }
    let cfg: Config = serde_json::from_value(json).map_err(|e| Error::corrupt(format!("config.json in {} is not a TL config: {e}", dir.display())))?;
    Ok(Some(cfg))
}

/// A placeholder of `shape` that allocates nothing (a broadcast scalar): what
/// [`weights_from_state_dict`] reads shapes from.
fn shaped(shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?.broadcast_as(shape)?)
}

/// The structure a config implies (which weights exist, with their shapes), holding no data.
pub fn skeleton(cfg: &Config) -> Result<ModelWeights> {
    let e = shaped(&[0])?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for _ in 0..cfg.n_layers {
        let mlp = if cfg.attn_only {
            None
        } else {
            let (d, dm) = (cfg.d_model, cfg.d_mlp());
            match cfg.num_experts {
                // TL's MoE: experts stacked on a leading axis, and the router.
                Some(n) => {
                    let w_in = shaped(&[n, d, dm])?;
                    Some(MlpWeights { ln: None, w_gate: Some(w_in.clone()), w_in, b_in: shaped(&[n, dm])?, w_out: e.clone(), b_out: e.clone(), router: Some(shaped(&[d, n])?) })
                }
                None => {
                    let w_in = shaped(&[d, dm])?;
                    Some(MlpWeights { ln: None, w_gate: cfg.gated_mlp.then(|| w_in.clone()), w_in, b_in: e.clone(), w_out: e.clone(), b_out: e.clone(), router: None })
                }
            }
        };
        let qk_norm = cfg.use_qk_norm.then(|| QkNorm { q: e.clone(), k: e.clone() });
        let n = NormWeights::default();
        blocks.push(BlockWeights { ln1: n.clone(), w_qkv: e.clone(), b_qkv: e.clone(), w_o: e.clone(), b_o: e.clone(), ln2: n, mlp, qk_norm, post_norms: None });
    }
    let w_pos = match cfg.positional_embedding_type.as_str() {
        "standard" => Some(shaped(&[cfg.n_ctx, cfg.d_model])?),
        _ => None,
    };
    Ok(ModelWeights { w_e: e.clone(), embed_ln: None, w_pos, blocks, ln_final: NormWeights::default(), w_u: e.clone(), b_u: e })
}

/// Loads a TL-format folder with `opts`' dtype, processing and layer cut.
pub fn load(dir: &Path, mut cfg: Config, opts: &LoadOptions) -> Result<Loaded> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    cfg.dtype = crate::load::config::dtype_name(opts.dtype).to_string();
    cfg.device = Some(crate::device::label(&opts.device_label));
    if let Some(b) = opts.default_prepend_bos {
        cfg.default_prepend_bos = b;
    }
    cfg.finalize()?;
    crate::model::validate::check(&cfg).map_err(|p| Error::corrupt(format!("config.json in {}: {} {}", dir.display(), p.field, p.message)))?;
    if let Some(n) = opts.first_n_layers {
        if n == 0 || n > cfg.n_layers {
            return Err(Error::invalid(format!("first_n_layers must be in [1, {}], got {n}", cfg.n_layers)));
        }
        cfg.n_layers = n;
    }
    Arch::check(&cfg)?;
    let wf = WeightFile::open(&files, opts.dtype, &Device::Cpu)?;
    let mut sd = HashMap::new();
    for name in wf.names() {
        let h = wf.header(&name)?;
        // Buffers TL saves beside parameters (masks, rotary tables) are not read.
        let buffer = name.ends_with(".mask") || name.ends_with(".IGNORE") || name.contains("rotary_");
        if buffer || !h.dtype.is_some_and(|d| d.is_float()) {
            continue;
        }
        sd.insert(name.clone(), wf.load(&name)?);
    }
    drop(wf);
    let weights = weights_from_state_dict(&cfg, &skeleton(&cfg)?, &sd, opts.dtype, &Device::Cpu)?;
    drop(sd);
    crate::load::model::finish(cfg, weights, &files, opts)
}

/// Writes `model` as a TL-format folder: `model.safetensors` (TL's state-dict names and
/// layouts), `config.json` (TL's config), and the tokenizer's files when it has one.
pub fn save(model: &HookedModel, tokenizer: Option<&crate::load::tokenizer::Tokenizer>, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}: {e}", dir.display())))?;
    let sd = crate::model::state_dict::state_dict(&model.arch, &model.weights)?;
    let mut map = HashMap::new();
    for (k, t) in sd {
        map.insert(k, t.to_device(&Device::Cpu)?.contiguous()?);
    }
    let tmp = dir.join("model.safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, dir.join("model.safetensors")).map_err(|e| Error::io(format!("cannot write {}: {e}", dir.display())))?;
    let mut cfg = serde_json::to_value(model.cfg()).map_err(|e| Error::invalid(e.to_string()))?;
    if let Some(o) = cfg.as_object_mut() {
        o.remove("device");
    }
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::invalid(e.to_string()))?;
    std::fs::write(dir.join("config.json"), text).map_err(|e| Error::io(format!("cannot write config.json in {}: {e}", dir.display())))?;
    if let Some(t) = tokenizer {
        t.save(dir)?;
    }
    Ok(())
}
