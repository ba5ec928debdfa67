//! OPT (`OPTForCausalLM`: `facebook/opt-*`): learned positions, LayerNorm before attention and
//! MLP, Q/K/V/O with biases, a ReLU MLP, a final LayerNorm and a tied unembedding. OPT's
//! position table starts 2 rows in (HF's `OPTLearnedPositionalEmbedding` offset); TL drops those
//! rows, so `W_pos` has `n_ctx` rows read from position 0 as GPT-2's.

use crate::error::{Error, Result};
use crate::families::hf_linear::{layer_norm, linear, qkv_with_biases, unembed, zeros};
use crate::families::{exact_div, hf_bool, hf_opt_usize, hf_str, hf_usize, tl_needs_true, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "OPTForCausalLM",
    // Checkpoints of `OPTForCausalLM` carry `model.decoder.`, older ones of `OPTModel` `decoder.`.
    prefixes: &["model.decoder.", "decoder.", ""],
    hf_fields: &[
        ("n_layers", "num_hidden_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_attention_heads"),
        ("d_mlp", "ffn_dim"),
        ("n_ctx", "max_position_embeddings"),
        ("d_vocab", "vocab_size"),
        ("act_fn", "activation_function"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

/// HF's `OPTLearnedPositionalEmbedding` offset: rows of the position table before position 0.
const POSITION_OFFSET: usize = 2;

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_attention_heads")?;
    // TL runs every OPT pre-LN, without the embedding projections; such a checkpoint (only
    // opt-350m, which TL cannot load) would give other numbers than HF's.
    if !hf_bool(hf, "do_layer_norm_before", true)? {
        return Err(Error::unsupported("OPT with do_layer_norm_before false (post-LN, as opt-350m) is not supported (TL runs OPT pre-LN)"));
    }
    if let Some(p) = hf_opt_usize(hf, "word_embed_proj_dim")?.filter(|&p| p != d_model) {
        return Err(Error::unsupported(format!(
            "OPT with word_embed_proj_dim {p} other than hidden_size {d_model} (embedding projections, as opt-350m) is not supported (nor in TL)"
        )));
    }
    tl_needs_true(hf, "enable_bias", "OPT")?;
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "hidden_size", n_heads, "num_attention_heads")?,
        n_heads,
        d_mlp: Some(hf_usize(hf, "ffn_dim")?),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        // TL's value (HF's OPT LayerNorms have the default 1e-5 too).
        eps: 1e-5,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "activation_function", "relu")?),
        use_attn_scale: true,
        use_local_attn: false,
        scale_attn_by_inverse_layer_idx: false,
        normalization_type: Some("LN".into()),
        original_architecture: Some("OPTForCausalLM".into()),
        ..Config::default()
    })
}

fn layer(l: usize, s: &str) -> String {
    format!("layers.{l}.{s}")
}

pub fn tensors(cfg: &Config) -> Vec<TensorSpec> {
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    vec![
        TensorSpec::new("embed_tokens.weight", &[v, d]),
        TensorSpec::new("embed_positions.weight", &[cfg.n_ctx + POSITION_OFFSET, d]),
        TensorSpec::new("final_layer_norm.weight", &[d]),
        TensorSpec::new("final_layer_norm.bias", &[d]),
        // Tied embeddings: lm_head is W_E; checkpoints usually omit it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, hd) = (cfg.d_model, cfg.d_mlp(), cfg.n_heads * cfg.d_head);
    let specs = [
        ("self_attn_layer_norm.weight", vec![d]),
        ("self_attn_layer_norm.bias", vec![d]),
        ("self_attn.q_proj.weight", vec![hd, d]),
        ("self_attn.q_proj.bias", vec![hd]),
        ("self_attn.k_proj.weight", vec![hd, d]),
        ("self_attn.k_proj.bias", vec![hd]),
        ("self_attn.v_proj.weight", vec![hd, d]),
        ("self_attn.v_proj.bias", vec![hd]),
        ("self_attn.out_proj.weight", vec![d, hd]),
        ("self_attn.out_proj.bias", vec![d]),
        ("final_layer_norm.weight", vec![d]),
        ("final_layer_norm.bias", vec![d]),
        ("fc1.weight", vec![m, d]),
        ("fc1.bias", vec![m]),
        ("fc2.weight", vec![d, m]),
        ("fc2.bias", vec![d]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

/// TL's `convert_opt_weights`: `W_pos` is the position table without its first 2 rows.
pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let lin = |s: &str| linear(w, &layer(l, s));
        let mlp = MlpWeights::dense(lin("fc1")?, lin("fc2")?);
        let qkv = qkv_with_biases(w, &layer(l, "self_attn."))?;
        let (ln1, ln2) = (layer_norm(w, &layer(l, "self_attn_layer_norm"))?, layer_norm(w, &layer(l, "final_layer_norm"))?);
        blocks.push(BlockWeights::new(ln1, qkv, lin("self_attn.out_proj")?, ln2, mlp));
    }
    let w_e = w.get("embed_tokens.weight")?;
    // Its own storage: the rows before position 0 are dropped, not kept under a view.
    let w_pos = w.get("embed_positions.weight")?.narrow(0, POSITION_OFFSET, cfg.n_ctx)?.force_contiguous()?;
    let w_u = unembed(w, &w_e)?;
    let b_u = zeros(cfg.d_vocab, &w_e)?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: Some(w_pos), blocks, ln_final: layer_norm(w, "final_layer_norm")?, w_u, b_u })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn hf(extra: serde_json::Value) -> serde_json::Value {
        let mut c = json!({"hidden_size": 32, "num_attention_heads": 4, "ffn_dim": 48, "num_hidden_layers": 2,
            "max_position_embeddings": 64, "vocab_size": 512, "word_embed_proj_dim": 32});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    #[test]
    fn maps_as_tl_and_refuses_what_tl_cannot_run_as_hf() {
        let cfg = config(&hf(json!({"layer_norm_eps": 1e-6}))).unwrap();
        assert_eq!((cfg.d_mlp, cfg.eps, cfg.act_fn.as_deref()), (Some(48), 1e-5, Some("relu")));
        assert_eq!(tensors(&cfg)[1].shape, [66, 32]);
        for bad in [json!({"do_layer_norm_before": false}), json!({"word_embed_proj_dim": 16}), json!({"enable_bias": false})] {
            assert_eq!(config(&hf(bad)).unwrap_err().code, ErrorCode::Unsupported);
        }
    }
}
