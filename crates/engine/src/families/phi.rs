//! Phi (`PhiForCausalLM`: phi-1, phi-1.5, phi-2): attention and MLP read one LayerNorm of the
//! same residual (parallel block; TL's ln2 is a copy of ln1), rotary on the first
//! `partial_rotary_factor` of each head's features (halves), biases on every projection
//! including the unembedding (TL's `b_U`). HF stores separate `[out, in]` Q/K/V projections and
//! the output projection as `dense`.


use crate::error::Result;
use crate::families::hf_linear::{layer_norm, linear, qkv_with_biases, unembed};
use crate::families::{exact_div, hf_f64, hf_str, hf_usize, tl_fixed_size, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights};

pub const FAMILY: Family = Family {
    architecture: "PhiForCausalLM",
    prefixes: &["model.", ""],
    hf_fields: &[
        ("n_layers", "num_hidden_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_attention_heads"),
        ("d_mlp", "intermediate_size"),
        ("n_ctx", "max_position_embeddings"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_eps"),
        ("act_fn", "hidden_act"),
        ("rotary_base", "rope_theta"),
        ("rotary_dim", "partial_rotary_factor"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

/// TL's dict for `PhiForCausalLM`; absent keys take `PhiConfig`'s defaults, as AutoConfig gives
/// them to TL. TL reads neither `qk_layernorm` nor `rope_scaling` (nor does this).
pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_attention_heads")?;
    let d_head = exact_div(d_model, "hidden_size", n_heads, "num_attention_heads")?;
    // TL's Phi conversion splits K and V into n_heads heads whatever num_key_value_heads says.
    tl_fixed_size(hf, "num_key_value_heads", n_heads, "num_attention_heads")?;
    // TL: round(partial_rotary_factor * d_head), Python's round (half to even).
    let rotary = (hf_f64(hf, "partial_rotary_factor", 0.5)? * d_head as f64).round_ties_even();
    Ok(Config {
        d_model,
        d_head,
        n_heads,
        d_mlp: Some(hf_usize(hf, "intermediate_size")?),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "layer_norm_eps", 1e-5)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "hidden_act", "gelu_new")?),
        initializer_range: hf_f64(hf, "initializer_range", 0.02)?,
        normalization_type: Some("LN".into()),
        positional_embedding_type: "rotary".into(),
        trust_remote_code: true,
        rotary_base: hf_f64(hf, "rope_theta", 10000.0)?,
        use_attn_scale: true,
        parallel_attn_mlp: true,
        // A negative or non-finite factor gives 0, refused by the shared check as rotary_dim.
        rotary_dim: Some(if rotary.is_finite() && rotary > 0.0 { rotary as usize } else { 0 }),
        original_architecture: Some("PhiForCausalLM".into()),
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
        TensorSpec::new("final_layernorm.weight", &[d]),
        TensorSpec::new("final_layernorm.bias", &[d]),
        // Tied embeddings (tie_word_embeddings): lm_head.weight is W_E and the file omits it;
        // the bias stays.
        TensorSpec::optional("lm_head.weight", &[v, d]),
        TensorSpec::new("lm_head.bias", &[v]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, hd) = (cfg.d_model, cfg.d_mlp(), cfg.n_heads * cfg.d_head);
    let specs = [
        ("input_layernorm.weight", vec![d]),
        ("input_layernorm.bias", vec![d]),
        ("self_attn.q_proj.weight", vec![hd, d]),
        ("self_attn.q_proj.bias", vec![hd]),
        ("self_attn.k_proj.weight", vec![hd, d]),
        ("self_attn.k_proj.bias", vec![hd]),
        ("self_attn.v_proj.weight", vec![hd, d]),
        ("self_attn.v_proj.bias", vec![hd]),
        ("self_attn.dense.weight", vec![d, hd]),
        ("self_attn.dense.bias", vec![d]),
        ("mlp.fc1.weight", vec![m, d]),
        ("mlp.fc1.bias", vec![m]),
        ("mlp.fc2.weight", vec![d, m]),
        ("mlp.fc2.bias", vec![d]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let lin = |s: &str| linear(w, &layer(l, s));
        let ln1 = layer_norm(w, &layer(l, "input_layernorm"))?;
        // TL: "Layer Norm 1 and 2 are tied" (ln2 holds ln1's values; its own copy here, so
        // every weight keeps its own storage).
        let ln2 = NormWeights { w: ln1.w.as_ref().map(|x| x.copy()).transpose()?, b: ln1.b.as_ref().map(|x| x.copy()).transpose()? };
        let mlp = MlpWeights::dense(lin("mlp.fc1")?, lin("mlp.fc2")?);
        blocks.push(BlockWeights::new(ln1, qkv_with_biases(w, &layer(l, "self_attn."))?, lin("self_attn.dense")?, ln2, mlp));
    }
    let w_e = w.get("embed_tokens.weight")?;
    Ok(ModelWeights {
        w_u: unembed(w, &w_e)?,
        w_e,
        embed_ln: None,
        w_pos: None,
        blocks,
        ln_final: layer_norm(w, "final_layernorm")?,
        b_u: w.get("lm_head.bias")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rotary_dim_is_pythons_round_of_the_partial_factor() {
        let hf = |factor: f64| {
            json!({
                "hidden_size": 64, "num_attention_heads": 8, "intermediate_size": 128, "num_hidden_layers": 2,
                "max_position_embeddings": 32, "vocab_size": 64, "partial_rotary_factor": factor,
            })
        };
        // d_head 8: 0.5 → 4; 0.3125 → round(2.5) = 2 (half to even); 0.4375 → round(3.5) = 4.
        for (factor, dim) in [(0.5, 4), (0.3125, 2), (0.4375, 4)] {
            assert_eq!(config(&hf(factor)).unwrap().rotary_dim, Some(dim), "{factor}");
        }
        let c = config(&hf(0.5)).unwrap();
        assert!(c.parallel_attn_mlp && c.trust_remote_code && c.n_key_value_heads.is_none());
        assert_eq!((c.act_fn.as_deref(), c.rotary_base), (Some("gelu_new"), 10000.0));
    }
}
