//! TL's state dict (keys, order and layouts of `HookedTransformer.state_dict()`), derived
//! from the compute layout on demand.

use candle_core::Tensor;

use crate::error::Result;
use crate::model::norm::NormKind;
use crate::model::transformer::Arch;
use crate::model::weights::{ModelWeights, NormWeights};

fn push_norm(out: &mut Vec<(String, Tensor)>, prefix: &str, kind: NormKind, n: &NormWeights) {
    if kind.has_weight() {
        if let Some(w) = &n.w {
            out.push((format!("{prefix}.w"), w.clone()));
        }
    }
    if kind.has_bias() {
        if let Some(b) = &n.b {
            out.push((format!("{prefix}.b"), b.clone()));
        }
    }
}

/// `[d_model, n_heads * d_head]` columns → `[n_heads, d_model, d_head]`.
fn heads_in(w: &Tensor, h: usize, dh: usize) -> Result<Tensor> {
    let d = w.dim(0)?;
    Ok(w.contiguous()?.reshape((d, h, dh))?.permute((1, 0, 2))?.contiguous()?)
}

pub fn state_dict(arch: &Arch, w: &ModelWeights) -> Result<Vec<(String, Tensor)>> {
    let (cfg, norm) = (&arch.cfg, arch.norm);
    let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let hd = h * dh;
    let mut out = Vec::new();
    out.push(("embed.W_E".to_string(), w.w_e.clone()));
    if let Some(p) = &w.w_pos {
        out.push(("pos_embed.W_pos".to_string(), p.clone()));
    }
    let dev = w.w_e.device();
    let n_ctx = cfg.n_ctx;
    let mask: Vec<u8> = (0..n_ctx).flat_map(|i| (0..n_ctx).map(move |j| (j <= i) as u8)).collect();
    let mask = Tensor::from_vec(mask, (n_ctx, n_ctx), dev)?;
    let ignore = Tensor::new(f32::NEG_INFINITY, dev)?.to_dtype(w.w_e.dtype())?;
    let rotary = arch.rotary.as_ref().map(|t| t.buffers(w.w_e.dtype(), dev)).transpose()?;
    for (l, b) in w.blocks.iter().enumerate() {
        let p = format!("blocks.{l}");
        push_norm(&mut out, &format!("{p}.ln1"), norm, &b.ln1);
        if b.mlp.is_some() {
            push_norm(&mut out, &format!("{p}.ln2"), norm, &b.ln2);
        }
        let wq = b.w_qkv.narrow(1, 0, hd)?;
        let wk = b.w_qkv.narrow(1, hd, hd)?;
        let wv = b.w_qkv.narrow(1, 2 * hd, hd)?;
        let bias = |i: usize| -> Result<Tensor> { Ok(b.b_qkv.narrow(0, i * hd, hd)?.reshape((h, dh))?) };
        out.push((format!("{p}.attn.W_Q"), heads_in(&wq, h, dh)?));
        out.push((format!("{p}.attn.W_O"), b.w_o.contiguous()?.reshape((h, dh, d))?));
        out.push((format!("{p}.attn.b_Q"), bias(0)?));
        out.push((format!("{p}.attn.b_O"), b.b_o.clone()));
        out.push((format!("{p}.attn.W_K"), heads_in(&wk, h, dh)?));
        out.push((format!("{p}.attn.W_V"), heads_in(&wv, h, dh)?));
        out.push((format!("{p}.attn.b_K"), bias(1)?));
        out.push((format!("{p}.attn.b_V"), bias(2)?));
        out.push((format!("{p}.attn.mask"), mask.clone()));
        out.push((format!("{p}.attn.IGNORE"), ignore.clone()));
        if let Some((sin, cos)) = &rotary {
            out.push((format!("{p}.attn.rotary_sin"), sin.clone()));
            out.push((format!("{p}.attn.rotary_cos"), cos.clone()));
        }
        if let Some(m) = &b.mlp {
            out.push((format!("{p}.mlp.W_in"), m.w_in.clone()));
            out.push((format!("{p}.mlp.b_in"), m.b_in.clone()));
            out.push((format!("{p}.mlp.W_out"), m.w_out.clone()));
            out.push((format!("{p}.mlp.b_out"), m.b_out.clone()));
        }
    }
    push_norm(&mut out, "ln_final", norm, &w.ln_final);
    out.push(("unembed.W_U".to_string(), w.w_u.contiguous()?));
    out.push(("unembed.b_U".to_string(), w.b_u.clone()));
    Ok(out)
}
