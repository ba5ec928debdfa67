//! TL's weight-processing methods on a loaded model (`process_weights_`,
//! `load_and_process_state_dict`, and `fold_layer_norm` / `center_writing_weights` /
//! `center_unembed` / `fold_value_biases` / `refactor_factored_attn_matrices` on a state dict).
//!
//! A loaded model's weights are shared with runs in flight, so these build new weights (the
//! model's state dict, overlaid with the given one as TL's `fill_missing_keys` does, read back
//! into compute layout), process them with the same arithmetic as loading (`block.rs`), and
//! make a new model: the caller swaps it in.

use std::collections::HashSet;

use candle_core::Tensor;

use crate::error::{Error, ErrorCode, Result};
use crate::kernels::split::par_each_mut;
use crate::model::config::Config;
use crate::model::norm::NormKind;
use crate::model::state_dict::state_dict;
use crate::model::transformer::HookedModel;
use crate::model::weights::{ModelWeights, NormWeights};
use crate::process::block::{process_block, BlockPlan, Fold};
use crate::process::inplace::Ownership;
use crate::process::load::{weights_from_state_dict, StateDict};
use crate::process::{center_embeddings, center_last, fold_final_norm, refactor};

/// One of TL's processing methods, as called on a state dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `fold_layer_norm(state_dict, fold_biases, center_weights)`.
    FoldLayerNorm { fold_biases: bool, center_weights: bool },
    CenterWritingWeights,
    CenterUnembed,
    FoldValueBiases,
    RefactorFactoredAttnMatrices,
}

/// `load_and_process_state_dict`'s switches (TL's keyword arguments).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlProcess {
    pub fold_ln: bool,
    pub center_writing_weights: bool,
    pub center_unembed: bool,
    pub fold_value_biases: bool,
    pub refactor_factored_attn_matrices: bool,
}

fn plan(cfg: &Config) -> BlockPlan {
    BlockPlan {
        fold: None,
        center_writing: false,
        fold_value_biases: false,
        hd: cfg.n_heads * cfg.d_head,
        groups: cfg.n_heads / cfg.kv_heads().max(1),
        d_head: cfg.d_head,
    }
}

fn missing(key: String) -> Error {
    Error::new(ErrorCode::MissingWeight, format!("folding the norms needs '{key}', which is in neither the state dict nor the model (TL: KeyError)"))
}

/// The norm weights `fold_layer_norm` reads, in the order TL reads them (its KeyError names the
/// first one absent).
fn require_norms(cfg: &Config, w: &ModelWeights, fold_biases: bool) -> Result<()> {
    for (l, b) in w.blocks.iter().enumerate() {
        let mut need = vec![("ln1", &b.ln1)];
        if b.mlp.is_some() {
            need.push(("ln2", &b.ln2));
        }
        // SoLU's `mlp.ln` (TL folds it for act_fn "solu*").
        let solu = cfg.act_fn.as_deref().is_some_and(|a| a.starts_with("solu"));
        let empty = NormWeights::default();
        if let (true, Some(m)) = (solu, &b.mlp) {
            need.push(("mlp.ln", m.ln.as_ref().unwrap_or(&empty)));
        }
        for (name, n) in need {
            if fold_biases && n.b.is_none() {
                return Err(missing(format!("blocks.{l}.{name}.b")));
            }
            if n.w.is_none() {
                return Err(missing(format!("blocks.{l}.{name}.w")));
            }
        }
    }
    if !cfg.final_rms && fold_biases && w.ln_final.b.is_none() {
        return Err(missing("ln_final.b".into()));
    }
    if w.ln_final.w.is_none() {
        return Err(missing("ln_final.w".into()));
    }
    Ok(())
}

fn each_block(w: &mut ModelWeights, p: &BlockPlan) -> Result<()> {
    par_each_mut(&mut w.blocks, |b| process_block(b, p, Ownership::Shared))
}

/// One of TL's methods, exactly as TL's (no skips: `center_writing_weights` centres an RMSNorm
/// model's writing weights too, as TL's method does when called directly).
pub fn apply_step(cfg: &Config, w: &mut ModelWeights, step: Step) -> Result<()> {
    match step {
        Step::FoldLayerNorm { fold_biases, center_weights } => {
            require_norms(cfg, w, fold_biases)?;
            // TL deletes a norm's bias only when it folds it.
            type Kept = (Option<Tensor>, Option<Tensor>, Option<Tensor>);
            let mlp_ln_b = |b: &crate::model::weights::BlockWeights| b.mlp.as_ref().and_then(|m| m.ln.as_ref()).and_then(|n| n.b.clone());
            let kept: Vec<Kept> = w.blocks.iter().map(|b| if fold_biases { (None, None, None) } else { (b.ln1.b.clone(), b.ln2.b.clone(), mlp_ln_b(b)) }).collect();
            let final_b = if fold_biases && !cfg.final_rms { None } else { w.ln_final.b.clone() };
            let fold = Fold { biases: fold_biases, center: center_weights };
            each_block(w, &BlockPlan { fold: Some(fold), ..plan(cfg) })?;
            for (b, (b1, b2, b3)) in w.blocks.iter_mut().zip(kept) {
                b.ln1.b = b1;
                b.ln2.b = b2;
                if let (Some(m), Some(b3)) = (&mut b.mlp, b3) {
                    m.ln = Some(NormWeights { w: None, b: Some(b3) });
                }
            }
            fold_final_norm(cfg, w, fold, false)?;
            w.ln_final.b = final_b;
        }
        Step::CenterWritingWeights => {
            each_block(w, &BlockPlan { center_writing: true, ..plan(cfg) })?;
            center_embeddings(cfg, w, Ownership::Shared)?;
        }
        Step::CenterUnembed => {
            w.w_u = center_last(&w.w_u)?;
            w.b_u = center_last(&w.b_u)?;
        }
        Step::FoldValueBiases => each_block(w, &BlockPlan { fold_value_biases: true, ..plan(cfg) })?,
        Step::RefactorFactoredAttnMatrices => refactor::refactor_factored_attn_matrices(cfg, w)?,
    }
    Ok(())
}

fn is_moe(cfg: &Config) -> bool {
    cfg.num_experts.is_some_and(|e| e > 1)
}

/// TL's `load_and_process_state_dict` once the dict is read: the requested steps in TL's order,
/// each skipped where TL skips it (its warnings): folding without LayerNorm/RMSNorm or with
/// experts; centring writing weights without LayerNorm or with a final RMSNorm.
pub fn load_and_process(cfg: &Config, w: &mut ModelWeights, p: TlProcess) -> Result<()> {
    let norm = cfg.normalization_type.as_deref();
    let layer_norm = matches!(norm, Some("LN") | Some("LNPre"));
    if p.fold_ln && !is_moe(cfg) {
        if layer_norm {
            apply_step(cfg, w, Step::FoldLayerNorm { fold_biases: true, center_weights: true })?;
        } else if matches!(norm, Some("RMS") | Some("RMSPre")) {
            apply_step(cfg, w, Step::FoldLayerNorm { fold_biases: false, center_weights: false })?;
        }
    }
    if p.center_writing_weights && layer_norm && !cfg.final_rms {
        apply_step(cfg, w, Step::CenterWritingWeights)?;
    }
    if p.center_unembed {
        apply_step(cfg, w, Step::CenterUnembed)?;
    }
    if p.fold_value_biases {
        apply_step(cfg, w, Step::FoldValueBiases)?;
    }
    if p.refactor_factored_attn_matrices {
        apply_step(cfg, w, Step::RefactorFactoredAttnMatrices)?;
    }
    Ok(())
}

/// `process_weights_`'s switch before folding: LN → LNPre, RMS → RMSPre (not with experts).
pub fn fold_config(cfg: &mut Config, fold_ln: bool) {
    if !fold_ln || is_moe(cfg) {
        return;
    }
    let next = match cfg.normalization_type.as_deref() {
        Some("LN") => "LNPre",
        Some("RMS") => "RMSPre",
        _ => return,
    };
    cfg.normalization_type = Some(next.into());
}

/// Drops norm weights the config's norm kind has no parameter for (TL ignores those keys).
fn keep_used_norms(cfg: &Config, w: &mut ModelWeights) -> Result<()> {
    let kind = NormKind::from_cfg(cfg.normalization_type.as_deref())?;
    let keep = |n: &mut NormWeights| {
        if !kind.has_weight() {
            n.w = None;
        }
        if !kind.has_bias() {
            n.b = None;
        }
    };
    for b in &mut w.blocks {
        keep(&mut b.ln1);
        keep(&mut b.ln2);
        // A layer-norm activation's `mlp.ln` has weights in LayerNorm models only.
        if let Some(m) = &mut b.mlp {
            if kind != NormKind::LN {
                m.ln = None;
            }
        }
    }
    keep(&mut w.ln_final);
    Ok(())
}

/// The model's state dict overlaid with `given` (TL's `fill_missing_keys`, from the other side).
fn merged(model: &HookedModel, given: &[(String, Tensor)]) -> Result<StateDict> {
    let mut sd: StateDict = state_dict(&model.arch, &model.weights)?.into_iter().collect();
    for (k, t) in given {
        sd.insert(k.clone(), t.clone());
    }
    Ok(sd)
}

/// TL's `load_and_process_state_dict(given, ...)` (and `process_weights_`, with the model's own
/// state dict) on a loaded model: a new model with the processed weights and TL's config
/// afterwards (folding turns LN / RMS into LNPre / RMSPre, as `process_weights_` does; TL's
/// `load_and_process_state_dict` on a model that still has LayerNorm modules would keep their
/// old weights beside the folded ones, which is not copied).
pub fn load_and_process_model(model: &HookedModel, given: &[(String, Tensor)], p: TlProcess) -> Result<HookedModel> {
    let mut cfg = model.cfg().clone();
    fold_config(&mut cfg, p.fold_ln);
    let sd = merged(model, given)?;
    let mut w = weights_from_state_dict(&cfg, &model.weights, &sd, model.dtype(), &model.device)?;
    load_and_process(&cfg, &mut w, p)?;
    keep_used_norms(&cfg, &mut w)?;
    HookedModel::new(cfg, w, model.device.clone())
}

/// One of TL's methods on a state dict (`model.fold_layer_norm(state_dict)`, ...): TL's resulting
/// dict. The given keys keep their order; a key the step deletes (a folded norm) is dropped; a
/// key the model does not know passes through unchanged. The model is not changed.
pub fn process_state_dict(model: &HookedModel, given: &[(String, Tensor)], step: Step) -> Result<Vec<(String, Tensor)>> {
    let cfg = model.cfg();
    let sd = merged(model, given)?;
    let mut w = weights_from_state_dict(cfg, &model.weights, &sd, model.dtype(), &model.device)?;
    // Emit every norm weight present, whatever the model's own norm kind.
    let mut arch = model.arch.clone();
    arch.norm = NormKind::LN;
    let before: HashSet<String> = state_dict(&arch, &w)?.into_iter().map(|(k, _)| k).collect();
    apply_step(cfg, &mut w, step)?;
    let after: std::collections::HashMap<String, Tensor> = state_dict(&arch, &w)?.into_iter().collect();
    let mut out = Vec::with_capacity(given.len());
    for (k, t) in given {
        match after.get(k) {
            Some(x) => out.push((k.clone(), x.clone())),
            None if !before.contains(k) => out.push((k.clone(), t.clone())),
            None => {}
        }
    }
    Ok(out)
}

impl Step {
    /// TL's method name (`fold_layer_norm`, ...), with `fold_layer_norm`'s two switches.
    pub fn from_name(name: &str, fold_biases: bool, center_weights: bool) -> Result<Step> {
        Ok(match name {
            "fold_layer_norm" => Step::FoldLayerNorm { fold_biases, center_weights },
            "center_writing_weights" => Step::CenterWritingWeights,
            "center_unembed" => Step::CenterUnembed,
            "fold_value_biases" => Step::FoldValueBiases,
            "refactor_factored_attn_matrices" => Step::RefactorFactoredAttnMatrices,
            other => return Err(Error::invalid(format!("unknown processing step '{other}'"))),
        })
    }
}
