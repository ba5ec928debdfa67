//! TL's config of a `T5ForConditionalGeneration` checkpoint (`convert_hf_model_config`), from
//! config.json, with the common fields `get_pretrained_model_config` sets.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::families::{hf_f64, hf_opt_usize, hf_usize};
use crate::load::config::dtype_name;
use crate::model::activation::Activation;
use crate::model::config::Config;

pub const ARCHITECTURE: &str = "T5ForConditionalGeneration";

/// transformers 4.x's `PretrainedConfig.max_length` default: TL's T5 `n_ctx` when config.json
/// has none (t5-small's has none). TL truncates `to_tokens` to it.
const DEFAULT_MAX_LENGTH: usize = 20;

fn hf_bool(hf: &Value, key: &str, default: bool) -> Result<bool> {
    match hf.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| Error::corrupt(format!("config.json: '{key}' must be true or false, got {v}"))),
    }
}

/// TL's `act_fn` (config.json's `feed_forward_proj`, default 'relu'). TL converts only the
/// ungated MLP (`DenseReluDense.wi`): a gated one ('gated-gelu', T5 v1.1) it cannot load; the
/// activation must be one TL's MLP has and HF's T5 accepts (TL's `solu` / `solu_ln` HF has not).
fn feed_forward_act(hf: &Value) -> Result<String> {
    let act = match hf.get("feed_forward_proj") {
        None | Some(Value::Null) => "relu".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(Error::corrupt(format!("config.json: 'feed_forward_proj' must be a string, got {v}"))),
    };
    let unsupported = |why: &str| Err(Error::unsupported(format!("T5 with feed_forward_proj '{act}': {why}")));
    if act.starts_with("gated-") {
        return unsupported("TL's HookedEncoderDecoder converts the ungated MLP (DenseReluDense.wi) only, not T5 v1.1's gated one");
    }
    if act.starts_with("solu") {
        return unsupported("HF's T5 has no such activation");
    }
    match Activation::from_name(&act) {
        Ok(_) => Ok(act),
        Err(_) => unsupported("not an activation of TL's MLP (relu, gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, silu)"),
    }
}

/// TL's T5 entry of `convert_hf_model_config`. transformers' T5Config defaults fill missing keys.
pub fn from_hf(hf: &Value) -> Result<Config> {
    let n_layers = hf_usize(hf, "num_layers")?;
    if let Some(dec) = hf_opt_usize(hf, "num_decoder_layers")? {
        // TL converts decoder blocks 0..num_layers: fewer fail its conversion (IndexError), more
        // are left out (as TL does).
        if dec < n_layers {
            return Err(Error::unsupported(format!(
                "num_decoder_layers {dec} is less than num_layers {n_layers}: TL's HookedEncoderDecoder builds num_layers decoder blocks"
            )));
        }
    }
    let act = feed_forward_act(hf)?;
    if hf.get("max_length").is_some_and(Value::is_null) {
        // TL's n_ctx is config.max_length: None fails TL's attention (torch.ones((None, None))).
        return Err(Error::unsupported("T5 with max_length null: TL's HookedEncoderDecoder takes n_ctx from max_length"));
    }
    let mut cfg = Config {
        d_model: hf_usize(hf, "d_model")?,
        d_head: hf_usize(hf, "d_kv")?,
        n_heads: hf_usize(hf, "num_heads")?,
        d_mlp: Some(hf_usize(hf, "d_ff")?),
        d_vocab: hf_usize(hf, "vocab_size")?,
        n_layers,
        n_ctx: hf_opt_usize(hf, "max_length")?.unwrap_or(DEFAULT_MAX_LENGTH),
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-6)?,
        act_fn: Some(act),
        positional_embedding_type: "relative_positional_bias".into(),
        relative_attention_max_distance: Some(hf_opt_usize(hf, "relative_attention_max_distance")?.unwrap_or(128)),
        relative_attention_num_buckets: Some(hf_opt_usize(hf, "relative_attention_num_buckets")?.unwrap_or(32)),
        decoder_start_token_id: hf.get("decoder_start_token_id").and_then(Value::as_i64),
        attention_dir: "bidirectional".into(),
        use_attn_scale: false,
        tie_word_embeddings: hf_bool(hf, "tie_word_embeddings", true)?,
        original_architecture: Some(ARCHITECTURE.into()),
        ..Config::default()
    };
    cfg.d_vocab_out = -1;
    if cfg.d_model == 0 || cfg.d_head == 0 || cfg.n_heads == 0 || cfg.d_mlp() == 0 || cfg.d_vocab == 0 || n_layers == 0 {
        return Err(Error::corrupt("config.json: d_model, d_kv, num_heads, d_ff, vocab_size and num_layers must be positive"));
    }
    if cfg.relative_attention_num_buckets == Some(0) || cfg.relative_attention_max_distance == Some(0) {
        return Err(Error::corrupt("config.json: relative_attention_num_buckets and relative_attention_max_distance must be positive"));
    }
    Ok(cfg)
}

/// The rest of TL's `get_pretrained_model_config` for T5 (no norm folding: TL never processes T5).
pub fn finish(cfg: &mut Config, official_name: &str, dtype: candle_core::DType, device_label: &str) -> Result<()> {
    cfg.model_name = official_name.rsplit('/').next().unwrap_or(official_name).to_string();
    cfg.tokenizer_name = Some(official_name.to_string());
    cfg.init_weights = false;
    cfg.dtype = dtype_name(dtype).to_string();
    cfg.device = Some(crate::device::label(device_label));
    cfg.n_devices = 1;
    cfg.finalize()
}

/// The relative-position settings (buckets, max distance).
pub fn buckets(cfg: &Config) -> (usize, usize) {
    (cfg.relative_attention_num_buckets.unwrap_or(32), cfg.relative_attention_max_distance.unwrap_or(128))
}
