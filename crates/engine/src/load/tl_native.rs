//! TL's own checkpoints (NeelNanda's toy / SoLU / GELU models, Redwood's attn-2l, Othello-GPT):
//! repos holding a config.json in NeelNanda's field names and PyTorch `.pth` state dicts, chosen by
//! official name as TL does (`NeelNanda/`, `ArthurConmy/`, `Baidicoot/`). TL's
//! `convert_neel_model_config`, the file choice of `get_pretrained_state_dict` (`*final.pth`, or
//! `*{checkpoint_value}.pth`), `get_checkpoint_labels` (`checkpoints/*_{N}.pth`), and the state
//! dict conversions of the old SoLU layout and minGPT. The `.pth` files are read by the hardened
//! reader (tensors and plain containers only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::load::config::{finish, ConfigOptions};
use crate::load::hub::ModelFiles;
use crate::load::model::{LoadOptions, Loaded};
use crate::load::torch_bin::{candle_dtype, TorchFile};
use crate::model::config::Config;
use crate::process::load::{weights_from_state_dict, StateDict};

/// Whether TL loads `official_name` as one of its own checkpoints.
pub fn is_tl_native(official_name: &str) -> bool {
    ["NeelNanda", "ArthurConmy", "Baidicoot"].iter().any(|p| official_name.starts_with(p))
}

/// The repo's files (relative paths with `/`, sorted as the hub lists them) in a snapshot folder.
pub fn repo_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, depth: usize) -> Result<()> {
        if depth > 8 {
            return Ok(());
        }
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}: {e}", dir.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out, depth + 1)?;
            } else if p.is_file() {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/"));
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out, 0)?;
    out.sort();
    Ok(out)
}

/// TL's `get_checkpoint_labels` for NeelNanda repos: the N of every `checkpoints/*_{N}.pth`, in
/// listing order, labelled `token` when the last exceeds 1e9, else `step`.
pub fn checkpoint_labels(dir: &Path) -> Result<(Vec<i64>, &'static str)> {
    let mut labels = Vec::new();
    for f in repo_files(dir)? {
        let Some(rest) = f.strip_prefix("checkpoints/") else { continue };
        let Some(stem) = rest.strip_suffix(".pth") else { continue };
        // re.match(r"checkpoints/.*_(\d*)\.pth"): the digits after the last `_` (greedy `.*`).
        if let Some((_, n)) = stem.rsplit_once('_') {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                labels.push(n.parse::<i64>().map_err(|_| Error::corrupt(format!("checkpoint label in '{f}' is too large")))?);
            }
        }
    }
    let kind = if labels.last().is_some_and(|&l| l as f64 > 1e9) { "token" } else { "step" };
    Ok((labels, kind))
}

/// TL's `convert_neel_model_config` on `dir/config.json`, as a TL config (not yet finished).
fn neel_config(dir: &Path, official_name: &str) -> Result<Config> {
    let j = ModelFiles { dir: dir.to_path_buf() }.read_json("config.json")?;
    let get = |k: &str| j.get(k).cloned().ok_or_else(|| Error::corrupt(format!("config.json of '{official_name}' has no '{k}'")));
    let arch = match j.get("architecture") {
        Some(a) => a.clone(),
        None => json!(if official_name.contains("_old") { "neel-solu-old" } else { "neel" }),
    };
    let norm = match j.get("normalization") {
        Some(n) => n.clone(),
        None => get("normalization_type")?,
    };
    let pos = match j.get("shortformer_pos") {
        Some(Value::Bool(true)) => "shortformer",
        Some(v) if v.as_i64().is_some_and(|i| i != 0) => "shortformer",
        _ => "standard",
    };
    let cfg = json!({
        "d_model": get("d_model")?, "n_layers": get("n_layers")?, "d_mlp": get("d_mlp")?,
        "d_head": get("d_head")?, "n_heads": get("n_heads")?, "n_ctx": get("n_ctx")?,
        "d_vocab": get("d_vocab")?, "tokenizer_name": j.get("tokenizer_name").cloned().unwrap_or(Value::Null),
        "act_fn": get("act_fn")?, "attn_only": get("attn_only")?,
        "final_rms": j.get("final_rms").cloned().unwrap_or(json!(false)),
        "original_architecture": arch, "normalization_type": norm, "positional_embedding_type": pos,
    });
    serde_json::from_value(cfg).map_err(|e| Error::corrupt(format!("config.json of '{official_name}': {e}")))
}

/// TL's `get_pretrained_model_config` for a TL-native name: its config.json mapped, then TL's
/// common processing (`load::config::finish`); the tokenizer is the one config.json names.
pub fn pretrained_config(dir: Option<&Path>, o: &ConfigOptions) -> Result<Config> {
    let dir = dir.ok_or_else(|| Error::new(ErrorCode::MissingFile, format!("the config of '{}' needs its config.json", o.official_name)))?;
    let mut cfg = neel_config(dir, &o.official_name)?;
    crate::model::validate::check(&cfg).map_err(|p| Error::corrupt(format!("config.json of '{}': {} {}", o.official_name, p.field, p.message)))?;
    let tokenizer = cfg.tokenizer_name.clone();
    finish(&mut cfg, o)?;
    cfg.tokenizer_name = tokenizer;
    Ok(cfg)
}

/// The `.pth` TL reads: the first listed file ending in `{checkpoint_value}.pth` for a
/// checkpoint, else in `final.pth`; TL_MISSING_FILE naming what was looked for.
pub fn state_dict_file(dir: &Path, official_name: &str, checkpoint_value: Option<i64>) -> Result<PathBuf> {
    let suffix = match checkpoint_value {
        Some(v) => format!("{v}.pth"),
        None => "final.pth".to_string(),
    };
    let files = repo_files(dir)?;
    match files.iter().find(|f| f.ends_with(&suffix)) {
        Some(f) => Ok(dir.join(f)),
        None => Err(Error::new(
            ErrorCode::MissingFile,
            format!("'{official_name}' has no state dict file ending in '{suffix}' (TL's *{suffix}) in {}", dir.display()),
        )),
    }
}

/// The float tensors of a `.pth` state dict in `dtype`; the buffers TL saves beside parameters
/// (`attn.mask`, `attn.IGNORE` (-inf), rotary tables) are not read.
fn read_state_dict(path: &Path, dtype: DType) -> Result<StateDict> {
    let f = TorchFile::open(path)?;
    let mut sd = HashMap::new();
    for (name, t) in f.tensors() {
        let buffer = name.ends_with(".mask") || name.ends_with(".IGNORE") || name.contains("rotary_");
        if !buffer && candle_dtype(t.dtype).is_some_and(|d| d.is_float()) {
            sd.insert(name.clone(), f.load(name, dtype, &Device::Cpu)?);
        }
    }
    Ok(sd)
}

fn take(sd: &mut StateDict, key: &str) -> Result<Tensor> {
    sd.remove(key).ok_or_else(|| Error::missing_weight(key))
}

/// TL's `convert_neel_solu_old_weights`: "norm" names become "ln" (`ln.` → `ln_final.`); W_pos
/// is left-facing up to 8 layers, every other `W_` up to 6.
pub fn convert_solu_old(sd: StateDict, n_layers: usize) -> Result<StateDict> {
    let mut out = HashMap::new();
    for (k, v) in sd {
        let mut k = k.replace("norm", "ln");
        if k.starts_with("ln.") {
            k = k.replacen("ln.", "ln_final.", 1);
        }
        out.insert(k, v);
    }
    if n_layers <= 8 {
        let p = take(&mut out, "pos_embed.W_pos")?;
        out.insert("pos_embed.W_pos".into(), p.t()?.contiguous()?);
    }
    if n_layers <= 6 {
        for (k, v) in out.iter_mut() {
            if k.contains("W_") && !k.contains("W_pos") {
                let r = v.rank();
                if r >= 2 {
                    *v = v.transpose(r - 2, r - 1)?.contiguous()?;
                }
            }
        }
    }
    Ok(out)
}

/// TL's `convert_mingpt_weights`: minGPT's separate query/key/value `nn.Linear`s to TL's layout.
pub fn convert_mingpt(mut old: StateDict, cfg: &Config) -> Result<StateDict> {
    let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let mut sd = HashMap::new();
    sd.insert("embed.W_E".into(), take(&mut old, "tok_emb.weight")?);
    sd.insert("pos_embed.W_pos".into(), take(&mut old, "pos_emb")?.squeeze(0)?);
    for l in 0..cfg.n_layers {
        let p = format!("blocks.{l}");
        let mut mv = |from: &str, to: &str, sd: &mut StateDict| -> Result<()> {
            sd.insert(format!("{p}.{to}"), take(&mut old, &format!("{p}.{from}"))?);
            Ok(())
        };
        for n in ["1", "2"] {
            mv(&format!("ln{n}.weight"), &format!("ln{n}.w"), &mut sd)?;
            mv(&format!("ln{n}.bias"), &format!("ln{n}.b"), &mut sd)?;
        }
        for (name, key) in [("query", "Q"), ("key", "K"), ("value", "V")] {
            // "(i h) m -> i m h"
            let w = take(&mut old, &format!("{p}.attn.{name}.weight"))?;
            sd.insert(format!("{p}.attn.W_{key}"), w.reshape((h, dh, d))?.transpose(1, 2)?.contiguous()?);
            let b = take(&mut old, &format!("{p}.attn.{name}.bias"))?;
            sd.insert(format!("{p}.attn.b_{key}"), b.reshape((h, dh))?);
        }
        // "m (i h) -> i h m"
        let w_o = take(&mut old, &format!("{p}.attn.proj.weight"))?;
        sd.insert(format!("{p}.attn.W_O"), w_o.t()?.contiguous()?.reshape((h, dh, d))?);
        sd.insert(format!("{p}.attn.b_O"), take(&mut old, &format!("{p}.attn.proj.bias"))?);
        sd.insert(format!("{p}.mlp.W_in"), take(&mut old, &format!("{p}.mlp.0.weight"))?.t()?.contiguous()?);
        sd.insert(format!("{p}.mlp.b_in"), take(&mut old, &format!("{p}.mlp.0.bias"))?);
        sd.insert(format!("{p}.mlp.W_out"), take(&mut old, &format!("{p}.mlp.2.weight"))?.t()?.contiguous()?);
        sd.insert(format!("{p}.mlp.b_out"), take(&mut old, &format!("{p}.mlp.2.bias"))?);
    }
    sd.insert("unembed.W_U".into(), take(&mut old, "head.weight")?.t()?.contiguous()?);
    sd.insert("ln_final.w".into(), take(&mut old, "ln_f.weight")?);
    sd.insert("ln_final.b".into(), take(&mut old, "ln_f.bias")?);
    Ok(sd)
}

/// TL's `fill_missing_keys` for what a model built without init holds: biases the dict lacks are
/// zeros (a missing weight matrix stays an error: TL would fill it with uninitialised memory).
fn fill_missing_biases(sd: &mut StateDict, cfg: &Config, dtype: DType) -> Result<()> {
    let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let vocab_out = if cfg.d_vocab_out > 0 { cfg.d_vocab_out as usize } else { cfg.d_vocab };
    let mut zeros = |k: String, shape: &[usize]| -> Result<()> {
        if !sd.contains_key(&k) {
            sd.insert(k, Tensor::zeros(shape, dtype, &Device::Cpu)?);
        }
        Ok(())
    };
    zeros("unembed.b_U".into(), &[vocab_out])?;
    for l in 0..cfg.n_layers {
        for b in ["b_Q", "b_K", "b_V"] {
            zeros(format!("blocks.{l}.attn.{b}"), &[h, dh])?;
        }
        zeros(format!("blocks.{l}.attn.b_O"), &[d])?;
        if !cfg.attn_only {
            zeros(format!("blocks.{l}.mlp.b_in"), &[cfg.d_mlp()])?;
            zeros(format!("blocks.{l}.mlp.b_out"), &[d])?;
        }
    }
    Ok(())
}

/// Loads a TL-native repo's snapshot (`dir`) as TL's `from_pretrained` does.
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let files = ModelFiles { dir: dir.to_path_buf() };
    let o = ConfigOptions {
        official_name: opts.official_name.clone(),
        dtype: opts.dtype,
        device_label: opts.device_label.clone(),
        default_prepend_bos: opts.default_prepend_bos,
        first_n_layers: opts.first_n_layers,
        fold_ln: false,
        n_devices: 1,
        checkpoint: opts.checkpoint.clone(),
    };
    let cfg = pretrained_config(Some(dir), &o)?;
    let path = state_dict_file(dir, &opts.official_name, cfg.checkpoint_value.filter(|_| cfg.from_checkpoint))?;
    let mut sd = read_state_dict(&path, opts.dtype)?;
    sd = match cfg.original_architecture.as_deref() {
        Some("neel-solu-old") => convert_solu_old(sd, cfg.n_layers)?,
        Some("mingpt") => convert_mingpt(sd, &cfg)?,
        _ => sd,
    };
    fill_missing_biases(&mut sd, &cfg, opts.dtype)?;
    let mut skeleton = crate::load::tl_dir::skeleton(&cfg)?;
    if skeleton.w_pos.is_none() && cfg.positional_embedding_type == "shortformer" {
        skeleton.w_pos = Some(Tensor::zeros(1, DType::F32, &Device::Cpu)?.broadcast_as((cfg.n_ctx, cfg.d_model))?);
    }
    let weights = weights_from_state_dict(&cfg, &skeleton, &sd, opts.dtype, &Device::Cpu)?;
    drop(sd);
    crate::load::model::finish(cfg, weights, &files, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_labels_follow_tls_pattern() {
        let dir = std::env::temp_dir().join(format!("tl-native-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        for f in ["checkpoints/m_1000.pth", "checkpoints/m_20000.pth", "checkpoints/m_5.pth", "checkpoints/notes.txt", "model_final.pth"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let (labels, kind) = checkpoint_labels(&dir).unwrap();
        assert_eq!((labels, kind), (vec![1000, 20000, 5], "step"));
        assert!(state_dict_file(&dir, "NeelNanda/x", None).unwrap().ends_with("model_final.pth"));
        assert!(state_dict_file(&dir, "NeelNanda/x", Some(20000)).unwrap().ends_with("m_20000.pth"));
        let e = state_dict_file(&dir, "NeelNanda/x", Some(7)).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingFile);
        assert!(e.message.contains("7.pth"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn neel_names_are_tl_native() {
        assert!(is_tl_native("NeelNanda/SoLU_1L512W_C4_Code"));
        assert!(is_tl_native("Baidicoot/Othello-GPT-Transformer-Lens"));
        assert!(!is_tl_native("gpt2"));
    }
}
