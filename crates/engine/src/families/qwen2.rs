//! Qwen2 (`Qwen2ForCausalLM`: Qwen1.5 and Qwen2 checkpoints): Llama's layout with Q, K and V
//! biases, `n_key_value_heads` always set, TL's 2048-position cap and its rotary base from
//! `rope_theta`.

use crate::error::Result;
use crate::families::{hf_f64, llama, Family};
use crate::model::config::Config;

pub const FAMILY: Family = Family {
    architecture: "Qwen2ForCausalLM",
    prefixes: llama::PREFIXES,
    hf_fields: llama::HF_FIELDS,
    config,
    tensors: llama::tensors,
    layer_tensors: |cfg, l| llama::layer_tensors(cfg, l, true),
    convert: |cfg, w| llama::convert(cfg, w, true),
};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let mut cfg = llama::fixed_head_dim(llama::base_config(hf, "Qwen2ForCausalLM")?, hf)?;
    cfg.n_key_value_heads = Some(cfg.kv_heads());
    // TL: "Capped bc the actual ctx length is 30k and the attn mask would be too big".
    cfg.n_ctx = 2048;
    // TL: int(rope_theta).
    cfg.rotary_base = hf_f64(hf, "rope_theta", cfg.rotary_base)?.trunc();
    cfg.initializer_range = hf_f64(hf, "initializer_range", cfg.initializer_range)?;
    cfg.default_prepend_bos = false;
    cfg.tokenizer_prepends_bos = Some(true);
    Ok(cfg)
}
