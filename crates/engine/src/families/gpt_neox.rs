//! GPT-NeoX (`GPTNeoXForCausalLM`): Pythia, StableLM-Alpha style. Attention and MLP read the
//! same residual (parallel block), rotary on the first `rotary_pct` of each head's features,
//! rotating halves. HF fuses Q, K and V per head (`(head, qkv, d_head)` rows), and stores
//! `[out, in]` weights; both become the compute layout here.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::hf_linear::{layer_norm, linear, t, unembed_from};
use crate::families::{exact_div, hf_f64, hf_str, hf_usize, tl_needs_true, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "GPTNeoXForCausalLM",
    prefixes: &["gpt_neox.", ""],
    hf_fields: &[
        ("n_layers", "num_hidden_layers"),
        ("d_model", "hidden_size"),
        ("n_heads", "num_attention_heads"),
        ("d_mlp", "intermediate_size"),
        ("n_ctx", "max_position_embeddings"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_eps"),
        ("act_fn", "hidden_act"),
        ("rotary_dim", "rotary_pct"),
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
    tl_needs_true(hf, "attention_bias", "GPT-NeoX")?;
    // TL: round(rotary_pct * d_head), Python's round (half to even).
    let pct = hf_f64(hf, "rotary_pct", 1.0)?;
    let rotary = (pct * d_head as f64).round_ties_even();
    Ok(Config {
        d_model,
        d_head,
        n_heads,
        d_mlp: Some(hf_usize(hf, "intermediate_size")?),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "layer_norm_eps", 1e-5)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "hidden_act", "gelu")?),
        use_attn_scale: true,
        use_local_attn: false,
        scale_attn_by_inverse_layer_idx: false,
        parallel_attn_mlp: true,
        positional_embedding_type: "rotary".into(),
        rotary_adjacent_pairs: false,
        // A negative or non-finite pct gives 0, refused by the shared check as rotary_dim.
        rotary_dim: Some(if rotary.is_finite() && rotary > 0.0 { rotary as usize } else { 0 }),
        normalization_type: Some("LN".into()),
        original_architecture: Some("GPTNeoXForCausalLM".into()),
        ..Config::default()
    })
}

fn layer(l: usize, s: &str) -> String {
    format!("layers.{l}.{s}")
}

pub fn tensors(cfg: &Config) -> Vec<TensorSpec> {
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    vec![
        TensorSpec::new("embed_in.weight", &[v, d]),
        TensorSpec::new("final_layer_norm.weight", &[d]),
        TensorSpec::new("final_layer_norm.bias", &[d]),
        // Tied embeddings (tie_word_embeddings): embed_out is W_E and the file omits it.
        TensorSpec::optional("embed_out.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    fused_layer_tensors(cfg, "attention", |n| layer(l, n))
}

/// One layer of a GPT-NeoX-layout checkpoint (also Bloom's): LayerNorms, the fused per-head
/// QKV under `{attn}.query_key_value`, `{attn}.dense`, and the dense-h-to-4h MLP.
pub(crate) fn fused_layer_tensors(cfg: &Config, attn: &str, name: impl Fn(&str) -> String) -> Vec<TensorSpec> {
    let (d, m) = (cfg.d_model, cfg.d_mlp());
    let specs = [
        ("input_layernorm.weight".to_string(), vec![d]),
        ("input_layernorm.bias".to_string(), vec![d]),
        (format!("{attn}.query_key_value.weight"), vec![3 * d, d]),
        (format!("{attn}.query_key_value.bias"), vec![3 * d]),
        (format!("{attn}.dense.weight"), vec![d, d]),
        (format!("{attn}.dense.bias"), vec![d]),
        ("post_attention_layernorm.weight".to_string(), vec![d]),
        ("post_attention_layernorm.bias".to_string(), vec![d]),
        ("mlp.dense_h_to_4h.weight".to_string(), vec![m, d]),
        ("mlp.dense_h_to_4h.bias".to_string(), vec![m]),
        ("mlp.dense_4h_to_h.weight".to_string(), vec![d, m]),
        ("mlp.dense_4h_to_h.bias".to_string(), vec![d]),
    ];
    TensorSpec::all(specs.iter().map(|(n, s)| (n.as_str(), s.clone())), name)
}

/// The block of [`fused_layer_tensors`]' layout: rows (head, qkv, d_head) of the fused weight
/// become columns Q heads, K heads, V heads.
pub(crate) fn fused_block(cfg: &Config, w: &Checked, attn: &str, name: impl Fn(&str) -> String) -> Result<BlockWeights> {
    let (d, h, dh) = (cfg.d_model, cfg.n_heads, cfg.d_head);
    let get = |s: &str| w.get(&name(s));
    let qkv = get(&format!("{attn}.query_key_value.weight"))?.reshape((h, 3, dh, d))?.permute((1, 0, 2, 3))?.reshape((3 * h * dh, d))?;
    let b_qkv = get(&format!("{attn}.query_key_value.bias"))?.reshape((h, 3, dh))?.permute((1, 0, 2))?.contiguous()?.flatten_all()?;
    let lin = |s: &str| linear(w, &name(s));
    let mlp = MlpWeights::dense(lin("mlp.dense_h_to_4h")?, lin("mlp.dense_4h_to_h")?);
    let (ln1, ln2) = (layer_norm(w, &name("input_layernorm"))?, layer_norm(w, &name("post_attention_layernorm"))?);
    Ok(BlockWeights::new(ln1, (t(qkv)?, b_qkv), lin(&format!("{attn}.dense"))?, ln2, mlp))
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let blocks = (0..cfg.n_layers).map(|l| fused_block(cfg, w, "attention", |n| layer(l, n))).collect::<Result<Vec<_>>>()?;
    let w_e = w.get("embed_in.weight")?;
    let w_u = unembed_from(w, "embed_out.weight", &w_e)?;
    let b_u = Tensor::zeros(cfg.d_vocab, w_e.dtype(), w_e.device())?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: None, blocks, ln_final: layer_norm(w, "final_layer_norm")?, w_u, b_u })
}
