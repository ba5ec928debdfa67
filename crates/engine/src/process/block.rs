//! One block's processing, all steps while its weights are in cache: fold ln1/ln2 into the
//! matrices that read them, centre the writing weights, fold the value biases. f32 CPU weights
//! take the in-place kernels (`rows.rs`); other dtypes and devices the candle ops.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::kernels::split::par_rows_mut;
use crate::model::weights::{BlockWeights, NormWeights};
use crate::kernels::is_cpu_f32;
use crate::process::inplace::{update_f32, Ownership};
use crate::process::{center_last, fold_into, rows};

/// How a LayerNorm / RMSNorm is folded (RMS: neither).
#[derive(Debug, Clone, Copy)]
pub struct Fold {
    pub biases: bool,
    pub center: bool,
}

/// The steps every block takes.
#[derive(Debug, Clone, Copy)]
pub struct BlockPlan {
    pub fold: Option<Fold>,
    pub center_writing: bool,
    pub fold_value_biases: bool,
    /// `n_heads * d_head`: Q's columns in `w_qkv` (K's and V's follow).
    pub hd: usize,
    /// Query heads per K/V head (1 without grouped-query attention).
    pub groups: usize,
    pub d_head: usize,
}

fn vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.to_vec1()?)
}

/// `fold_into`, fused in place for f32 CPU weights.
pub fn fold_norm(norm: &NormWeights, w_read: &Tensor, b_read: &Tensor, fold: Fold, own: Ownership) -> Result<(Tensor, Tensor)> {
    if !(is_cpu_f32(w_read) && is_cpu_f32(b_read) && w_read.rank() == 2) {
        return fold_into(norm, w_read, b_read, fold.biases, fold.center);
    }
    let (d_in, n) = w_read.dims2()?;
    let scale = norm.w.as_ref().map(vec_f32).transpose()?;
    let bias = if fold.biases { norm.b.as_ref().map(vec_f32).transpose()? } else { None };
    let mut b = vec_f32(b_read)?;
    let bad = |v: &Option<Vec<f32>>| v.as_ref().is_some_and(|v| v.len() != d_in);
    if bad(&scale) || bad(&bias) || b.len() != n {
        return Err(Error::shape(format!("norm of size {d_in} folded into a [{d_in}, {n}] weight with {} biases", b.len())));
    }
    let w = update_f32(w_read, own, |w| {
        rows::fold_norm(w, n, scale.as_deref(), bias.as_deref(), &mut b, fold.center);
        Ok(())
    })?;
    match w {
        Some(w) => Ok((w, Tensor::from_vec(b, n, b_read.device())?)),
        None => fold_into(norm, w_read, b_read, fold.biases, fold.center),
    }
}

/// `center_last`, in place for f32 CPU weights; `parallel`: split the rows over two threads.
pub fn center_rows(t: &Tensor, own: Ownership, parallel: bool) -> Result<Tensor> {
    let n = t.dims().last().copied().unwrap_or(0);
    let done = update_f32(t, own, |w| {
        if parallel {
            par_rows_mut(w, n, |part, _| {
                rows::center_rows(part, n);
                Ok(())
            })
        } else {
            rows::center_rows(w, n);
            Ok(())
        }
    })?;
    match done {
        Some(c) => Ok(c),
        None => center_last(t),
    }
}

/// b_O += b_V @ W_O (summed over heads; a K/V head's bias counts once per query head that reads
/// it, as TL's repeat_interleave); b_V = 0.
fn fold_value_biases(blk: &mut BlockWeights, plan: &BlockPlan) -> Result<()> {
    let kvd = plan.hd / plan.groups;
    let v_start = plan.hd + kvd;
    let b_v = blk.b_qkv.narrow(0, v_start, kvd)?;
    let per_head = if plan.groups > 1 {
        let kv = kvd / plan.d_head;
        b_v.reshape((kv, 1, plan.d_head))?.broadcast_as((kv, plan.groups, plan.d_head))?.contiguous()?.flatten_all()?
    } else {
        b_v.clone()
    };
    let fold = per_head.unsqueeze(0)?.matmul(&blk.w_o)?.squeeze(0)?;
    blk.b_o = (&blk.b_o + fold)?;
    let qk = blk.b_qkv.narrow(0, 0, v_start)?;
    blk.b_qkv = Tensor::cat(&[&qk, &b_v.zeros_like()?], 0)?;
    Ok(())
}

pub fn process_block(blk: &mut BlockWeights, plan: &BlockPlan, own: Ownership) -> Result<()> {
    if let Some(fold) = plan.fold {
        (blk.w_qkv, blk.b_qkv) = fold_norm(&blk.ln1, &blk.w_qkv, &blk.b_qkv, fold, own)?;
        blk.ln1 = NormWeights::default();
        if let Some(mlp) = &mut blk.mlp {
            // TL scales the gate by ln2's weight only: no bias, no centring.
            if let (Some(gate), Some(w)) = (&mlp.w_gate, &blk.ln2.w) {
                mlp.w_gate = Some(gate.broadcast_mul(&w.to_dtype(gate.dtype())?.unsqueeze(1)?)?);
            }
            if mlp.router.is_some() && fold.biases {
                return Err(Error::unsupported("folding a LayerNorm into mixture-of-experts weights is not supported (TL's MoEs use RMSNorm)"));
            }
            // An MoE's router reads ln2 too (TL's MoEs are RMS: a scale, no bias to fold).
            if let (Some(r), Some(w)) = (&mlp.router, &blk.ln2.w) {
                mlp.router = Some(r.broadcast_mul(&w.to_dtype(r.dtype())?.unsqueeze(1)?)?);
            }
            (mlp.w_in, mlp.b_in) = fold_norm(&blk.ln2, &mlp.w_in, &mlp.b_in, fold, own)?;
            blk.ln2 = NormWeights::default();
            // A layer-norm activation's `mlp.ln` (SoLU) folds into W_out / b_out the same way,
            // centred over d_mlp; it then reads a LayerNormPre.
            if let Some(ln) = mlp.ln.take() {
                (mlp.w_out, mlp.b_out) = fold_norm(&ln, &mlp.w_out, &mlp.b_out, fold, own)?;
            }
        }
    }
    if plan.center_writing {
        blk.w_o = center_rows(&blk.w_o, own, false)?;
        blk.b_o = center_last(&blk.b_o)?;
        if let Some(mlp) = &mut blk.mlp {
            mlp.w_out = center_rows(&mlp.w_out, own, false)?;
            mlp.b_out = center_last(&mlp.b_out)?;
        }
    }
    if plan.fold_value_biases {
        fold_value_biases(blk, plan)?;
    }
    Ok(())
}
