//! GPT-2 (`GPT2LMHeadModel`): `gpt2*`, `distilgpt2`, `stanford-crfm/*`.
//!
//! HF's `Conv1D` weights are already `[in, out]`, and `c_attn` packs Q, K and V heads in the
//! column order of the fused compute layout, so conversion is a rename.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::hf_linear::{conv1d, layer_norm};
use crate::families::{exact_div, hf_bool, hf_f64, hf_opt_usize, hf_str, hf_usize, tl_mlp_width, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "GPT2LMHeadModel",
    prefixes: &["transformer.", ""],
    hf_fields: &[
        ("n_layers", "n_layer"),
        ("d_model", "n_embd"),
        ("n_heads", "n_head"),
        ("n_ctx", "n_ctx"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_epsilon"),
        ("act_fn", "activation_function"),
        ("d_mlp", "n_inner"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "n_embd")?;
    let n_heads = hf_usize(hf, "n_head")?;
    let n_ctx = match hf_opt_usize(hf, "n_ctx")? {
        Some(n) => n,
        None => hf_usize(hf, "n_positions")?,
    };
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "n_embd", n_heads, "n_head")?,
        n_heads,
        d_mlp: Some(tl_mlp_width(hf, "n_inner", d_model)?),
        n_layers: hf_usize(hf, "n_layer")?,
        n_ctx,
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-5)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "activation_function", "gelu_new")?),
        use_attn_scale: true,
        use_local_attn: false,
        scale_attn_by_inverse_layer_idx: hf_bool(hf, "scale_attn_by_inverse_layer_idx", false)?,
        normalization_type: Some("LN".into()),
        original_architecture: Some("GPT2LMHeadModel".into()),
        ..Config::default()
    })
}

fn layer(l: usize, s: &str) -> String {
    format!("h.{l}.{s}")
}

pub fn tensors(cfg: &Config) -> Vec<TensorSpec> {
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    vec![
        TensorSpec::new("wte.weight", &[v, d]),
        TensorSpec::new("wpe.weight", &[cfg.n_ctx, d]),
        TensorSpec::new("ln_f.weight", &[d]),
        TensorSpec::new("ln_f.bias", &[d]),
        // Tied embeddings: lm_head is W_E; HF checkpoints usually omit it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m) = (cfg.d_model, cfg.d_mlp());
    let specs = [
        ("ln_1.weight", vec![d]),
        ("ln_1.bias", vec![d]),
        ("attn.c_attn.weight", vec![d, 3 * d]),
        ("attn.c_attn.bias", vec![3 * d]),
        ("attn.c_proj.weight", vec![d, d]),
        ("attn.c_proj.bias", vec![d]),
        ("ln_2.weight", vec![d]),
        ("ln_2.bias", vec![d]),
        ("mlp.c_fc.weight", vec![d, m]),
        ("mlp.c_fc.bias", vec![m]),
        ("mlp.c_proj.weight", vec![m, d]),
        ("mlp.c_proj.bias", vec![d]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let w_e = w.get("wte.weight")?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let c = |s: &str| conv1d(w, &layer(l, s));
        let mlp = MlpWeights::dense(c("mlp.c_fc")?, c("mlp.c_proj")?);
        blocks.push(BlockWeights::new(layer_norm(w, &layer(l, "ln_1"))?, c("attn.c_attn")?, c("attn.c_proj")?, layer_norm(w, &layer(l, "ln_2"))?, mlp));
    }
    // Both as views ([d, v] strided): an untied lm_head (pytorch_model.bin files keep it) then
    // takes the same processing path as the tied W_E and gives the same bits.
    let w_u = if w.has("lm_head.weight") { w.get("lm_head.weight")?.t()? } else { w_e.t()? };
    let b_u = Tensor::zeros(cfg.d_vocab, w_e.dtype(), w_e.device())?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: Some(w.get("wpe.weight")?), blocks, ln_final: layer_norm(w, "ln_f")?, w_u, b_u })
}
