//! Attention computed per head, for TL's hook flags: the inputs repeated along a head axis
//! (`use_split_qkv_input`, `use_attn_in`), projections that read one input per head
//! (`complex_attn_linear`), and the per-head outputs (`use_attn_result`). Shared by the decoder
//! (`model::attention`), the BERT encoder and T5.

use candle_core::{Tensor, D};

use crate::error::Result;
use crate::kernels::linear::linear;

/// TL's `repeat_along_head_dimension`: `[batch, pos, d_model]` → `[batch, pos, n_heads, d_model]`.
pub fn repeat_along_heads(x: &Tensor, n_heads: usize) -> Result<Tensor> {
    let (b, p, d) = x.dims3()?;
    Ok(x.unsqueeze(2)?.broadcast_as((b, p, n_heads, d))?.contiguous()?)
}

/// TL's `complex_attn_linear` over columns `start..start + heads·d_head` of a fused weight
/// `w: [d_model, ..]` (bias `b` over the same columns of the fused bias, if any):
/// `x: [batch, pos, heads_in, d_model]` → `[batch, pos, heads_in, d_head]`, head i reading its
/// own input with the weights of head `i * heads / heads_in` (K/V heads shared by groups of query
/// heads when the input has one stream per query head).
pub fn project_per_head(x: &Tensor, w: &Tensor, b: Option<&Tensor>, start: usize, heads: usize, dh: usize) -> Result<Tensor> {
    let (batch, p, hin, d) = x.dims4()?;
    let mut w3 = w.narrow(1, start, heads * dh)?.reshape((d, heads, dh))?.permute((1, 0, 2))?.contiguous()?;
    let mut bias = b.map(|b| b.narrow(0, start, heads * dh)?.reshape((heads, 1, dh))).transpose()?;
    if hin != heads {
        let ids: Vec<u32> = (0..hin).map(|i| (i * heads / hin) as u32).collect();
        let ids = Tensor::from_vec(ids, hin, x.device())?;
        w3 = w3.index_select(&ids, 0)?;
        bias = bias.map(|b| b.index_select(&ids, 0)).transpose()?;
    }
    let xs = x.permute((2, 0, 1, 3))?.contiguous()?.reshape((hin, batch * p, d))?;
    let y = linear(&xs, &w3, bias.as_ref())?; // [hin, batch·pos, dh]
    Ok(y.reshape((hin, batch, p, dh))?.permute((1, 2, 0, 3))?.contiguous()?)
}

/// TL's `hook_result` input: each head's output `z[.., h, :] @ W_O[h]`, `[batch, pos, n_heads,
/// d_model]`, from `z: [batch, pos, n_heads, d_head]` and `w_o: [n_heads·d_head, d_model]`.
pub fn head_results(z: &Tensor, w_o: &Tensor) -> Result<Tensor> {
    let (b, p, h, dh) = z.dims4()?;
    let d = w_o.dim(1)?;
    let zs = z.permute((2, 0, 1, 3))?.contiguous()?.reshape((h, b * p, dh))?;
    let wo = w_o.reshape((h, dh, d))?;
    Ok(linear(&zs, &wo, None)?.reshape((h, b, p, d))?.permute((1, 2, 0, 3))?.contiguous()?)
}

/// The attention output from the (hooked) per-head results: their sum over heads, plus `b_O`.
pub fn sum_heads(result: &Tensor, b_o: Option<&Tensor>) -> Result<Tensor> {
    let out = result.sum(D::Minus2)?;
    Ok(match b_o {
        Some(b) => out.broadcast_add(b)?,
        None => out,
    })
}
