//! TL's config of a BERT checkpoint: the `BertForMaskedLM` branch of `convert_hf_model_config`
//! (every supported BERT has that config), from HF's config.json.

use crate::error::{Error, Result};
use crate::families::{exact_div, hf_f64, hf_opt_usize, hf_usize};
use crate::model::config::Config;

/// TL config field → config.json key, to name the file's key in errors.
pub const HF_FIELDS: &[(&str, &str)] = &[
    ("d_model", "hidden_size"),
    ("n_heads", "num_attention_heads"),
    ("d_mlp", "intermediate_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_ctx", "max_position_embeddings"),
    ("eps", "layer_norm_eps"),
    ("d_vocab", "vocab_size"),
];

/// HF's BERT config → TL's: `act_fn` is always `gelu` and attention bidirectional, as TL has it.
/// TL reads nothing else either: `hidden_act` (HF's activation) and `position_embedding_type`
/// (HF's 'relative_key' / 'relative_key_query' attention, without absolute positions) it
/// ignores, running absolute positions and gelu whatever they say; so does the port.
/// `architecture` is config.json's `architectures[0]` (TL's `original_architecture`).
pub fn config(hf: &serde_json::Value, architecture: &str) -> Result<Config> {
    let d_model = hf_usize(hf, "hidden_size")?;
    let n_heads = hf_usize(hf, "num_attention_heads")?;
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "hidden_size", n_heads, "num_attention_heads")?,
        n_heads,
        d_mlp: Some(hf_usize(hf, "intermediate_size")?),
        n_layers: hf_usize(hf, "num_hidden_layers")?,
        n_ctx: hf_usize(hf, "max_position_embeddings")?,
        eps: hf_f64(hf, "layer_norm_eps", 1e-12)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some("gelu".into()),
        attention_dir: "bidirectional".into(),
        normalization_type: Some("LN".into()),
        original_architecture: Some(architecture.to_string()),
        ..Config::default()
    })
}

/// HF's `type_vocab_size`, which must be 2: TL's `TokenTypeEmbed` has 2 rows (the size of every
/// BERT's) and cannot load another number (its state dict's shapes differ).
pub fn type_vocab_size(hf: &serde_json::Value) -> Result<usize> {
    match hf_opt_usize(hf, "type_vocab_size")?.unwrap_or(2) {
        2 => Ok(2),
        n => Err(Error::unsupported(format!(
            "BERT with type_vocab_size {n}: TL's HookedEncoder has 2 token types (its TokenTypeEmbed is [2, d_model])"
        ))),
    }
}

/// A config problem named by its config.json key.
pub fn config_error(p: crate::model::validate::Problem) -> Error {
    match HF_FIELDS.iter().find(|(tl, _)| *tl == p.field) {
        Some((tl, hf)) => Error::corrupt(format!("config.json: '{hf}' (TL's {tl}) {}", p.message)),
        None => Error::corrupt(format!("config.json: {} {}", p.field, p.message)),
    }
}
