//! TL's `refactor_factored_attn_matrices`: each head's QK and OV circuits re-factored through
//! their SVDs, with TL's algorithm step for step:
//! - QK: the biases become a row of the input side (`W_Q_eff = [W_Q; b_Q]`, `[d_model + 1,
//!   d_head]`, and the same for K); `FactoredMatrix(W_Q_eff, W_K_effᵀ).make_even()` gives
//!   `W_Q_eff = U √S`, `W_K_eff = Vh √S`, split back into weights and biases.
//! - OV: `b_O += Σ_heads b_V @ W_O`, `b_V = 0`; then `W_V = U S`, `W_O = Vhᵀ` from
//!   `FactoredMatrix(W_V, W_O).svd()`.
//!
//! `FactoredMatrix.svd` is TL's: the SVDs of both factors, then of the small middle matrix
//! `Sa Vaᵀ Ub Sb`. The decompositions run in f64 (`tensor/linalg.rs`, faer); singular vectors
//! are unique only up to a sign per singular pair (torch's LAPACK picks its own), which leaves
//! the circuits and the logits unchanged.

use candle_core::{DType, Device, Tensor, D};

use crate::error::{Error, Result};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, ModelWeights};
use crate::process::load::{columns_to_heads, heads_to_columns};
use crate::tensor::linalg;

/// TL's `FactoredMatrix(a, b).svd()`: `(U [.., l, m], S [.., m], Vh [.., r, m])`, where `Vh`
/// holds V (TL's naming) and `U diag(S) Vhᵀ = a @ b`.
pub fn factored_svd(a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let sa = linalg::svd(a)?;
    let sb = linalg::svd(b)?;
    // Sa[..., :, None] * Vaᵀ @ Ub * Sb[..., None, :], left to right as Python evaluates it.
    let va_t = sa.v.transpose(D::Minus2, D::Minus1)?.contiguous()?;
    let middle = sa.s.unsqueeze(D::Minus1)?.broadcast_mul(&va_t)?.matmul(&sb.u)?.broadcast_mul(&sb.s.unsqueeze(D::Minus2)?)?;
    let sm = linalg::svd(&middle)?;
    Ok((sa.u.matmul(&sm.u)?, sm.s, sb.v.matmul(&sm.v)?))
}

fn f64_cpu(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.contiguous()?)
}

fn refactor_block(blk: &mut BlockWeights, h: usize, dh: usize, d: usize) -> Result<()> {
    let (dtype, dev) = (blk.w_qkv.dtype(), blk.w_qkv.device().clone());
    let hd = h * dh;
    let w_qkv = f64_cpu(&blk.w_qkv)?;
    let b_qkv = f64_cpu(&blk.b_qkv)?;
    let heads = |i: usize| columns_to_heads(&w_qkv, i * hd, h, dh);
    let bias = |i: usize| -> Result<Tensor> { Ok(b_qkv.narrow(0, i * hd, hd)?.reshape((h, dh))?) };
    let (w_q, w_k, w_v) = (heads(0)?, heads(1)?, heads(2)?);
    let (b_q, b_k, b_v) = (bias(0)?, bias(1)?, bias(2)?);
    let w_o = f64_cpu(&blk.w_o)?.reshape((h, dh, d))?;
    let b_o = f64_cpu(&blk.b_o)?;

    // QK: [h, d_model + 1, d_head] with the bias as the last input row.
    let q_eff = Tensor::cat(&[&w_q, &b_q.unsqueeze(1)?], 1)?;
    let k_eff = Tensor::cat(&[&w_k, &b_k.unsqueeze(1)?], 1)?;
    let (u, s, vh) = factored_svd(&q_eff, &k_eff.transpose(1, 2)?.contiguous()?)?;
    let root = s.sqrt()?.unsqueeze(1)?; // [h, 1, d_head]
    let q_even = u.broadcast_mul(&root)?;
    let k_even = vh.broadcast_mul(&root)?;
    let split = |t: &Tensor| -> Result<(Tensor, Tensor)> { Ok((t.narrow(1, 0, d)?, t.narrow(1, d, 1)?.squeeze(1)?)) };
    let (w_q, b_q) = split(&q_even)?;
    let (w_k, b_k) = split(&k_even)?;

    // OV: fold b_V into b_O, then W_V = U S, W_O = Vhᵀ.
    let b_o = (b_o + b_v.unsqueeze(2)?.broadcast_mul(&w_o)?.sum(1)?.sum(0)?)?;
    let (u, s, vh) = factored_svd(&w_v, &w_o)?;
    let w_v = u.broadcast_mul(&s.unsqueeze(1)?)?;
    let w_o = vh.transpose(1, 2)?.contiguous()?;

    let back = |t: Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(&dev)?) };
    let cols = Tensor::cat(&[heads_to_columns(&w_q.contiguous()?)?, heads_to_columns(&w_k.contiguous()?)?, heads_to_columns(&w_v)?], 1)?;
    blk.w_qkv = back(cols)?;
    blk.b_qkv = back(Tensor::cat(&[b_q.flatten_all()?, b_k.flatten_all()?, b_v.zeros_like()?.flatten_all()?], 0)?)?;
    blk.w_o = back(w_o.reshape((hd, d))?)?;
    blk.b_o = back(b_o)?;
    Ok(())
}

/// TL's `refactor_factored_attn_matrices` on every layer.
pub fn refactor_factored_attn_matrices(cfg: &Config, w: &mut ModelWeights) -> Result<()> {
    if cfg.positional_embedding_type == "rotary" {
        return Err(Error::invalid(
            "You can't refactor the QK circuit when using rotary embeddings (as the QK matrix depends on the position of the query and key)",
        ));
    }
    if cfg.n_key_value_heads.is_some() {
        return Err(Error::unsupported(
            "refactor_factored_attn_matrices reads blocks.{l}.attn.W_K, which grouped-query attention models do not have (TL raises a KeyError)",
        ));
    }
    for blk in &mut w.blocks {
        refactor_block(blk, cfg.n_heads, cfg.d_head, cfg.d_model)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    #[test]
    fn factored_svd_reconstructs_the_product() {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f64, 1.0, (2, 7, 3), &dev).unwrap();
        let b = Tensor::randn(0f64, 1.0, (2, 3, 5), &dev).unwrap();
        let (u, s, vh) = factored_svd(&a, &b).unwrap();
        assert_eq!(u.dims(), &[2, 7, 3]);
        assert_eq!(vh.dims(), &[2, 5, 3]);
        let rebuilt = u.broadcast_mul(&s.unsqueeze(1).unwrap()).unwrap().matmul(&vh.transpose(1, 2).unwrap().contiguous().unwrap()).unwrap();
        assert!(max_diff(&rebuilt, &a.matmul(&b).unwrap()) < 1e-10);
    }
}
