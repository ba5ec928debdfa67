//! TL's `HookedTransformerConfig`, field for field (snake_case, as TL's `cfg.to_dict()`).
//! Families fill the architecture-specific fields; `finalize` derives the rest as TL's
//! `__post_init__` does.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_ctx: usize,
    pub d_head: usize,
    pub model_name: String,
    pub n_heads: usize,
    pub d_mlp: Option<usize>,
    pub act_fn: Option<String>,
    pub d_vocab: usize,
    pub eps: f64,
    pub use_attn_result: bool,
    pub use_attn_scale: bool,
    pub attn_scale: f64,
    pub use_split_qkv_input: bool,
    pub use_hook_mlp_in: bool,
    pub use_attn_in: bool,
    pub use_qk_norm: bool,
    pub use_local_attn: bool,
    pub ungroup_grouped_query_attention: bool,
    pub original_architecture: Option<String>,
    pub from_checkpoint: bool,
    pub checkpoint_index: Option<i64>,
    pub checkpoint_label_type: Option<String>,
    pub checkpoint_value: Option<i64>,
    pub tokenizer_name: Option<String>,
    pub window_size: Option<usize>,
    pub attn_types: Option<Vec<String>>,
    pub init_mode: String,
    pub normalization_type: Option<String>,
    pub device: Option<String>,
    pub n_devices: usize,
    pub attention_dir: String,
    pub attn_only: bool,
    pub seed: Option<i64>,
    pub initializer_range: f64,
    pub init_weights: bool,
    pub scale_attn_by_inverse_layer_idx: bool,
    pub positional_embedding_type: String,
    pub final_rms: bool,
    pub d_vocab_out: i64,
    pub parallel_attn_mlp: bool,
    pub rotary_dim: Option<usize>,
    pub n_params: Option<u64>,
    pub use_hook_tokens: bool,
    pub gated_mlp: bool,
    pub default_prepend_bos: bool,
    pub dtype: String,
    pub tokenizer_prepends_bos: Option<bool>,
    pub n_key_value_heads: Option<usize>,
    pub post_embedding_ln: bool,
    pub rotary_base: f64,
    pub trust_remote_code: bool,
    pub rotary_adjacent_pairs: bool,
    pub num_experts: Option<usize>,
    pub experts_per_token: Option<usize>,
    pub relative_attention_max_distance: Option<usize>,
    pub relative_attention_num_buckets: Option<usize>,
    pub decoder_start_token_id: Option<i64>,
    pub tie_word_embeddings: bool,
    pub use_normalization_before_and_after: bool,
    pub attn_scores_soft_cap: f64,
    pub output_logits_soft_cap: f64,
    pub load_in_4bit: bool,
    #[serde(rename = "use_NTK_by_parts_rope")]
    pub use_ntk_by_parts_rope: bool,
    #[serde(rename = "NTK_by_parts_low_freq_factor")]
    pub ntk_by_parts_low_freq_factor: f64,
    #[serde(rename = "NTK_by_parts_high_freq_factor")]
    pub ntk_by_parts_high_freq_factor: f64,
    #[serde(rename = "NTK_by_parts_factor")]
    pub ntk_by_parts_factor: f64,
    #[serde(rename = "NTK_original_ctx_len")]
    pub ntk_original_ctx_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            n_layers: 0,
            d_model: 0,
            n_ctx: 0,
            d_head: 0,
            model_name: "custom".into(),
            n_heads: 0,
            d_mlp: None,
            act_fn: None,
            d_vocab: 0,
            eps: 1e-5,
            use_attn_result: false,
            use_attn_scale: true,
            attn_scale: -1.0,
            use_split_qkv_input: false,
            use_hook_mlp_in: false,
            use_attn_in: false,
            use_qk_norm: false,
            use_local_attn: false,
            ungroup_grouped_query_attention: false,
            original_architecture: None,
            from_checkpoint: false,
            checkpoint_index: None,
            checkpoint_label_type: None,
            checkpoint_value: None,
            tokenizer_name: None,
            window_size: None,
            attn_types: None,
            init_mode: "gpt2".into(),
            normalization_type: Some("LN".into()),
            device: Some("cpu".into()),
            n_devices: 1,
            attention_dir: "causal".into(),
            attn_only: false,
            seed: None,
            initializer_range: -1.0,
            init_weights: false,
            scale_attn_by_inverse_layer_idx: false,
            positional_embedding_type: "standard".into(),
            final_rms: false,
            d_vocab_out: -1,
            parallel_attn_mlp: false,
            rotary_dim: None,
            n_params: None,
            use_hook_tokens: false,
            gated_mlp: false,
            default_prepend_bos: true,
            dtype: "float32".into(),
            tokenizer_prepends_bos: None,
            n_key_value_heads: None,
            post_embedding_ln: false,
            rotary_base: 10000.0,
            trust_remote_code: false,
            rotary_adjacent_pairs: false,
            num_experts: None,
            experts_per_token: None,
            relative_attention_max_distance: None,
            relative_attention_num_buckets: None,
            decoder_start_token_id: None,
            tie_word_embeddings: false,
            use_normalization_before_and_after: false,
            attn_scores_soft_cap: -1.0,
            output_logits_soft_cap: -1.0,
            load_in_4bit: false,
            use_ntk_by_parts_rope: false,
            ntk_by_parts_low_freq_factor: 1.0,
            ntk_by_parts_high_freq_factor: 4.0,
            ntk_by_parts_factor: 8.0,
            ntk_original_ctx_len: 8192,
        }
    }
}

impl Config {
    /// Derived fields, as TL's `HookedTransformerConfig.__post_init__`.
    pub fn finalize(&mut self) -> Result<()> {
        if self.n_layers == 0 || self.d_model == 0 || self.d_head == 0 {
            return Err(Error::invalid("config needs n_layers, d_model and d_head > 0"));
        }
        if self.n_heads == 0 {
            if !self.d_model.is_multiple_of(self.d_head) {
                return Err(Error::invalid(format!(
                    "d_model {} is not divisible by d_head {}",
                    self.d_model, self.d_head
                )));
            }
            self.n_heads = self.d_model / self.d_head;
        }
        if !self.attn_only {
            if self.d_mlp.is_none() {
                self.d_mlp = Some(self.d_model * 4);
            }
            if self.act_fn.is_none() {
                return Err(Error::invalid("act_fn must be specified for non-attn-only models"));
            }
        }
        if self.initializer_range < 0.0 {
            self.initializer_range = if self.init_mode == "gpt2" {
                0.8 / (self.d_model as f64).sqrt()
            } else {
                1.0
            };
        }
        if self.d_vocab_out == -1 {
            self.d_vocab_out = self.d_vocab as i64;
        }
        if self.positional_embedding_type == "rotary" && self.rotary_dim.is_none() {
            self.rotary_dim = Some(self.d_head);
        }
        // Saturating: finalize runs on configs not yet bounded by any weight file.
        let prod = |xs: &[u64]| xs.iter().fold(1u64, |a, &x| a.saturating_mul(x));
        let d_mlp = self.d_mlp.unwrap_or(0) as u64;
        let (d, h, dh, l) = (self.d_model as u64, self.n_heads as u64, self.d_head as u64, self.n_layers as u64);
        let mut n_params = prod(&[l, d, dh, h, 4]);
        if !self.attn_only {
            let mut per_layer = prod(&[d, d_mlp, 2 + self.gated_mlp as u64]);
            if let Some(e) = self.num_experts {
                per_layer = prod(&[per_layer.saturating_add(d), e as u64]);
            }
            n_params = n_params.saturating_add(prod(&[l, per_layer]));
        }
        self.n_params = Some(n_params);
        if self.use_attn_scale && self.attn_scale == -1.0 {
            self.attn_scale = (self.d_head as f64).sqrt();
        }
        Ok(())
    }

    pub fn d_mlp(&self) -> usize {
        self.d_mlp.unwrap_or(0)
    }

    /// Key/value heads of the weights (`n_key_value_heads`, else `n_heads`).
    pub fn kv_heads(&self) -> usize {
        self.n_key_value_heads.unwrap_or(self.n_heads)
    }

    /// Key/value heads a forward computes, hooks see and the KV cache holds: the weights' heads,
    /// or `n_heads` with TL's `ungroup_grouped_query_attention`.
    pub fn attn_kv_heads(&self) -> usize {
        if self.ungroup_grouped_query_attention {
            self.n_heads
        } else {
            self.kv_heads()
        }
    }

    /// Columns of the fused `w_qkv`: Q heads, then K and V's heads.
    pub fn qkv_width(&self) -> usize {
        (self.n_heads + 2 * self.kv_heads()) * self.d_head
    }

    /// The effective divisor of attention scores in `layer`.
    pub fn attn_scale_for_layer(&self, layer: usize) -> f64 {
        let mut s = if self.use_attn_scale { self.attn_scale } else { 1.0 };
        if self.scale_attn_by_inverse_layer_idx {
            s *= (layer + 1) as f64;
        }
        s
    }

    /// A TL config from JSON (TL's snake_case fields; missing ones take TL's defaults).
    pub fn from_json(text: &str) -> Result<Config> {
        serde_json::from_str(text).map_err(|e| Error::invalid(format!("not a TL config: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Turns one of TL's hook flags on or off, among the `allowed` ones of a model class
    /// (`use_attn_result`, `use_split_qkv_input`, `use_hook_mlp_in`, `use_attn_in`,
    /// `ungroup_grouped_query_attention`); `use_attn_in` and `use_split_qkv_input` exclude each
    /// other. Unchanged on an error.
    pub fn set_hook_flag(&mut self, name: &str, value: bool, allowed: &[&str]) -> Result<()> {
        if !allowed.contains(&name) {
            return Err(Error::invalid(format!("unknown config flag '{name}' (this model takes {})", allowed.join(", "))));
        }
        // TL's setters assert these whatever the value (set_use_attn_in, set_use_hook_mlp_in).
        if name == "use_attn_in" && self.n_key_value_heads.is_some() {
            return Err(Error::invalid("can't use attn_in with grouped-query attention (n_key_value_heads is set); use split_qkv_input instead (as TL)"));
        }
        if name == "use_hook_mlp_in" && self.attn_only {
            return Err(Error::invalid("can't use hook_mlp_in with an attn_only model (as TL)"));
        }
        let (attn_in, split) = match name {
            "use_attn_in" => (value, self.use_split_qkv_input),
            "use_split_qkv_input" => (self.use_attn_in, value),
            _ => (self.use_attn_in, self.use_split_qkv_input),
        };
        if attn_in && split {
            return Err(Error::invalid("use_attn_in and use_split_qkv_input cannot both be on"));
        }
        let field = match name {
            "use_attn_result" => &mut self.use_attn_result,
            "use_split_qkv_input" => &mut self.use_split_qkv_input,
            "use_hook_mlp_in" => &mut self.use_hook_mlp_in,
            "use_attn_in" => &mut self.use_attn_in,
            "ungroup_grouped_query_attention" => &mut self.ungroup_grouped_query_attention,
            other => return Err(Error::invalid(format!("unknown config flag '{other}'"))),
        };
        *field = value;
        Ok(())
    }
}
