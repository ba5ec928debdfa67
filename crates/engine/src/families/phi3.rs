//! Phi-3 (`Phi3ForCausalLM`: Phi-3, phi-4): Llama's block (RMSNorm, SiLU-gated MLP, full
//! rotary on halves, grouped-query attention) with fused projections: `qkv_proj` holds Q's rows
//! then K's and V's, `gate_up_proj` the gate's rows then the up projection's. TL reads
//! `rope_theta` as is, keeps `max_position_embeddings` and sets no `final_rms`.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::hf_linear::{rms_norm, t, unembed};
use crate::families::{exact_div, hf_f64, hf_opt_usize, hf_str, hf_usize, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "Phi3ForCausalLM",
    prefixes: &["model.", ""],
    hf_fields: &[
        ("n_layers", "num_hidden_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_attention_heads"),
        ("n_key_value_heads", "num_key_value_heads"),
        ("d_mlp", "intermediate_size"),
        ("n_ctx", "max_position_embeddings"),
        ("d_vocab", "vocab_size"),
        ("eps", "rms_norm_eps"),
        ("act_fn", "hidden_act"),
        ("rotary_base", "rope_theta"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

/// TL's dict for `Phi3ForCausalLM` (absent keys take `Phi3Config`'s defaults): `n_key_value_heads`
/// only when it differs from `n_heads`; TL reads neither `partial_rotary_factor`, `rope_scaling`
/// nor `sliding_window` (nor does this).
pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_attention_heads")?;
    let d_head = exact_div(d_model, "hidden_size", n_heads, "num_attention_heads")?;
    let kv = hf_opt_usize(hf, "num_key_value_heads")?.unwrap_or(n_heads);
    Ok(Config {
        d_model,
        d_head,
        n_heads,
        d_mlp: Some(hf_usize(hf, "intermediate_size")?),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        n_key_value_heads: if kv != n_heads { Some(kv) } else { None },
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "rms_norm_eps", 1e-5)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "hidden_act", "silu")?),
        initializer_range: hf_f64(hf, "initializer_range", 0.02)?,
        normalization_type: Some("RMS".into()),
        positional_embedding_type: "rotary".into(),
        trust_remote_code: true,
        rotary_base: hf_f64(hf, "rope_theta", 10000.0)?,
        use_attn_scale: true,
        gated_mlp: true,
        parallel_attn_mlp: false,
        rotary_dim: Some(d_head),
        original_architecture: Some("Phi3ForCausalLM".into()),
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
        TensorSpec::new("norm.weight", &[d]),
        // Tied embeddings: lm_head is W_E.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, hd) = (cfg.d_model, cfg.d_mlp(), cfg.n_heads * cfg.d_head);
    let specs = [
        ("input_layernorm.weight", vec![d]),
        ("self_attn.qkv_proj.weight", vec![cfg.qkv_width(), d]),
        ("self_attn.o_proj.weight", vec![d, hd]),
        ("post_attention_layernorm.weight", vec![d]),
        ("mlp.gate_up_proj.weight", vec![2 * m, d]),
        ("mlp.down_proj.weight", vec![d, m]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let (d, m) = (cfg.d_model, cfg.d_mlp());
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get = |s: &str| w.get(&layer(l, s));
        let get_t = |s: &str| w.get_t(&layer(l, s));
        // Rows Q heads, K heads, V heads: already the compute layout's columns once transposed.
        let w_qkv = get_t("self_attn.qkv_proj.weight")?;
        let (dtype, dev) = (w_qkv.dtype(), w_qkv.device().clone());
        let zeros = |n: usize| Tensor::zeros(n, dtype, &dev);
        // TL: W_gate, W_in = tensor_split(gate_up_proj.weight.T, 2, dim=1).
        let gate_up = get("mlp.gate_up_proj.weight")?;
        let mlp = MlpWeights::gated(t(gate_up.narrow(0, m, m)?)?, t(gate_up.narrow(0, 0, m)?)?, zeros(m)?, (get_t("mlp.down_proj.weight")?, zeros(d)?));
        let (ln1, ln2) = (rms_norm(w, &layer(l, "input_layernorm.weight"))?, rms_norm(w, &layer(l, "post_attention_layernorm.weight"))?);
        let b_qkv = zeros(cfg.qkv_width())?;
        blocks.push(BlockWeights::new(ln1, (w_qkv, b_qkv), (get_t("self_attn.o_proj.weight")?, zeros(d)?), ln2, mlp));
    }
    let w_e = w.get("embed_tokens.weight")?;
    let w_u = unembed(w, &w_e)?;
    let b_u = Tensor::zeros(cfg.d_vocab, w_e.dtype(), w_e.device())?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: None, blocks, ln_final: rms_norm(w, "norm.weight")?, w_u, b_u })
}
