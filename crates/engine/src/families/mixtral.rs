//! Mixtral (`MixtralForCausalLM`): Mistral's attention and norms with TL's `MoE` in place of the
//! MLP: a router (`block_sparse_moe.gate`, TL's `mlp.W_gate`) and `num_local_experts` gated SiLU
//! experts (`experts.{e}.w1` / `w3` / `w2`: TL's `W_gate` / `W_in` / `W_out`).
//!
//! TL's config dict for this architecture (`convert_hf_model_config`): d_head is always
//! hidden_size / num_attention_heads, n_ctx is max_position_embeddings uncapped, window_size is
//! config.json's `sliding_window` but attention is global (`use_local_attn` False, `attn_types`
//! 32 × "global": here `max(32, n_layers)` entries, so deeper checkpoints are not refused),
//! `final_rms` False.

use candle_core::Tensor;

use crate::error::Result;
use crate::families::hf_linear::zeros;
use crate::families::{hf_f64, hf_opt_usize, hf_usize, llama, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "MixtralForCausalLM",
    prefixes: llama::PREFIXES,
    hf_fields: HF_FIELDS,
    config,
    tensors: llama::tensors,
    layer_tensors,
    convert,
};

const HF_FIELDS: &[(&str, &str)] = &[
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
    ("window_size", "sliding_window"),
    ("num_experts", "num_local_experts"),
    ("experts_per_token", "num_experts_per_tok"),
];

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let mut cfg = llama::fixed_head_dim(llama::base_config(hf, "MixtralForCausalLM")?, hf)?;
    cfg.n_key_value_heads = Some(cfg.kv_heads());
    cfg.rotary_base = hf_f64(hf, "rope_theta", cfg.rotary_base)?;
    cfg.final_rms = false;
    cfg.window_size = hf_opt_usize(hf, "sliding_window")?;
    cfg.use_local_attn = false;
    cfg.attn_types = Some(vec!["global".to_string(); cfg.n_layers.max(32)]);
    cfg.num_experts = Some(hf_usize(hf, "num_local_experts")?);
    cfg.experts_per_token = Some(hf_usize(hf, "num_experts_per_tok")?);
    Ok(cfg)
}

fn moe(l: usize, s: &str) -> String {
    llama::layer(l, &format!("block_sparse_moe.{s}"))
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, e) = (cfg.d_model, cfg.d_mlp(), cfg.num_experts.unwrap_or(0));
    let mut specs: Vec<TensorSpec> = llama::layer_tensors(cfg, l, false).into_iter().filter(|s| !s.name.contains(".mlp.")).collect();
    specs.push(TensorSpec::new(moe(l, "gate.weight"), &[e, d]));
    for x in 0..e {
        specs.push(TensorSpec::new(moe(l, &format!("experts.{x}.w1.weight")), &[m, d]));
        specs.push(TensorSpec::new(moe(l, &format!("experts.{x}.w2.weight")), &[d, m]));
        specs.push(TensorSpec::new(moe(l, &format!("experts.{x}.w3.weight")), &[m, d]));
    }
    specs
}

/// The experts' `[out, in]` weights `w{k}` → `[num_experts, in, out]`.
fn stacked(w: &Checked, l: usize, n: usize, k: u8) -> Result<Tensor> {
    let parts = (0..n).map(|x| w.get(&moe(l, &format!("experts.{x}.w{k}.weight")))).collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&parts, 0)?.transpose(1, 2)?.contiguous()?)
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let (d, m, n) = (cfg.d_model, cfg.d_mlp(), cfg.num_experts.unwrap_or(0));
    llama::convert_with_mlp(cfg, w, false, |l, like| {
        Ok(MlpWeights {
            ln: None,
            w_in: stacked(w, l, n, 3)?,
            w_gate: Some(stacked(w, l, n, 1)?),
            b_in: zeros(n * m, like)?.reshape((n, m))?,
            w_out: stacked(w, l, n, 2)?,
            b_out: zeros(d, like)?,
            router: Some(w.get_t(&moe(l, "gate.weight"))?),
        })
    })
}
