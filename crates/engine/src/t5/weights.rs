//! T5's weights: the tensors a config implies (declared and shape-checked before any is read),
//! TL's `convert_t5_weights` into the compute layout, and TL's state dict back out of it.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;

/// Self- or cross-attention of one block. Q, K and V are fused `[d_model, 3 * n_heads * d_head]`
/// for self-attention; cross-attention keeps Q `[d_model, h * d_head]` apart from the fused K, V
/// `[d_model, 2 * h * d_head]` (they read the encoder output, computed once per generation).
#[derive(Clone)]
pub struct AttnWeights {
    pub w_q: Option<Tensor>,
    pub w_qkv: Tensor,
    pub w_o: Tensor,
}

#[derive(Clone)]
pub struct T5Block {
    pub ln1: Tensor,
    pub attn: AttnWeights,
    /// Decoder blocks: `ln2` and the cross-attention.
    pub cross: Option<(Tensor, AttnWeights)>,
    /// `ln2` of an encoder block, `ln3` of a decoder block.
    pub ln_mlp: Tensor,
    /// `[d_model, d_mlp]`, `[d_mlp, d_model]`
    pub w_in: Tensor,
    pub w_out: Tensor,
}

#[derive(Clone)]
pub struct T5Weights {
    /// `[d_vocab, d_model]`
    pub w_e: Tensor,
    /// `[d_model, d_vocab_out]`
    pub w_u: Tensor,
    /// `[num_buckets, n_heads]`: block 0's relative-position embeddings.
    pub encoder_rel: Tensor,
    pub decoder_rel: Tensor,
    pub encoder: Vec<T5Block>,
    pub decoder: Vec<T5Block>,
    pub encoder_final: Tensor,
    pub decoder_final: Tensor,
}

fn attn_prefix(decoder: bool, l: usize, cross: bool) -> String {
    let stack = if decoder { "decoder" } else { "encoder" };
    if cross {
        format!("{stack}.block.{l}.layer.1.EncDecAttention")
    } else {
        format!("{stack}.block.{l}.layer.0.SelfAttention")
    }
}

/// The tensors outside the blocks.
pub fn tensors(cfg: &Config) -> Vec<TensorSpec> {
    let (d, v, h) = (cfg.d_model, cfg.d_vocab, cfg.n_heads);
    let buckets = crate::t5::config::buckets(cfg).0;
    // No lm_head.weight: TL unembeds with the shared embedding, tied or not.
    vec![
        TensorSpec::new("shared.weight", &[v, d]),
        TensorSpec::new("encoder.final_layer_norm.weight", &[d]),
        TensorSpec::new("decoder.final_layer_norm.weight", &[d]),
        TensorSpec::new(rel_bias_name(false), &[buckets, h]),
        TensorSpec::new(rel_bias_name(true), &[buckets, h]),
    ]
}

/// The tensors of block `l` of the encoder or the decoder.
pub fn layer_tensors(cfg: &Config, decoder: bool, l: usize) -> Vec<TensorSpec> {
    let (d, hd, m) = (cfg.d_model, cfg.n_heads * cfg.d_head, cfg.d_mlp());
    let stack = if decoder { "decoder" } else { "encoder" };
    let mut specs = Vec::new();
    let mut attn = |cross: bool| {
        let p = attn_prefix(decoder, l, cross);
        for x in ["q", "k", "v"] {
            specs.push(TensorSpec::new(format!("{p}.{x}.weight"), &[hd, d]));
        }
        specs.push(TensorSpec::new(format!("{p}.o.weight"), &[d, hd]));
    };
    attn(false);
    if decoder {
        attn(true);
    }
    let mlp_layer = if decoder { 2 } else { 1 };
    for i in 0..=mlp_layer {
        specs.push(TensorSpec::new(format!("{stack}.block.{l}.layer.{i}.layer_norm.weight"), &[d]));
    }
    specs.push(TensorSpec::new(format!("{stack}.block.{l}.layer.{mlp_layer}.DenseReluDense.wi.weight"), &[m, d]));
    specs.push(TensorSpec::new(format!("{stack}.block.{l}.layer.{mlp_layer}.DenseReluDense.wo.weight"), &[d, m]));
    specs
}

/// Every group of specs, in the order they are checked.
pub fn all_specs(cfg: &Config) -> impl Iterator<Item = Vec<TensorSpec>> + '_ {
    let n = cfg.n_layers;
    std::iter::once(tensors(cfg))
        .chain((0..n).map(move |l| layer_tensors(cfg, false, l)))
        .chain((0..n).map(move |l| layer_tensors(cfg, true, l)))
}

fn attn_weights(c: &Checked, p: &str, cross: bool) -> Result<AttnWeights> {
    let q = c.get_t(&format!("{p}.q.weight"))?;
    let k = c.get_t(&format!("{p}.k.weight"))?;
    let v = c.get_t(&format!("{p}.v.weight"))?;
    let w_o = c.get_t(&format!("{p}.o.weight"))?;
    Ok(if cross {
        AttnWeights { w_q: Some(q), w_qkv: Tensor::cat(&[&k, &v], 1)?, w_o }
    } else {
        AttnWeights { w_q: None, w_qkv: Tensor::cat(&[&q, &k, &v], 1)?, w_o }
    })
}

fn block(c: &Checked, decoder: bool, l: usize) -> Result<T5Block> {
    let stack = if decoder { "decoder" } else { "encoder" };
    let ln = |i: usize| c.get(&format!("{stack}.block.{l}.layer.{i}.layer_norm.weight"));
    let mlp_layer = if decoder { 2 } else { 1 };
    let dense = format!("{stack}.block.{l}.layer.{mlp_layer}.DenseReluDense");
    Ok(T5Block {
        ln1: ln(0)?,
        attn: attn_weights(c, &attn_prefix(decoder, l, false), false)?,
        cross: if decoder { Some((ln(1)?, attn_weights(c, &attn_prefix(decoder, l, true), true)?)) } else { None },
        ln_mlp: ln(mlp_layer)?,
        w_in: c.get_t(&format!("{dense}.wi.weight"))?,
        w_out: c.get_t(&format!("{dense}.wo.weight"))?,
    })
}

/// The checkpoint name of the encoder's or decoder's relative position embeddings (block 0's).
pub fn rel_bias_name(decoder: bool) -> String {
    format!("{}.relative_attention_bias.weight", attn_prefix(decoder, 0, false))
}

/// TL's `convert_t5_weights`: `W_U` is the shared embedding transposed, also in an untied
/// checkpoint, whose `lm_head.weight` TL leaves out (HF unembeds with it); the decoder's blocks
/// are the first `n_layers` (TL leaves out more than `num_layers`).
/// `dtype`: the model's. TL's relative position embeddings stay float32 in a 16-bit model (its
/// `.to(dtype)` misses them), so the bias joins the float32 scores unrounded: they are read in
/// the scores' dtype.
pub fn convert(cfg: &Config, c: &Checked, dtype: candle_core::DType) -> Result<T5Weights> {
    let rel = |decoder: bool| c.get_as(&rel_bias_name(decoder), crate::model::attention::score_dtype(dtype));
    Ok(T5Weights {
        w_e: c.get("shared.weight")?,
        w_u: c.get_t("shared.weight")?,
        encoder_rel: rel(false)?,
        decoder_rel: rel(true)?,
        encoder: (0..cfg.n_layers).map(|l| block(c, false, l)).collect::<Result<_>>()?,
        decoder: (0..cfg.n_layers).map(|l| block(c, true, l)).collect::<Result<_>>()?,
        encoder_final: c.get("encoder.final_layer_norm.weight")?,
        decoder_final: c.get("decoder.final_layer_norm.weight")?,
    })
}

/// `[d_model, h * d_head]` → TL's `[h, d_model, d_head]`.
fn heads_in(w: &Tensor, h: usize) -> Result<Tensor> {
    let (d, hd) = w.dims2()?;
    Ok(w.reshape((d, h, hd / h))?.permute((1, 0, 2))?.contiguous()?)
}

fn push_attn(out: &mut Vec<(String, Tensor)>, p: &str, w: &AttnWeights, cfg: &Config) -> Result<()> {
    let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let hd = h * dh;
    let (q, kv_start) = match &w.w_q {
        Some(q) => (q.clone(), 0),
        None => (w.w_qkv.narrow(1, 0, hd)?, hd),
    };
    let dt = w.w_o.dtype();
    let dev = w.w_o.device();
    out.push((format!("{p}.W_Q"), heads_in(&q, h)?));
    out.push((format!("{p}.W_O"), w.w_o.reshape((h, dh, d))?.contiguous()?));
    out.push((format!("{p}.b_Q"), Tensor::zeros((h, dh), dt, dev)?));
    out.push((format!("{p}.b_O"), Tensor::zeros(d, dt, dev)?));
    out.push((format!("{p}.W_K"), heads_in(&w.w_qkv.narrow(1, kv_start, hd)?, h)?));
    out.push((format!("{p}.W_V"), heads_in(&w.w_qkv.narrow(1, kv_start + hd, hd)?, h)?));
    out.push((format!("{p}.b_K"), Tensor::zeros((h, dh), dt, dev)?));
    out.push((format!("{p}.b_V"), Tensor::zeros((h, dh), dt, dev)?));
    Ok(())
}

/// TL's attention buffers: the causal `mask` `[n_ctx, n_ctx]` and `IGNORE` (-inf).
fn push_buffers(out: &mut Vec<(String, Tensor)>, p: &str, n_ctx: usize, dt: DType, dev: &Device) -> Result<()> {
    let tril: Vec<u8> = (0..n_ctx * n_ctx).map(|i| u8::from(i % n_ctx <= i / n_ctx)).collect();
    out.push((format!("{p}.mask"), Tensor::from_vec(tril, (n_ctx, n_ctx), dev)?));
    out.push((format!("{p}.IGNORE"), Tensor::new(f32::NEG_INFINITY, dev)?.to_dtype(dt)?));
    Ok(())
}

/// TL's `state_dict()` of HookedEncoderDecoder: its keys in its order, its layouts (the zero
/// biases TL's modules hold but never load included; `mask` buffers as u8 0/1).
pub fn state_dict(cfg: &Config, w: &T5Weights) -> Result<Vec<(String, Tensor)>> {
    let mut out = vec![("embed.W_E".to_string(), w.w_e.clone())];
    let dt = w.w_e.dtype();
    let dev = w.w_e.device().clone();
    let (d, m) = (cfg.d_model, cfg.d_mlp());
    for (stack, blocks, rel) in [("encoder", &w.encoder, &w.encoder_rel), ("decoder", &w.decoder, &w.decoder_rel)] {
        for (l, b) in blocks.iter().enumerate() {
            let p = format!("{stack}.{l}");
            out.push((format!("{p}.ln1.w"), b.ln1.clone()));
            push_attn(&mut out, &format!("{p}.attn"), &b.attn, cfg)?;
            push_buffers(&mut out, &format!("{p}.attn"), cfg.n_ctx, dt, &dev)?;
            if l == 0 {
                out.push((format!("{p}.attn.rel_pos_bias.weight"), rel.clone()));
            }
            if let Some((ln2, cross)) = &b.cross {
                out.push((format!("{p}.ln2.w"), ln2.clone()));
                push_attn(&mut out, &format!("{p}.cross_attn"), cross, cfg)?;
                push_buffers(&mut out, &format!("{p}.cross_attn"), cfg.n_ctx, dt, &dev)?;
                out.push((format!("{p}.ln3.w"), b.ln_mlp.clone()));
            } else {
                out.push((format!("{p}.ln2.w"), b.ln_mlp.clone()));
            }
            out.push((format!("{p}.mlp.W_in"), b.w_in.clone()));
            out.push((format!("{p}.mlp.b_in"), Tensor::zeros(m, dt, &dev)?));
            out.push((format!("{p}.mlp.W_out"), b.w_out.clone()));
            out.push((format!("{p}.mlp.b_out"), Tensor::zeros(d, dt, &dev)?));
        }
        let final_ln = if stack == "encoder" { &w.encoder_final } else { &w.decoder_final };
        out.push((format!("{stack}_final_ln.w"), final_ln.clone()));
    }
    out.push(("unembed.W_U".into(), w.w_u.clone()));
    out.push(("unembed.b_U".into(), Tensor::zeros(cfg.d_vocab, dt, &dev)?));
    Ok(out)
}
