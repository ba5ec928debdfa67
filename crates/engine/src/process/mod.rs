//! TL's weight processing (`load_and_process_state_dict`), on the compute layout.
//! Each step is the same arithmetic as TL's, written for fused/2-D weights.

mod unembed;

use candle_core::{Tensor, D};

use crate::error::Result;
use crate::model::config::Config;
use crate::model::weights::{ModelWeights, NormWeights};

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

/// Fold LayerNorm (or RMSNorm: no bias folding, no centering) into the next weights.
/// The config's normalization type becomes the `Pre` variant. With `center_unembed`, W_U's
/// rows are centred in the same pass when the fused kernel applies; returns whether they were.
pub fn fold_layer_norm(cfg: &mut Config, w: &mut ModelWeights, center_unembed: bool) -> Result<bool> {
    let (fold_biases, center) = match cfg.normalization_type.as_deref() {
        Some("LN") | Some("LNPre") => (true, true),
        Some("RMS") | Some("RMSPre") => (false, false),
        _ => return Ok(false),
    };
    for blk in &mut w.blocks {
        let (wq, bq) = fold_into(&blk.ln1, &blk.w_qkv, &blk.b_qkv, fold_biases, center)?;
        blk.w_qkv = wq;
        blk.b_qkv = bq;
        blk.ln1 = NormWeights::default();
        if let Some(mlp) = &mut blk.mlp {
            let (wi, bi) = fold_into(&blk.ln2, &mlp.w_in, &mlp.b_in, fold_biases, center)?;
            mlp.w_in = wi;
            mlp.b_in = bi;
            blk.ln2 = NormWeights::default();
        }
    }
    let fold_final_bias = fold_biases && !cfg.final_rms;
    let mut rows_centered = false;
    match unembed::fold_center_unembed(&w.w_u, w.ln_final.w.as_ref(), center, center_unembed)? {
        Some(wu) => {
            if let (true, Some(nb)) = (fold_final_bias, &w.ln_final.b) {
                w.b_u = (&w.b_u + nb.unsqueeze(0)?.matmul(&w.w_u)?.squeeze(0)?)?;
            }
            w.w_u = wu;
            rows_centered = center_unembed;
        }
        None => {
            let (wu, bu) = fold_into(&w.ln_final, &w.w_u, &w.b_u, fold_final_bias, center)?;
            w.w_u = wu;
            w.b_u = bu;
        }
    }
    w.ln_final = NormWeights::default();
    cfg.normalization_type = Some(if fold_biases { "LNPre" } else { "RMSPre" }.into());
    Ok(rows_centered)
}

fn center_last(t: &Tensor) -> Result<Tensor> {
    Ok(t.broadcast_sub(&t.mean_keepdim(D::Minus1)?)?)
}

/// Make every weight that writes to the residual stream mean-zero over d_model.
pub fn center_writing_weights(cfg: &Config, w: &mut ModelWeights) -> Result<()> {
    w.w_e = center_last(&w.w_e)?;
    if cfg.positional_embedding_type != "rotary" {
        if let Some(p) = &w.w_pos {
            w.w_pos = Some(center_last(p)?);
        }
    }
    for blk in &mut w.blocks {
        blk.w_o = center_last(&blk.w_o)?;
        blk.b_o = center_last(&blk.b_o)?;
        if let Some(mlp) = &mut blk.mlp {
            mlp.w_out = center_last(&mlp.w_out)?;
            mlp.b_out = center_last(&mlp.b_out)?;
        }
    }
    Ok(())
}

/// `w_u_done`: W_U's rows were already centred (by the fused fold); only b_U is left.
pub fn center_unembed(w: &mut ModelWeights, w_u_done: bool) -> Result<()> {
    if !w_u_done {
        w.w_u = center_last(&w.w_u)?;
    }
    w.b_u = center_last(&w.b_u)?;
    Ok(())
}

/// b_O += sum_h b_V[h] @ W_O[h]; b_V = 0.
pub fn fold_value_biases(cfg: &Config, w: &mut ModelWeights) -> Result<()> {
    let hd = cfg.n_heads * cfg.d_head;
    for blk in &mut w.blocks {
        let b_v = blk.b_qkv.narrow(0, 2 * hd, hd)?;
        let fold = b_v.unsqueeze(0)?.matmul(&blk.w_o)?.squeeze(0)?;
        blk.b_o = (&blk.b_o + fold)?;
        let qk = blk.b_qkv.narrow(0, 0, 2 * hd)?;
        blk.b_qkv = Tensor::cat(&[&qk, &b_v.zeros_like()?], 0)?;
    }
    Ok(())
}

/// Applies the requested steps in TL's order. Shortformer and soft-capped models skip the
/// steps TL skips for them.
pub fn process(cfg: &mut Config, w: &mut ModelWeights, opts: ProcessOptions) -> Result<()> {
    let mut opts = opts;
    if cfg.positional_embedding_type == "shortformer" {
        opts.fold_ln = false;
        opts.center_unembed = false;
        opts.center_writing_weights = false;
    }
    if cfg.output_logits_soft_cap > 0.0 {
        opts.center_unembed = false;
    }
    if opts.fold_ln && cfg.num_experts.map(|e| e > 1).unwrap_or(false) {
        opts.fold_ln = false;
    }
    let mut w_u_centered = false;
    if opts.fold_ln {
        w_u_centered = fold_layer_norm(cfg, w, opts.center_unembed)?;
    }
    if opts.center_writing_weights && matches!(cfg.normalization_type.as_deref(), Some("LN") | Some("LNPre")) && !cfg.final_rms {
        center_writing_weights(cfg, w)?;
    }
    if opts.center_unembed {
        center_unembed(w, w_u_centered)?;
    }
    if opts.fold_value_biases {
        fold_value_biases(cfg, w)?;
    }
    Ok(())
}
