//! TL's `HookedEncoder.state_dict()`: keys, order and layouts, from the compute layout.

use candle_core::Tensor;

use crate::bert::HookedEncoder;
use crate::error::Result;
use crate::model::state_dict::heads_in;
use crate::model::weights::NormWeights;

fn push_ln(out: &mut Vec<(String, Tensor)>, prefix: &str, n: &NormWeights) {
    if let Some(w) = &n.w {
        out.push((format!("{prefix}.w"), w.clone()));
    }
    if let Some(b) = &n.b {
        out.push((format!("{prefix}.b"), b.clone()));
    }
}

/// Module order: embed, blocks, mlm_head, unembed, nsp_head, pooler. A head the checkpoint
/// lacks has no keys. Each attention carries TL's `mask` (causal, as TL registers it for every
/// `Attention`, unused by the bidirectional encoder) and `IGNORE` buffers.
pub fn state_dict(m: &HookedEncoder) -> Result<Vec<(String, Tensor)>> {
    let (cfg, w) = (&m.cfg, &m.weights);
    let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let hd = h * dh;
    let dev = w.w_e.device();
    let mut out = vec![
        ("embed.embed.W_E".to_string(), w.w_e.clone()),
        ("embed.pos_embed.W_pos".to_string(), w.w_pos.clone()),
        ("embed.token_type_embed.W_token_type".to_string(), w.w_token_type.clone()),
    ];
    push_ln(&mut out, "embed.ln", &w.embed_ln);
    let n = cfg.n_ctx;
    let causal: Vec<u8> = (0..n).flat_map(|i| (0..n).map(move |j| (j <= i) as u8)).collect();
    let mask = Tensor::from_vec(causal, (n, n), dev)?;
    let ignore = Tensor::new(f32::NEG_INFINITY, dev)?.to_dtype(w.w_e.dtype())?;
    for (l, b) in w.blocks.iter().enumerate() {
        let p = format!("blocks.{l}");
        let cols = |i: usize| heads_in(&b.w_qkv.narrow(1, i * hd, hd)?, h, dh);
        let bias = |i: usize| -> Result<Tensor> { Ok(b.b_qkv.narrow(0, i * hd, hd)?.reshape((h, dh))?) };
        out.push((format!("{p}.attn.W_Q"), cols(0)?));
        out.push((format!("{p}.attn.W_O"), b.w_o.contiguous()?.reshape((h, dh, d))?));
        out.push((format!("{p}.attn.b_Q"), bias(0)?));
        out.push((format!("{p}.attn.b_O"), b.b_o.clone()));
        out.push((format!("{p}.attn.W_K"), cols(1)?));
        out.push((format!("{p}.attn.W_V"), cols(2)?));
        out.push((format!("{p}.attn.b_K"), bias(1)?));
        out.push((format!("{p}.attn.b_V"), bias(2)?));
        out.push((format!("{p}.attn.mask"), mask.clone()));
        out.push((format!("{p}.attn.IGNORE"), ignore.clone()));
        push_ln(&mut out, &format!("{p}.ln1"), &b.ln1);
        out.push((format!("{p}.mlp.W_in"), b.w_in.clone()));
        out.push((format!("{p}.mlp.b_in"), b.b_in.clone()));
        out.push((format!("{p}.mlp.W_out"), b.w_out.clone()));
        out.push((format!("{p}.mlp.b_out"), b.b_out.clone()));
        push_ln(&mut out, &format!("{p}.ln2"), &b.ln2);
    }
    if let Some(mlm) = &w.mlm {
        out.push(("mlm_head.W".into(), mlm.w.clone()));
        out.push(("mlm_head.b".into(), mlm.b.clone()));
        push_ln(&mut out, "mlm_head.ln", &mlm.ln);
        out.push(("unembed.W_U".into(), mlm.w_u.clone()));
        out.push(("unembed.b_U".into(), mlm.b_u.clone()));
    }
    if let Some(nsp) = &w.nsp {
        out.push(("nsp_head.W".into(), nsp.w.clone()));
        out.push(("nsp_head.b".into(), nsp.b.clone()));
    }
    if let Some(p) = &w.pooler {
        out.push(("pooler.W".into(), p.w.clone()));
        out.push(("pooler.b".into(), p.b.clone()));
    }
    Ok(out)
}
