//! Qwen3 (`Qwen3ForCausalLM`): Qwen2's layout without Q/K/V biases, plus an RMSNorm over
//! `d_head` on every head of Q and of K (`q_norm` / `k_norm`, TL's `use_qk_norm`), and an
//! explicit `head_dim` that need not be `hidden_size / num_attention_heads`.

use crate::error::Result;
use crate::families::{hf_f64, hf_str, hf_usize, llama, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{ModelWeights, QkNorm};

pub const FAMILY: Family = Family {
    architecture: "Qwen3ForCausalLM",
    prefixes: llama::PREFIXES,
    hf_fields: &[
        ("n_layers", "num_hidden_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_attention_heads"),
        ("d_head", "head_dim"),
        ("rotary_dim", "head_dim"),
        ("n_key_value_heads", "num_key_value_heads"),
        ("d_mlp", "intermediate_size"),
        ("d_vocab", "vocab_size"),
        ("eps", "rms_norm_eps"),
        ("act_fn", "hidden_act"),
        ("rotary_base", "rope_theta"),
    ],
    config,
    tensors: llama::tensors,
    layer_tensors,
    convert,
};

/// `Qwen3Config`'s `head_dim` when config.json has none.
const DEFAULT_HEAD_DIM: usize = 128;

/// TL's dict for `Qwen3ForCausalLM`: `d_head` and `rotary_dim` are `head_dim` when positive (else
/// `hidden_size // num_attention_heads`), `n_key_value_heads` only when it differs from
/// `n_heads`, 2048 positions, `int(rope_theta)`. TL reads neither `attention_bias`,
/// `rope_scaling` nor the sliding window (nor does this).
pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_attention_heads")?;
    let head_dim = match hf.get("head_dim") {
        None => DEFAULT_HEAD_DIM,
        Some(serde_json::Value::Null) => 0,
        Some(_) => hf_usize(hf, "head_dim")?,
    };
    // n_heads 0 is refused by the shared check.
    let d_head = if head_dim > 0 { head_dim } else { d_model / n_heads.max(1) };
    let kv = hf_usize(hf, "num_key_value_heads")?;
    Ok(Config {
        d_model,
        d_head,
        n_heads,
        n_key_value_heads: if kv != n_heads { Some(kv) } else { None },
        d_mlp: Some(hf_usize(hf, "intermediate_size")?),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        n_ctx: 2048,
        eps: hf_f64(hf, "rms_norm_eps", 1e-6)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "hidden_act", "silu")?),
        use_attn_scale: true,
        initializer_range: hf_f64(hf, "initializer_range", 0.02)?,
        normalization_type: Some("RMS".into()),
        positional_embedding_type: "rotary".into(),
        rotary_base: hf_f64(hf, "rope_theta", 10000.0)?.trunc(),
        rotary_adjacent_pairs: false,
        rotary_dim: Some(d_head),
        tokenizer_prepends_bos: Some(true),
        final_rms: true,
        gated_mlp: true,
        default_prepend_bos: false,
        use_qk_norm: true,
        trust_remote_code: true,
        original_architecture: Some("Qwen3ForCausalLM".into()),
        ..Config::default()
    })
}

fn layer(l: usize, s: &str) -> String {
    format!("layers.{l}.{s}")
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let mut specs = llama::layer_tensors(cfg, l, false);
    specs.push(TensorSpec::new(layer(l, "self_attn.q_norm.weight"), &[cfg.d_head]));
    specs.push(TensorSpec::new(layer(l, "self_attn.k_norm.weight"), &[cfg.d_head]));
    specs
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let mut weights = llama::convert(cfg, w, false)?;
    for (l, block) in weights.blocks.iter_mut().enumerate() {
        let norm = |s: &str| w.get(&layer(l, &format!("self_attn.{s}.weight")));
        block.qk_norm = Some(QkNorm { q: norm("q_norm")?, k: norm("k_norm")? });
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hf(extra: serde_json::Value) -> serde_json::Value {
        let mut hf = json!({
            "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 44,
            "num_hidden_layers": 2, "vocab_size": 64, "rope_theta": 1000000.7,
        });
        hf.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        hf
    }

    #[test]
    fn head_dim_kv_heads_and_rope_theta_as_tl_reads_them() {
        let c = config(&hf(json!({ "head_dim": 12 }))).unwrap();
        assert_eq!((c.d_head, c.rotary_dim, c.n_key_value_heads, c.rotary_base), (12, Some(12), None, 1000000.0));
        // Absent: Qwen3Config's default; null or 0: hidden_size // num_attention_heads.
        assert_eq!(config(&hf(json!({}))).unwrap().d_head, DEFAULT_HEAD_DIM);
        assert_eq!(config(&hf(json!({ "head_dim": null }))).unwrap().d_head, 8);
        assert_eq!(config(&hf(json!({ "head_dim": 0 }))).unwrap().d_head, 8);
        let gqa = config(&hf(json!({ "num_key_value_heads": 2 }))).unwrap();
        assert_eq!((gqa.n_key_value_heads, gqa.use_qk_norm, gqa.n_ctx), (Some(2), true, 2048));
    }
}
