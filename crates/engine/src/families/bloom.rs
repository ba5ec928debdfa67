//! Bloom (`BloomForCausalLM`): `bigscience/bloom-*`. ALiBi instead of position embeddings
//! (`positional_embedding_type = "alibi"`), a LayerNorm on the token embeddings
//! (`post_embedding_ln`: TL's `embed.ln`), GELU (tanh, TL's `gelu_fast`), tied unembedding.
//!
//! HF fuses Q, K and V per head (`query_key_value` rows `(head, qkv, d_head)`, TL's
//! `W.T.reshape(d_model, n_heads, 3, d_head)`) and stores `[out, in]` weights; both become the
//! compute layout here. TL's config caps `n_ctx` at 2048 whatever config.json says.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::gpt_neox;
use crate::families::hf_linear::{layer_norm, unembed, zeros};
use crate::families::{exact_div, hf_f64, hf_opt_usize, hf_usize, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::ModelWeights;

pub const FAMILY: Family = Family {
    architecture: "BloomForCausalLM",
    prefixes: &["transformer.", ""],
    hf_fields: &[
        ("n_layers", "n_layer"),
        ("d_model", "hidden_size"),
        ("n_heads", "n_head"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_epsilon"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

/// A size config.json may spell two ways (BloomConfig's `n_embed`, `num_attention_heads`, ...).
fn either(hf: &serde_json::Value, key: &str, alias: &str) -> Result<usize> {
    match hf_opt_usize(hf, key)? {
        Some(n) => Ok(n),
        None => match hf_opt_usize(hf, alias)? {
            Some(n) => Ok(n),
            None => hf_usize(hf, key),
        },
    }
}

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = either(hf, "hidden_size", "n_embed")?;
    let n_heads = either(hf, "n_head", "num_attention_heads")?;
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "hidden_size", n_heads, "n_head")?,
        n_heads,
        d_mlp: Some(d_model * 4),
        n_layers: either(hf, "n_layer", "num_hidden_layers")?,
        // TL: "Capped due to HF Tokenizer Constraints".
        n_ctx: 2048,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some("gelu_fast".into()),
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-5)?,
        normalization_type: Some("LN".into()),
        post_embedding_ln: true,
        positional_embedding_type: "alibi".into(),
        default_prepend_bos: false,
        original_architecture: Some("BloomForCausalLM".into()),
        ..Config::default()
    })
}

fn layer(l: usize, s: &str) -> String {
    format!("h.{l}.{s}")
}

pub fn tensors(cfg: &Config) -> Vec<TensorSpec> {
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    vec![
        TensorSpec::new("word_embeddings.weight", &[v, d]),
        TensorSpec::new("word_embeddings_layernorm.weight", &[d]),
        TensorSpec::new("word_embeddings_layernorm.bias", &[d]),
        TensorSpec::new("ln_f.weight", &[d]),
        TensorSpec::new("ln_f.bias", &[d]),
        // Tied embeddings: lm_head is W_E; HF checkpoints usually omit it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    // GPT-NeoX's per-head fused QKV layout, under `self_attention`.
    gpt_neox::fused_layer_tensors(cfg, "self_attention", |n| layer(l, n))
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let blocks = (0..cfg.n_layers).map(|l| gpt_neox::fused_block(cfg, w, "self_attention", |n| layer(l, n))).collect::<Result<Vec<_>>>()?;
    let w_e = w.get("word_embeddings.weight")?;
    let w_u = unembed(w, &w_e)?;
    let b_u: Tensor = zeros(cfg.d_vocab, &w_e)?;
    Ok(ModelWeights {
        embed_ln: Some(layer_norm(w, "word_embeddings_layernorm")?),
        w_e,
        w_pos: None,
        blocks,
        ln_final: layer_norm(w, "ln_f")?,
        w_u,
        b_u,
    })
}
