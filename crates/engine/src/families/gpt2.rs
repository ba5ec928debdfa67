//! GPT-2 (`GPT2LMHeadModel`): `gpt2*`, `distilgpt2`, `stanford-crfm/*`.
//!
//! HF's `Conv1D` weights are already `[in, out]`, and `c_attn` packs Q, K and V heads in the
//! column order of the fused compute layout, so conversion is a rename.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::{hf_f64, hf_usize};
use crate::load::safetensors::WeightFile;
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "n_embd")?;
    let n_heads = hf_usize(hf, "n_head")?;
    let n_ctx = hf.get("n_ctx").and_then(|v| v.as_u64()).map(|v| v as usize).map_or_else(|| hf_usize(hf, "n_positions"), Ok)?;
    Ok(Config {
        d_model,
        d_head: d_model / n_heads.max(1),
        n_heads,
        d_mlp: Some(d_model * 4),
        n_layers: hf_usize(hf, "n_layer")?,
        n_ctx,
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-5),
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf.get("activation_function").and_then(|v| v.as_str()).unwrap_or("gelu_new").to_string()),
        use_attn_scale: true,
        use_local_attn: false,
        scale_attn_by_inverse_layer_idx: hf.get("scale_attn_by_inverse_layer_idx").and_then(|v| v.as_bool()).unwrap_or(false),
        normalization_type: Some("LN".into()),
        original_architecture: Some("GPT2LMHeadModel".into()),
        ..Config::default()
    })
}

fn ln(wf: &WeightFile, name: &str, d: usize) -> Result<NormWeights> {
    let w = wf.get_prefixed("transformer.", &format!("{name}.weight"))?;
    let b = wf.get_prefixed("transformer.", &format!("{name}.bias"))?;
    WeightFile::expect_shape(&w, name, &[d])?;
    WeightFile::expect_shape(&b, name, &[d])?;
    Ok(NormWeights { w: Some(w), b: Some(b) })
}

pub fn convert(cfg: &Config, wf: &WeightFile) -> Result<ModelWeights> {
    let (d, n_layers) = (cfg.d_model, cfg.n_layers);
    let get = |n: &str| wf.get_prefixed("transformer.", n);
    let w_e = get("wte.weight")?;
    WeightFile::expect_shape(&w_e, "wte.weight", &[cfg.d_vocab, d])?;
    let w_pos = get("wpe.weight")?;
    WeightFile::expect_shape(&w_pos, "wpe.weight", &[cfg.n_ctx, d])?;
    let mut blocks = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        let p = |s: &str| format!("h.{l}.{s}");
        let w_qkv = get(&p("attn.c_attn.weight"))?;
        WeightFile::expect_shape(&w_qkv, &p("attn.c_attn.weight"), &[d, 3 * d])?;
        let w_in = get(&p("mlp.c_fc.weight"))?;
        WeightFile::expect_shape(&w_in, &p("mlp.c_fc.weight"), &[d, cfg.d_mlp()])?;
        blocks.push(BlockWeights {
            ln1: ln(wf, &p("ln_1"), d)?,
            w_qkv,
            b_qkv: get(&p("attn.c_attn.bias"))?,
            w_o: get(&p("attn.c_proj.weight"))?,
            b_o: get(&p("attn.c_proj.bias"))?,
            ln2: ln(wf, &p("ln_2"), d)?,
            mlp: Some(MlpWeights {
                w_in,
                b_in: get(&p("mlp.c_fc.bias"))?,
                w_out: get(&p("mlp.c_proj.weight"))?,
                b_out: get(&p("mlp.c_proj.bias"))?,
            }),
        });
    }
    // Tied embeddings: lm_head is W_E; HF checkpoints usually omit it.
    let w_u = if wf.has("lm_head.weight") { wf.get_any(&["lm_head.weight"])?.t()? } else { w_e.t()? };
    let b_u = Tensor::zeros(cfg.d_vocab, w_e.dtype(), w_e.device())?;
    Ok(ModelWeights { w_e, w_pos: Some(w_pos), blocks, ln_final: ln(wf, "ln_f", d)?, w_u, b_u })
}
