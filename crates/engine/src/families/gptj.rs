//! GPT-J (`GPTJForCausalLM`: `EleutherAI/gpt-j-6B`): attention and MLP read the same residual
//! through ONE LayerNorm (parallel block; TL ties its `ln2` to `ln1`), rotary on adjacent pairs
//! of the first `rotary_dim` features of each head, Q/K/V/O without biases, and an unembedding
//! with a bias (TL's `b_U`).

use crate::error::Result;
use crate::families::hf_linear::{layer_norm, linear, qkv_columns, unembed, zeros};
use crate::families::{exact_div, hf_opt_usize, hf_str, hf_usize, tl_mlp_width, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "GPTJForCausalLM",
    prefixes: &["transformer.", ""],
    hf_fields: &[
        ("n_layers", "n_layer"),
        ("d_model", "n_embd"),
        ("n_heads", "n_head"),
        ("d_mlp", "n_inner"),
        ("n_ctx", "n_positions"),
        ("d_vocab", "vocab_size"),
        ("act_fn", "activation_function"),
        ("rotary_dim", "rotary_dim"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let d_model = hf_usize(hf, "n_embd")?;
    let n_heads = hf_usize(hf, "n_head")?;
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "n_embd", n_heads, "n_head")?,
        n_heads,
        d_mlp: Some(tl_mlp_width(hf, "n_inner", d_model)?),
        n_layers: hf_usize(hf, "n_layer")?,
        n_ctx: hf_usize(hf, "n_positions")?,
        // TL's value whatever layer_norm_epsilon says.
        eps: 1e-5,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "activation_function", "gelu_new")?),
        use_attn_scale: true,
        use_local_attn: false,
        scale_attn_by_inverse_layer_idx: false,
        parallel_attn_mlp: true,
        positional_embedding_type: "rotary".into(),
        // None (HF's "whole embedding") becomes d_head in `finalize`, as TL's __post_init__.
        rotary_dim: hf_opt_usize(hf, "rotary_dim")?,
        rotary_adjacent_pairs: true,
        normalization_type: Some("LN".into()),
        original_architecture: Some("GPTJForCausalLM".into()),
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
        TensorSpec::new("ln_f.bias", &[d]),
        // Untied by default; a checkpoint saved with tie_word_embeddings omits it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
        TensorSpec::new("lm_head.bias", &[v]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, hd) = (cfg.d_model, cfg.d_mlp(), cfg.n_heads * cfg.d_head);
    let specs = [
        ("ln_1.weight", vec![d]),
        ("ln_1.bias", vec![d]),
        ("attn.q_proj.weight", vec![hd, d]),
        ("attn.k_proj.weight", vec![hd, d]),
        ("attn.v_proj.weight", vec![hd, d]),
        ("attn.out_proj.weight", vec![d, hd]),
        ("mlp.fc_in.weight", vec![m, d]),
        ("mlp.fc_in.bias", vec![m]),
        ("mlp.fc_out.weight", vec![d, m]),
        ("mlp.fc_out.bias", vec![d]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

/// TL's `convert_gptj_weights`: Q/K/V and O biases are zero, ln2 is a copy of ln1.
pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get = |s: &str| w.get(&layer(l, s));
        let get_t = |s: &str| w.get_t(&layer(l, s));
        let q = get("attn.q_proj.weight")?;
        let (b_qkv, b_o) = (zeros(cfg.qkv_width(), &q)?, zeros(cfg.d_model, &q)?);
        let w_qkv = qkv_columns(q, get("attn.k_proj.weight")?, get("attn.v_proj.weight")?)?;
        let mlp = MlpWeights::dense(linear(w, &layer(l, "mlp.fc_in"))?, linear(w, &layer(l, "mlp.fc_out"))?);
        // ln_1 read twice: each norm has its own storage, as TL's state dict has two parameters.
        let (ln1, ln2) = (layer_norm(w, &layer(l, "ln_1"))?, layer_norm(w, &layer(l, "ln_1"))?);
        blocks.push(BlockWeights::new(ln1, (w_qkv, b_qkv), (get_t("attn.out_proj.weight")?, b_o), ln2, mlp));
    }
    let w_e = w.get("wte.weight")?;
    let w_u = unembed(w, &w_e)?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: None, blocks, ln_final: layer_norm(w, "ln_f")?, w_u, b_u: w.get("lm_head.bias")? })
}
