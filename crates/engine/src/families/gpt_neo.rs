//! GPT-Neo (`GPTNeoForCausalLM`: `EleutherAI/gpt-neo-*`): GPT-2's block with learned positions
//! and LayerNorm, but separate Q/K/V projections without biases, attention scores left unscaled
//! (TL's `use_attn_scale: false`), and local attention (a window of `window_size` positions) on
//! the layers `attention_layers` marks "local".

use crate::error::{Error, Result};
use crate::families::hf_linear::{layer_norm, linear, qkv_columns, unembed, zeros};
use crate::families::{exact_div, hf_f64, hf_opt_usize, hf_str, hf_usize, tl_mlp_width, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "GPTNeoForCausalLM",
    prefixes: &["transformer.", ""],
    hf_fields: &[
        ("n_layers", "num_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_heads"),
        ("d_mlp", "intermediate_size"),
        ("n_ctx", "max_position_embeddings"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_epsilon"),
        ("act_fn", "activation_function"),
        ("window_size", "window_size"),
        ("attn_types", "attention_layers"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

/// HF's default `attention_types` (`GPTNeoConfig`).
const DEFAULT_ATTENTION_TYPES: (&[&str], usize) = (&["global", "local"], 12);

/// HF's `attention_layers`: as config.json lists it, else `attention_types`
/// (`[[["global", "local"], 12]]`: each pattern repeated its count of times) expanded as
/// `GPTNeoConfig.expand_attention_types_params`. The expansion stops past `n_layers` entries
/// (HF refuses any other length), so no count sizes an allocation.
fn attention_layers(hf: &serde_json::Value, n_layers: usize) -> Result<Vec<String>> {
    let bad = |what: String| Error::corrupt(format!("config.json: {what}"));
    if let Some(v) = hf.get("attention_layers").filter(|v| !v.is_null()) {
        let list = v.as_array().ok_or_else(|| bad(format!("'attention_layers' must be a list of strings, got {v}")))?;
        return list
            .iter()
            .map(|x| x.as_str().map(String::from).ok_or_else(|| bad(format!("'attention_layers' has the entry {x}; each must be a string"))))
            .collect();
    }
    let mut out = Vec::new();
    let mut push = |pattern: &[String], count: usize| -> Result<()> {
        for _ in 0..count {
            if out.len() + pattern.len() > n_layers {
                return Err(bad(format!("'attention_types' describe more layers than 'num_layers' {n_layers}")));
            }
            out.extend(pattern.iter().cloned());
        }
        Ok(())
    };
    match hf.get("attention_types").filter(|v| !v.is_null()) {
        None => {
            let (pattern, count) = DEFAULT_ATTENTION_TYPES;
            push(&pattern.iter().map(|s| s.to_string()).collect::<Vec<_>>(), count)?;
        }
        Some(v) => {
            let items = v.as_array().ok_or_else(|| bad(format!("'attention_types' must be a list of [types, count] pairs, got {v}")))?;
            for item in items {
                let pair = item.as_array().filter(|p| p.len() == 2);
                let pattern = pair.and_then(|p| p[0].as_array()).and_then(|p| p.iter().map(|s| s.as_str().map(String::from)).collect::<Option<Vec<_>>>());
                let count = pair.and_then(|p| p[1].as_u64());
                match (pattern, count) {
                    (Some(p), Some(c)) if !p.is_empty() => push(&p, c.min(n_layers as u64 + 1) as usize)?,
                    _ => return Err(bad(format!("'attention_types' has the entry {item}; each must be [[types...], count]"))),
                }
            }
        }
    }
    Ok(out)
}

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_heads")?;
    let n_layers = hf_usize(hf, "num_layers")?;
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "hidden_size", n_heads, "num_heads")?,
        n_heads,
        d_mlp: Some(tl_mlp_width(hf, "intermediate_size", d_model)?),
        n_layers,
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-5)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        attn_types: Some(attention_layers(hf, n_layers)?),
        act_fn: Some(hf_str(hf, "activation_function", "gelu_new")?),
        use_attn_scale: false,
        use_local_attn: true,
        window_size: Some(hf_opt_usize(hf, "window_size")?.unwrap_or(256)),
        scale_attn_by_inverse_layer_idx: false,
        normalization_type: Some("LN".into()),
        original_architecture: Some("GPTNeoForCausalLM".into()),
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
        // Tied embeddings (GPT-Neo's default): lm_head is W_E; checkpoints usually omit it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, hd) = (cfg.d_model, cfg.d_mlp(), cfg.n_heads * cfg.d_head);
    let specs = [
        ("ln_1.weight", vec![d]),
        ("ln_1.bias", vec![d]),
        ("attn.attention.q_proj.weight", vec![hd, d]),
        ("attn.attention.k_proj.weight", vec![hd, d]),
        ("attn.attention.v_proj.weight", vec![hd, d]),
        ("attn.attention.out_proj.weight", vec![d, hd]),
        ("attn.attention.out_proj.bias", vec![d]),
        ("ln_2.weight", vec![d]),
        ("ln_2.bias", vec![d]),
        ("mlp.c_fc.weight", vec![m, d]),
        ("mlp.c_fc.bias", vec![m]),
        ("mlp.c_proj.weight", vec![d, m]),
        ("mlp.c_proj.bias", vec![d]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

/// TL's `convert_neo_weights`: Q, K and V biases are zero.
pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get = |s: &str| w.get(&layer(l, s));
        let q = get("attn.attention.q_proj.weight")?;
        let b_qkv = zeros(cfg.qkv_width(), &q)?;
        let w_qkv = qkv_columns(q, get("attn.attention.k_proj.weight")?, get("attn.attention.v_proj.weight")?)?;
        let lin = |s: &str| linear(w, &layer(l, s));
        let mlp = MlpWeights::dense(lin("mlp.c_fc")?, lin("mlp.c_proj")?);
        blocks.push(BlockWeights::new(layer_norm(w, &layer(l, "ln_1"))?, (w_qkv, b_qkv), lin("attn.attention.out_proj")?, layer_norm(w, &layer(l, "ln_2"))?, mlp));
    }
    let w_e = w.get("wte.weight")?;
    let w_u = unembed(w, &w_e)?;
    let b_u = zeros(cfg.d_vocab, &w_e)?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: Some(w.get("wpe.weight")?), blocks, ln_final: layer_norm(w, "ln_f")?, w_u, b_u })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attention_layers_are_listed_or_expanded_as_hf_does() {
        let listed = json!({"attention_layers": ["local", "global"], "attention_types": [[["global"], 2]]});
        assert_eq!(attention_layers(&listed, 2).unwrap(), ["local", "global"]);
        let types = json!({"attention_types": [[["global", "local"], 2], [["local"], 1]]});
        assert_eq!(attention_layers(&types, 5).unwrap(), ["global", "local", "global", "local", "local"]);
        assert_eq!(attention_layers(&json!({}), 24).unwrap().len(), 24);
        // A huge count is refused at n_layers, without expanding it.
        assert!(attention_layers(&json!({"attention_types": [[["global"], 1u64 << 60]]}), 4).is_err());
        assert!(attention_layers(&json!({"attention_types": [["global", 2]]}), 2).is_err());
        assert!(attention_layers(&json!({"attention_layers": [1, 2]}), 2).is_err());
    }
}
