//! Qwen v1 (`QWenLMHeadModel`: Qwen/Qwen-1_8B, -7B, -14B and their -Chat models; remote code
//! `modeling_qwen.py`, read here from the safetensors alone). Llama's behaviour (RMSNorm, full
//! rotary on halves, a SiLU-gated MLP, no K/V grouping) in GPT-2's module names:
//! `transformer.wte`, `h.{l}.ln_1`, `attn.c_attn` (one `nn.Linear [3 * d_model, d_model]` with a
//! bias, rows Q then K then V, each `(head, d_head)`), `attn.c_proj` (no bias), `ln_2`,
//! `mlp.w1` / `mlp.w2` / `mlp.c_proj` (no biases), `transformer.ln_f`, an untied `lm_head`.
//!
//! The remote MLP is `c_proj(w1(x) * silu(w2(x)))`: TL's `W_in` is `w1`, its `W_gate` (the one
//! the activation sees) is `w2`, and both are `intermediate_size // 2` wide (TL's `d_mlp`).
//!
//! TL's config: `d_head` is hidden_size / num_attention_heads and `rotary_dim` is `kv_channels`
//! (its conversion splits `c_attn` by `d_model`, so the two must agree, as in every released
//! Qwen v1; a checkpoint where they differ is refused). TL reads neither `rotary_emb_base` nor
//! `rotary_pct` (its rotary base stays 10000, as every released Qwen v1 has) and neither does
//! this. `n_ctx` is capped at 2048; `use_attn_scale` is `scale_attn_weights`. The remote code's
//! dynamic NTK and logn scaling act only past `seq_length` (8192 on the real models, beyond TL's
//! 2048 positions), so TL has neither and neither does this.

use crate::error::{Error, Result};
use crate::families::hf_linear::{rms_norm, t, unembed, zeros};
use crate::families::{exact_div, hf_bool, hf_f64, hf_opt_usize, hf_usize, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "QWenLMHeadModel",
    prefixes: &["transformer.", ""],
    hf_fields: &[
        ("n_layers", "num_hidden_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_attention_heads"),
        ("d_mlp", "intermediate_size"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_epsilon"),
        ("rotary_dim", "kv_channels"),
        ("initializer_range", "initializer_range"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_attention_heads")?;
    let d_head = exact_div(d_model, "hidden_size", n_heads, "num_attention_heads")?;
    let kv_channels = hf_opt_usize(hf, "kv_channels")?.unwrap_or(d_head);
    if kv_channels != d_head {
        return Err(Error::unsupported(format!(
            "QWenLMHeadModel with kv_channels {kv_channels} != hidden_size / num_attention_heads {d_head}: \
             TL's conversion splits c_attn by hidden_size"
        )));
    }
    Ok(Config {
        d_model,
        d_head,
        n_heads,
        d_mlp: Some(hf_usize(hf, "intermediate_size")? / 2),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        // TL: "Capped bc the actual ctx length is 30k and the attn mask would be too big".
        n_ctx: 2048,
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-6)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some("silu".into()),
        use_attn_scale: hf_bool(hf, "scale_attn_weights", true)?,
        initializer_range: hf_f64(hf, "initializer_range", 0.02)?,
        normalization_type: Some("RMS".into()),
        positional_embedding_type: "rotary".into(),
        rotary_dim: Some(kv_channels),
        rotary_adjacent_pairs: false,
        tokenizer_prepends_bos: Some(true),
        trust_remote_code: true,
        final_rms: true,
        gated_mlp: true,
        default_prepend_bos: false,
        original_architecture: Some("QWenLMHeadModel".into()),
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
        TensorSpec::new("ln_f.weight", &[d]),
        // Untied in every released Qwen v1; a tied checkpoint (tie_word_embeddings) omits it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m) = (cfg.d_model, cfg.d_mlp());
    let specs = [
        ("ln_1.weight", vec![d]),
        ("attn.c_attn.weight", vec![3 * d, d]),
        ("attn.c_attn.bias", vec![3 * d]),
        ("attn.c_proj.weight", vec![d, d]),
        ("ln_2.weight", vec![d]),
        ("mlp.w1.weight", vec![m, d]),
        ("mlp.w2.weight", vec![m, d]),
        ("mlp.c_proj.weight", vec![d, m]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let (d, m) = (cfg.d_model, cfg.d_mlp());
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get = |s: &str| w.get(&layer(l, s));
        let get_t = |s: &str| w.get_t(&layer(l, s));
        // c_attn's rows are Q, K, V, each (head, d_head): transposed, its columns are already
        // the fused w_qkv's, and its bias is b_qkv as it stands.
        let w_o = get_t("attn.c_proj.weight")?;
        let (b_in, b_o, b_out) = (zeros(m, &w_o)?, zeros(d, &w_o)?, zeros(d, &w_o)?);
        let mlp = MlpWeights::gated(get_t("mlp.w1.weight")?, get_t("mlp.w2.weight")?, b_in, (get_t("mlp.c_proj.weight")?, b_out));
        let (ln1, ln2) = (rms_norm(w, &layer(l, "ln_1.weight"))?, rms_norm(w, &layer(l, "ln_2.weight"))?);
        blocks.push(BlockWeights::new(ln1, (t(get("attn.c_attn.weight")?)?, get("attn.c_attn.bias")?), (w_o, b_o), ln2, mlp));
    }
    let w_e = w.get("wte.weight")?;
    let w_u = unembed(w, &w_e)?;
    let b_u = zeros(cfg.d_vocab, &w_e)?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: None, blocks, ln_final: rms_norm(w, "ln_f.weight")?, w_u, b_u })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hf() -> serde_json::Value {
        json!({
            "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2, "kv_channels": 8,
            "intermediate_size": 96, "vocab_size": 100, "layer_norm_epsilon": 1e-6,
            "max_position_embeddings": 8192, "seq_length": 8192, "scale_attn_weights": true,
            "rotary_emb_base": 10000, "rotary_pct": 1.0, "initializer_range": 0.02,
        })
    }

    #[test]
    fn config_is_tls() {
        let c = config(&hf()).unwrap();
        assert_eq!((c.d_model, c.d_head, c.n_heads, c.d_mlp, c.n_layers), (32, 8, 4, Some(48), 2));
        assert_eq!((c.n_ctx, c.rotary_dim, c.eps), (2048, Some(8), 1e-6));
        assert!(c.n_key_value_heads.is_none() && c.trust_remote_code && c.gated_mlp && c.final_rms);
        assert!(c.use_attn_scale && !c.default_prepend_bos && !c.rotary_adjacent_pairs);
        assert_eq!(c.act_fn.as_deref(), Some("silu"));
        assert_eq!(c.normalization_type.as_deref(), Some("RMS"));
        let mut odd = hf();
        odd["kv_channels"] = json!(16);
        assert_eq!(config(&odd).unwrap_err().code, crate::error::ErrorCode::Unsupported);
    }

    #[test]
    fn c_attn_rows_are_q_k_v() {
        let c = config(&hf()).unwrap();
        let names: Vec<String> = layer_tensors(&c, 1).iter().map(|s| s.name.clone()).collect();
        assert!(names.contains(&"h.1.attn.c_attn.bias".to_string()));
        assert!(names.contains(&"h.1.mlp.w2.weight".to_string()));
        assert!(!names.iter().any(|n| n.contains("c_proj.bias")));
    }
}
