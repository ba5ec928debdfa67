//! Mistral (`MistralForCausalLM`): Llama's layout with a sliding window (TL's `use_local_attn`,
//! every layer "local"), an explicit `head_dim` when config.json gives one, `rope_theta`, and
//! TL's 2048-position cap.

use crate::error::Result;
use crate::families::{hf_f64, hf_opt_usize, llama, Family};
use crate::model::config::Config;

pub const FAMILY: Family = Family {
    architecture: "MistralForCausalLM",
    prefixes: llama::PREFIXES,
    hf_fields: llama::HF_FIELDS,
    config,
    tensors: llama::tensors,
    layer_tensors: |cfg, l| llama::layer_tensors(cfg, l, false),
    convert: |cfg, w| llama::convert(cfg, w, false),
};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    let mut cfg = llama::base_config(hf, "MistralForCausalLM")?;
    // TL: head_dim when set and positive, else hidden_size / num_attention_heads.
    if let Some(dh) = hf_opt_usize(hf, "head_dim")?.filter(|&d| d > 0) {
        cfg.d_head = dh;
        cfg.rotary_dim = Some(dh);
    }
    // TL keeps n_key_value_heads even when it equals n_heads.
    cfg.n_key_value_heads = Some(cfg.kv_heads());
    cfg.n_ctx = 2048; // TL: "Capped due to memory issues"
    cfg.rotary_base = hf_f64(hf, "rope_theta", cfg.rotary_base)?;
    cfg.final_rms = false;
    cfg.window_size = hf_opt_usize(hf, "sliding_window")?;
    cfg.use_local_attn = cfg.window_size.is_some_and(|w| w > 0);
    cfg.attn_types = cfg.use_local_attn.then(|| vec!["local".to_string(); cfg.n_layers]);
    Ok(cfg)
}
