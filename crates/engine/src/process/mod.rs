//! TL's weight processing (`load_and_process_state_dict`), on the compute layout.
//! Each step is the same arithmetic as TL's, written for fused/2-D weights. Blocks are
//! processed one at a time with all their steps (`block.rs`), two blocks at once; f32 CPU
//! weights are written in place when freshly loaded (`inplace.rs`). On a loaded model, TL's
//! `process_weights_`, `load_and_process_state_dict` and single steps are `steps.rs` (reading
//! TL state dicts back with `load.rs`; `refactor.rs` is `refactor_factored_attn_matrices`).

mod block;
mod inplace;
pub mod load;
pub mod refactor;
mod rows;
pub mod steps;
mod unembed;

use candle_core::{Tensor, D};

use crate::error::Result;
use crate::kernels::split::par_each_mut;
use crate::model::config::Config;
use crate::model::weights::{ModelWeights, NormWeights};
use block::{center_rows, BlockPlan, Fold};
pub use inplace::Ownership;
use inplace::same_storage;

#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions {
    pub fold_ln: bool,
    pub center_writing_weights: bool,
    pub center_unembed: bool,
    pub fold_value_biases: bool,
}

impl ProcessOptions {
    pub const NONE: ProcessOptions =
        ProcessOptions { fold_ln: false, center_writing_weights: false, center_unembed: false, fold_value_biases: false };
    /// Every step on: TL's `from_pretrained` defaults.
    pub const ALL: ProcessOptions =
        ProcessOptions { fold_ln: true, center_writing_weights: true, center_unembed: true, fold_value_biases: true };
}

/// Folds a norm's `w`/`b` into a matrix that reads its output: `w_read: [d_in, n]`,
/// `b_read: [n]`. Returns the new pair; with `center`, columns are made mean-zero over `d_in`.
fn fold_into(norm: &NormWeights, w_read: &Tensor, b_read: &Tensor, fold_bias: bool, center: bool) -> Result<(Tensor, Tensor)> {
    let mut b = b_read.clone();
    if let (true, Some(nb)) = (fold_bias, &norm.b) {
        // b += sum_d W[d, :] * ln.b[d], as one matrix-vector product
        b = (b + nb.unsqueeze(0)?.matmul(w_read)?.squeeze(0)?)?;
    }
    let mut w = match &norm.w {
        Some(nw) => w_read.broadcast_mul(&nw.unsqueeze(1)?)?,
        None => w_read.clone(),
    };
    if center {
        // Column means over d_in, as a matmul (a strided reduction over dim 0 is slow in candle).
        let d_in = w.dim(0)?;
        let avg = Tensor::full(1.0 / d_in as f64, (1, d_in), w.device())?.to_dtype(w.dtype())?;
        w = w.broadcast_sub(&avg.matmul(&w)?)?;
    }
    Ok((w, b))
}

/// Folds the final norm into W_U / b_U. With `center_unembed`, W_U's rows are centred in the
/// same pass when the fused kernel applies; returns whether they were.
fn fold_final_norm(cfg: &Config, w: &mut ModelWeights, fold: Fold, center_unembed: bool) -> Result<bool> {
    let fold_final_bias = fold.biases && !cfg.final_rms;
    let mut rows_centered = false;
    match unembed::fold_center_unembed(&w.w_u, w.ln_final.w.as_ref(), fold.center, center_unembed)? {
        Some(wu) => {
            if let (true, Some(nb)) = (fold_final_bias, &w.ln_final.b) {
                w.b_u = (&w.b_u + nb.unsqueeze(0)?.matmul(&w.w_u)?.squeeze(0)?)?;
            }
            w.w_u = wu;
            rows_centered = center_unembed;
        }
        None => {
            let (wu, bu) = fold_into(&w.ln_final, &w.w_u, &w.b_u, fold_final_bias, fold.center)?;
            w.w_u = wu;
            w.b_u = bu;
        }
    }
    w.ln_final = NormWeights::default();
    Ok(rows_centered)
}

fn center_last(t: &Tensor) -> Result<Tensor> {
    Ok(t.broadcast_sub(&t.mean_keepdim(D::Minus1)?)?)
}

/// Make the embeddings mean-zero over d_model (the blocks' writing weights are `block.rs`').
fn center_embeddings(cfg: &Config, w: &mut ModelWeights, own: Ownership) -> Result<()> {
    // An un-folded tied W_U is still a view of W_E: W_E then gets its own copy.
    let own_e = if same_storage(&w.w_e, &w.w_u) { Ownership::Shared } else { own };
    w.w_e = center_rows(&w.w_e, own_e, true)?;
    if cfg.positional_embedding_type != "rotary" {
        if let Some(p) = &w.w_pos {
            w.w_pos = Some(center_rows(p, own, true)?);
        }
    }
    Ok(())
}

/// Applies the requested steps with TL's results, on weights that may be shared with the
/// caller (each written weight is a new tensor). Shortformer and soft-capped models skip the
/// steps TL skips for them.
pub fn process(cfg: &mut Config, w: &mut ModelWeights, opts: ProcessOptions) -> Result<()> {
    process_owned(cfg, w, opts, Ownership::Shared)
}

/// `process`, writing f32 CPU weights in place when `own` is `Fresh`: for weights just loaded,
/// whose storage nothing else holds (a tied W_U viewing W_E aside).
pub fn process_owned(cfg: &mut Config, w: &mut ModelWeights, opts: ProcessOptions, own: Ownership) -> Result<()> {
    let mut opts = opts;
    if cfg.positional_embedding_type == "shortformer" {
        opts.fold_ln = false;
        opts.center_unembed = false;
        opts.center_writing_weights = false;
    }
    if cfg.output_logits_soft_cap > 0.0 {
        opts.center_unembed = false;
    }
    // TL 2.16.1 folds nothing into an MoE (and its RMSPre model then drops the norm weights):
    // here ln2 folds into the router and every expert (`block.rs`), so the processed model
    // predicts what the unprocessed one does.
    let layer_norm = match cfg.normalization_type.as_deref() {
        Some("LN") | Some("LNPre") => Some(true),
        Some("RMS") | Some("RMSPre") => Some(false),
        _ => None,
    };
    // LayerNorm: fold the biases and centre; RMSNorm: neither.
    let fold = if opts.fold_ln { layer_norm.map(|ln| Fold { biases: ln, center: ln }) } else { None };
    let center_writing = opts.center_writing_weights && layer_norm == Some(true) && !cfg.final_rms;
    let plan = BlockPlan {
        fold,
        center_writing,
        fold_value_biases: opts.fold_value_biases,
        hd: cfg.n_heads * cfg.d_head,
        groups: cfg.n_heads / cfg.kv_heads().max(1),
        d_head: cfg.d_head,
    };
    par_each_mut(&mut w.blocks, |blk| block::process_block(blk, &plan, own))?;
    let mut w_u_centered = false;
    if let Some(f) = fold {
        w_u_centered = fold_final_norm(cfg, w, f, opts.center_unembed)?;
        cfg.normalization_type = Some(if f.biases { "LNPre" } else { "RMSPre" }.into());
    }
    if center_writing {
        center_embeddings(cfg, w, own)?;
    }
    if opts.center_unembed {
        if !w_u_centered {
            w.w_u = center_last(&w.w_u)?;
        }
        w.b_u = center_last(&w.b_u)?;
    }
    Ok(())
}
