//! Llama (`LlamaForCausalLM`: Llama, Yi, CodeLlama, TinyLlama-style checkpoints read from
//! config.json): RMSNorm, a SiLU-gated MLP, full rotary on halves, grouped-query attention.
//! Also the HF layout every Llama-like family shares (`model.layers.{l}.self_attn.q_proj`, ...,
//! `mlp.gate_proj` / `up_proj` / `down_proj`), used by Qwen2 and Mistral.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::hf_linear::{rms_norm, t, unembed, zeros};
use crate::families::{exact_div, hf_f64, hf_opt_usize, hf_str, hf_usize, tl_fixed_size, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "LlamaForCausalLM",
    prefixes: PREFIXES,
    hf_fields: HF_FIELDS,
    config,
    tensors,
    layer_tensors: |cfg, l| layer_tensors(cfg, l, false),
    convert: |cfg, w| convert(cfg, w, false),
};

pub const PREFIXES: &[&str] = &["model.", ""];

pub const HF_FIELDS: &[(&str, &str)] = &[
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
];

/// The fields every Llama-like config shares (TL's dict for `LlamaForCausalLM`): `n_key_value_heads`
/// is set only when it differs from `n_heads`, as TL does for Llama.
pub fn base_config(hf: &serde_json::Value, architecture: &str) -> Result<Config> {
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
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "rms_norm_eps", 1e-6)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "hidden_act", "silu")?),
        n_key_value_heads: if kv != n_heads { Some(kv) } else { None },
        normalization_type: Some("RMS".into()),
        positional_embedding_type: "rotary".into(),
        rotary_adjacent_pairs: false,
        rotary_dim: Some(d_head),
        final_rms: true,
        gated_mlp: true,
        original_architecture: Some(architecture.into()),
        ..Config::default()
    })
}

/// TL reads no `rope_theta` for `LlamaForCausalLM` checkpoints (its rotary base stays 10000),
/// and neither does this; the hard-coded Llama table sets it where TL does.
pub fn config(hf: &serde_json::Value) -> Result<Config> {
    fixed_head_dim(base_config(hf, "LlamaForCausalLM")?, hf)
}

/// TL's `d_head = hidden_size / num_attention_heads` for the Llama-like dicts that do not read
/// `head_dim` (Llama, Qwen2, Mixtral): config.json's `head_dim` must be absent or that.
pub fn fixed_head_dim(cfg: Config, hf: &serde_json::Value) -> Result<Config> {
    tl_fixed_size(hf, "head_dim", cfg.d_head, "hidden_size / num_attention_heads")?;
    Ok(cfg)
}

pub(crate) fn layer(l: usize, s: &str) -> String {
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

/// `qkv_bias`: Q, K and V have biases (Qwen2); Llama's are zero in TL whatever the file holds.
pub fn layer_tensors(cfg: &Config, l: usize, qkv_bias: bool) -> Vec<TensorSpec> {
    let (d, m, hd, kvd) = (cfg.d_model, cfg.d_mlp(), cfg.n_heads * cfg.d_head, cfg.kv_heads() * cfg.d_head);
    let mut specs = vec![
        ("input_layernorm.weight", vec![d]),
        ("self_attn.q_proj.weight", vec![hd, d]),
        ("self_attn.k_proj.weight", vec![kvd, d]),
        ("self_attn.v_proj.weight", vec![kvd, d]),
        ("self_attn.o_proj.weight", vec![d, hd]),
        ("post_attention_layernorm.weight", vec![d]),
        ("mlp.gate_proj.weight", vec![m, d]),
        ("mlp.up_proj.weight", vec![m, d]),
        ("mlp.down_proj.weight", vec![d, m]),
    ];
    if qkv_bias {
        specs.extend([("self_attn.q_proj.bias", vec![hd]), ("self_attn.k_proj.bias", vec![kvd]), ("self_attn.v_proj.bias", vec![kvd])]);
    }
    TensorSpec::all(specs, |n| layer(l, n))
}

/// `[out, in]` weights stacked along `out` → `[in, Σ out]`, in one fresh buffer.
fn columns(parts: &[Tensor]) -> Result<Tensor> {
    t(Tensor::cat(parts, 0)?)
}

pub fn convert(cfg: &Config, w: &Checked, qkv_bias: bool) -> Result<ModelWeights> {
    let m = cfg.d_mlp();
    convert_with_mlp(cfg, w, qkv_bias, |l, like| {
        let get_t = |s: &str| w.get_t(&layer(l, s));
        Ok(MlpWeights::gated(get_t("mlp.up_proj.weight")?, get_t("mlp.gate_proj.weight")?, zeros(m, like)?, (get_t("mlp.down_proj.weight")?, zeros(cfg.d_model, like)?)))
    })
}

/// `convert` with block `l`'s MLP from `mlp(l, like)` (`like`: a weight of the model's dtype
/// and device), for families that share Llama's attention and norms (Mixtral's experts).
pub fn convert_with_mlp(cfg: &Config, w: &Checked, qkv_bias: bool, mlp: impl Fn(usize, &Tensor) -> Result<MlpWeights>) -> Result<ModelWeights> {
    let d = cfg.d_model;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get = |s: &str| w.get(&layer(l, s));
        let get_t = |s: &str| w.get_t(&layer(l, s));
        let (q, k, v) = (get("self_attn.q_proj.weight")?, get("self_attn.k_proj.weight")?, get("self_attn.v_proj.weight")?);
        let b_qkv = if qkv_bias {
            Tensor::cat(&[get("self_attn.q_proj.bias")?, get("self_attn.k_proj.bias")?, get("self_attn.v_proj.bias")?], 0)?
        } else {
            zeros(cfg.qkv_width(), &q)?
        };
        let w_o = get_t("self_attn.o_proj.weight")?;
        let mlp = mlp(l, &w_o)?;
        let (ln1, ln2) = (rms_norm(w, &layer(l, "input_layernorm.weight"))?, rms_norm(w, &layer(l, "post_attention_layernorm.weight"))?);
        blocks.push(BlockWeights::new(ln1, (columns(&[q, k, v])?, b_qkv), (w_o.clone(), zeros(d, &w_o)?), ln2, mlp));
    }
    let w_e = w.get("embed_tokens.weight")?;
    let w_u = unembed(w, &w_e)?;
    let b_u = Tensor::zeros(cfg.d_vocab, w_e.dtype(), w_e.device())?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: None, blocks, ln_final: rms_norm(w, "norm.weight")?, w_u, b_u })
}
