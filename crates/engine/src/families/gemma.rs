//! Gemma (`GemmaForCausalLM`) and Gemma 2 (`Gemma2ForCausalLM`): Llama's HF layout with
//! RMSNorm weights stored as offsets from 1, token embeddings scaled by `sqrt(d_model)`, a
//! GELU(tanh)-gated MLP and tied embeddings. Gemma 2 adds norms after attention and after the
//! MLP (TL's `ln1_post` / `ln2_post`), local (sliding-window) attention on every other layer,
//! `query_pre_attn_scalar`, and soft caps on attention scores and on the logits.
//!
//! As TL's `convert_gemma_weights`, the offsets are folded here: every norm weight becomes
//! `1 + w` (in float32), and W_E is stored already scaled (so `hook_embed` sees the scaled
//! embeddings); W_U is the unscaled embedding matrix. TL hard-codes the configs of the official
//! names (`gemma_table`); the config.json mapping below is for other Gemma-architecture folders.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::families::{hf_f64, hf_opt_usize, hf_usize, llama, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{ModelWeights, NormWeights, PostNorms};

pub const FAMILY: Family = Family {
    architecture: "GemmaForCausalLM",
    prefixes: llama::PREFIXES,
    hf_fields: HF_FIELDS,
    config: |hf| config(hf, false),
    tensors: llama::tensors,
    layer_tensors,
    convert,
};

pub const FAMILY2: Family = Family {
    architecture: "Gemma2ForCausalLM",
    prefixes: llama::PREFIXES,
    hf_fields: HF_FIELDS,
    config: |hf| config(hf, true),
    tensors: llama::tensors,
    layer_tensors,
    convert,
};

const HF_FIELDS: &[(&str, &str)] = &[
    ("n_layers", "num_hidden_layers"),
    ("d_model", "hidden_size"),
    ("n_heads", "num_attention_heads"),
    ("d_head", "head_dim"),
    ("rotary_dim", "head_dim"),
    ("n_key_value_heads", "num_key_value_heads"),
    ("d_mlp", "intermediate_size"),
    ("n_ctx", "max_position_embeddings"),
    ("d_vocab", "vocab_size"),
    ("eps", "rms_norm_eps"),
    ("rotary_base", "rope_theta"),
    ("window_size", "sliding_window"),
    ("attn_scale", "query_pre_attn_scalar"),
    ("attn_scores_soft_cap", "attn_logit_softcapping"),
    ("output_logits_soft_cap", "final_logit_softcapping"),
];

/// The fields TL's hard-coded Gemma dicts hold, from config.json's values: Gemma 1's
/// `gelu_new` and explicit `rotary_dim`; Gemma 2's `gelu_pytorch_tanh`, alternating global /
/// local layers (global first), both soft caps and the norms after each sublayer. The
/// attention scale is `sqrt(query_pre_attn_scalar)`, left to TL's default `sqrt(d_head)` where
/// they agree (as TL's dicts leave it).
pub fn config(hf: &serde_json::Value, gemma2: bool) -> Result<Config> {
    let d_head = hf_usize(hf, "head_dim")?;
    let n_layers = hf_usize(hf, "num_hidden_layers")?;
    let mut cfg = Config {
        d_model: hf_usize(hf, "hidden_size")?,
        d_head,
        n_heads: hf_usize(hf, "num_attention_heads")?,
        d_mlp: Some(hf_usize(hf, "intermediate_size")?),
        n_layers,
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "rms_norm_eps", 1e-6)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(if gemma2 { "gelu_pytorch_tanh" } else { "gelu_new" }.into()),
        initializer_range: hf_f64(hf, "initializer_range", 0.02)?,
        normalization_type: Some("RMS".into()),
        rotary_base: hf_f64(hf, "rope_theta", 10000.0)?,
        rotary_dim: (!gemma2).then_some(d_head),
        positional_embedding_type: "rotary".into(),
        use_attn_scale: true,
        n_key_value_heads: Some(hf_opt_usize(hf, "num_key_value_heads")?.unwrap_or(hf_usize(hf, "num_attention_heads")?)),
        gated_mlp: true,
        final_rms: true,
        original_architecture: Some(if gemma2 { "Gemma2ForCausalLM" } else { "GemmaForCausalLM" }.into()),
        ..Config::default()
    };
    if gemma2 {
        let scalar = hf_f64(hf, "query_pre_attn_scalar", d_head as f64)?;
        if scalar != d_head as f64 {
            cfg.attn_scale = scalar.sqrt();
        }
        cfg.window_size = Some(hf_opt_usize(hf, "sliding_window")?.unwrap_or(4096));
        cfg.use_local_attn = true;
        cfg.attn_types = Some(alternating(n_layers.div_ceil(2)));
        cfg.attn_scores_soft_cap = hf_f64(hf, "attn_logit_softcapping", 50.0)?;
        cfg.output_logits_soft_cap = hf_f64(hf, "final_logit_softcapping", 30.0)?;
        cfg.use_normalization_before_and_after = true;
    }
    Ok(cfg)
}

/// `["global", "local"] * pairs`.
pub fn alternating(pairs: usize) -> Vec<String> {
    (0..2 * pairs).map(|i| if i % 2 == 0 { "global" } else { "local" }.to_string()).collect()
}

fn layer(l: usize, s: &str) -> String {
    format!("layers.{l}.{s}")
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let mut specs = llama::layer_tensors(cfg, l, false);
    if cfg.use_normalization_before_and_after {
        let d = cfg.d_model;
        specs.push(TensorSpec::new(layer(l, "pre_feedforward_layernorm.weight"), &[d]));
        specs.push(TensorSpec::new(layer(l, "post_feedforward_layernorm.weight"), &[d]));
    }
    specs
}

/// GemmaRMSNorm's `1 + w`, computed in float32 as TL does, in the weight's dtype.
fn offset_norm(w: &Checked, name: &str) -> Result<NormWeights> {
    let t = w.get(name)?;
    Ok(NormWeights { w: Some((t.to_dtype(DType::F32)? + 1.0)?.to_dtype(t.dtype())?), b: None })
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let mut weights = llama::convert(cfg, w, false)?;
    let post = cfg.use_normalization_before_and_after;
    for (l, block) in weights.blocks.iter_mut().enumerate() {
        block.ln1 = offset_norm(w, &layer(l, "input_layernorm.weight"))?;
        if post {
            // Gemma 2's post_attention_layernorm is on the attention's output, not the MLP's input.
            block.ln2 = offset_norm(w, &layer(l, "pre_feedforward_layernorm.weight"))?;
            block.post_norms = Some(PostNorms {
                attn: offset_norm(w, &layer(l, "post_attention_layernorm.weight"))?,
                mlp: offset_norm(w, &layer(l, "post_feedforward_layernorm.weight"))?,
            });
        } else {
            block.ln2 = offset_norm(w, &layer(l, "post_attention_layernorm.weight"))?;
        }
    }
    weights.ln_final = offset_norm(w, "norm.weight")?;
    // Embeddings scaled by sqrt(d_model) in the model dtype; W_U keeps the unscaled matrix.
    let scale = Tensor::new((cfg.d_model as f64).sqrt() as f32, weights.w_e.device())?.to_dtype(weights.w_e.dtype())?;
    weights.w_e = weights.w_e.broadcast_mul(&scale)?;
    Ok(weights)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::gemma_table;
    use serde_json::json;

    #[test]
    fn config_json_maps_as_tls_table_for_the_real_sizes() {
        // google/gemma-2-27b's config.json values.
        let hf = json!({
            "hidden_size": 4608, "head_dim": 128, "num_attention_heads": 32, "num_key_value_heads": 16,
            "intermediate_size": 36864, "num_hidden_layers": 46, "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-6, "vocab_size": 256000, "rope_theta": 10000.0, "query_pre_attn_scalar": 144,
            "sliding_window": 4096, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
        });
        let mut own = config(&hf, true).unwrap();
        let (arch, mut table) = gemma_table::lookup("google/gemma-2-27b-it").unwrap();
        assert_eq!(arch, "Gemma2ForCausalLM");
        assert!(gemma_table::same_sizes(&own, &table));
        own.finalize().unwrap();
        table.finalize().unwrap();
        assert_eq!((own.attn_scale, own.window_size, own.attn_scores_soft_cap), (12.0, Some(4096), 50.0));
        assert_eq!(own.to_json(), table.to_json());
        // TL tests "gemma-2" first: gemma-2b is labelled Gemma 2 with Gemma 1's config.
        let (arch, g) = gemma_table::lookup("google/gemma-2b").unwrap();
        assert_eq!((arch, g.use_normalization_before_and_after, g.act_fn.as_deref()), ("Gemma2ForCausalLM", false, Some("gelu_new")));
        assert!(gemma_table::lookup("google/gemma-7b").is_some_and(|(a, _)| a == "GemmaForCausalLM"));
        assert!(gemma_table::lookup("gemma-2b").is_none());
    }
}
