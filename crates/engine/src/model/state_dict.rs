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
pub(crate) fn heads_in(w: &Tensor, h: usize, dh: usize) -> Result<Tensor> {
    let d = w.dim(0)?;
    Ok(w.contiguous()?.reshape((d, h, dh))?.permute((1, 0, 2))?.contiguous()?)
}

pub fn state_dict(arch: &Arch, w: &ModelWeights) -> Result<Vec<(String, Tensor)>> {
    let (cfg, norm) = (&arch.cfg, arch.norm);
    let (h, dh, d, kv) = (cfg.n_heads, cfg.d_head, cfg.d_model, cfg.kv_heads());
    let hd = h * dh;
    let gqa = if cfg.n_key_value_heads.is_some() { "_" } else { "" };
    let mut out = Vec::new();
    out.push(("embed.W_E".to_string(), w.w_e.clone()));
    if let Some(ln) = &w.embed_ln {
        push_norm(&mut out, "embed.ln", NormKind::LN, ln);
    }
    let dev = w.w_e.device();
    if let Some(p) = &w.w_pos {
        out.push(("pos_embed.W_pos".to_string(), p.clone()));
    } else if cfg.positional_embedding_type == "alibi" {
        // TL builds a `pos_embed` it never reads (left as torch.empty, then centred): zeros here.
        out.push(("pos_embed.W_pos".to_string(), Tensor::zeros((cfg.n_ctx, d), w.w_e.dtype(), dev)?));
    }
    let n_ctx = cfg.n_ctx;
    // TL's `mask` buffer: causal, banded for local-attention layers (triu(causal, 1 - window)).
    let band = |window: Option<usize>| -> Result<Tensor> {
        let m: Vec<u8> = (0..n_ctx).flat_map(|i| (0..n_ctx).map(move |j| (j <= i && window.is_none_or(|w| j + w > i)) as u8)).collect();
        Ok(Tensor::from_vec(m, (n_ctx, n_ctx), dev)?)
    };
    let mask = band(None)?;
    let local_mask = arch.local_window().map(|w| band(Some(w))).transpose()?;
    let ignore = Tensor::new(f32::NEG_INFINITY, dev)?.to_dtype(w.w_e.dtype())?;
    let rotary = arch.rotary.as_ref().map(|t| t.buffers(w.w_e.dtype(), dev)).transpose()?;
    for (l, b) in w.blocks.iter().enumerate() {
        let p = format!("blocks.{l}");
        // TL registers ln1, ln1_post, ln2, ln2_post in that order; the post norms are RMSNorms.
        push_norm(&mut out, &format!("{p}.ln1"), norm, &b.ln1);
        if let Some(pn) = &b.post_norms {
            push_norm(&mut out, &format!("{p}.ln1_post"), NormKind::RMS, &pn.attn);
        }
        if b.mlp.is_some() {
            push_norm(&mut out, &format!("{p}.ln2"), norm, &b.ln2);
            if let Some(pn) = &b.post_norms {
                push_norm(&mut out, &format!("{p}.ln2_post"), NormKind::RMS, &pn.mlp);
            }
        }
        // Q heads, then K and V heads (fewer with grouped-query attention: TL's `_W_K`, ...).
        let kvd = kv * dh;
        let cols = |start: usize, width: usize, heads: usize| heads_in(&b.w_qkv.narrow(1, start, width)?, heads, dh);
        let bias = |start: usize, heads: usize| -> Result<Tensor> { Ok(b.b_qkv.narrow(0, start, heads * dh)?.reshape((heads, dh))?) };
        out.push((format!("{p}.attn.W_Q"), cols(0, hd, h)?));
        out.push((format!("{p}.attn.W_O"), b.w_o.contiguous()?.reshape((h, dh, d))?));
        out.push((format!("{p}.attn.b_Q"), bias(0, h)?));
        out.push((format!("{p}.attn.b_O"), b.b_o.clone()));
        out.push((format!("{p}.attn.{gqa}W_K"), cols(hd, kvd, kv)?));
        out.push((format!("{p}.attn.{gqa}W_V"), cols(hd + kvd, kvd, kv)?));
        out.push((format!("{p}.attn.{gqa}b_K"), bias(hd, kv)?));
        out.push((format!("{p}.attn.{gqa}b_V"), bias(hd + kvd, kv)?));
        let layer_mask = match &local_mask {
            Some(m) if arch.is_local(l) => m,
            _ => &mask,
        };
        out.push((format!("{p}.attn.mask"), layer_mask.clone()));
        out.push((format!("{p}.attn.IGNORE"), ignore.clone()));
        if let Some((sin, cos)) = &rotary {
            out.push((format!("{p}.attn.rotary_sin"), sin.clone()));
            out.push((format!("{p}.attn.rotary_cos"), cos.clone()));
        }
        // The attention's submodules come after its own parameters and buffers.
        if let Some(qk) = &b.qk_norm {
            out.push((format!("{p}.attn.q_norm.w"), qk.q.clone()));
            out.push((format!("{p}.attn.k_norm.w"), qk.k.clone()));
        }
        if let (Some(m), Some(router)) = (&b.mlp, b.mlp.as_ref().and_then(|m| m.router.as_ref())) {
            // TL's MoE: nn.Linear experts (W_in, W_out, W_gate, `[out, in]`), then the router.
            let lin = |t: Tensor| -> Result<Tensor> { Ok(t.t()?.contiguous()?) };
            for e in 0..router.dim(1)? {
                let x = format!("{p}.mlp.experts.{e}");
                out.push((format!("{x}.W_in.weight"), lin(m.w_in.get(e)?)?));
                out.push((format!("{x}.W_out.weight"), lin(m.w_out.get(e)?)?));
                if let Some(g) = &m.w_gate {
                    out.push((format!("{x}.W_gate.weight"), lin(g.get(e)?)?));
                }
            }
            out.push((format!("{p}.mlp.W_gate.weight"), lin(router.clone())?));
        } else if let Some(m) = &b.mlp {
            out.push((format!("{p}.mlp.W_in"), m.w_in.clone()));
            match &m.w_gate {
                // TL's GatedMLP registers W_in, W_out, W_gate, b_in, b_out.
                Some(g) => {
                    out.push((format!("{p}.mlp.W_out"), m.w_out.clone()));
                    out.push((format!("{p}.mlp.W_gate"), g.clone()));
                    out.push((format!("{p}.mlp.b_in"), m.b_in.clone()));
                }
                None => {
                    out.push((format!("{p}.mlp.b_in"), m.b_in.clone()));
                    out.push((format!("{p}.mlp.W_out"), m.w_out.clone()));
                }
            }
            out.push((format!("{p}.mlp.b_out"), m.b_out.clone()));
            if let Some(ln) = &m.ln {
                push_norm(&mut out, &format!("{p}.mlp.ln"), NormKind::LN, ln);
            }
        }
    }
    push_norm(&mut out, "ln_final", norm, &w.ln_final);
    out.push(("unembed.W_U".to_string(), w.w_u.contiguous()?));
    out.push(("unembed.b_U".to_string(), w.b_u.clone()));
    Ok(out)
}
