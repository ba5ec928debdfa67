//! The Gemma configs TL hard-codes instead of reading config.json (`convert_hf_model_config`'s
//! branches for official names starting with `google/gemma-...`), as data. TL tries the
//! prefixes in this order and takes the first match.

use crate::families::gemma::alternating;
use crate::model::config::Config;

struct Entry {
    prefix: &'static str,
    gemma2: bool,
    d_model: usize,
    d_head: usize,
    n_heads: usize,
    d_mlp: usize,
    n_layers: usize,
    n_key_value_heads: usize,
    /// TL's `attn_types` list: `["global", "local"] * pairs` (Gemma 2 only).
    pairs: usize,
    /// An explicit `attn_scale` (27B's sqrt(query_pre_attn_scalar 144)), else TL's default.
    attn_scale: Option<f64>,
}

const fn gemma(prefix: &'static str, d_model: usize, n_heads: usize, d_mlp: usize, n_layers: usize, kv: usize) -> Entry {
    Entry { prefix, gemma2: false, d_model, d_head: 256, n_heads, d_mlp, n_layers, n_key_value_heads: kv, pairs: 0, attn_scale: None }
}

const fn gemma2(prefix: &'static str, d_model: usize, n_heads: usize, d_mlp: usize, n_layers: usize, kv: usize, pairs: usize) -> Entry {
    Entry { prefix, gemma2: true, d_model, d_head: 256, n_heads, d_mlp, n_layers, n_key_value_heads: kv, pairs, attn_scale: None }
}

const TABLE: &[Entry] = &[
    gemma("google/gemma-2b", 2048, 8, 16384, 18, 1),
    gemma("google/gemma-7b", 3072, 16, 24576, 28, 16),
    gemma2("google/gemma-2-2b", 2304, 8, 9216, 26, 4, 21),
    gemma2("google/gemma-2-9b", 3584, 16, 14336, 42, 8, 21),
    Entry { d_head: 128, attn_scale: Some(12.0), ..gemma2("google/gemma-2-27b", 4608, 32, 36864, 46, 16, 23) },
];

/// TL's hard-coded config for `official_name` with its architecture, when it has one.
pub fn lookup(official_name: &str) -> Option<(&'static str, Config)> {
    let e = TABLE.iter().find(|e| official_name.starts_with(e.prefix))?;
    let mut cfg = Config {
        d_model: e.d_model,
        d_head: e.d_head,
        n_heads: e.n_heads,
        d_mlp: Some(e.d_mlp),
        n_layers: e.n_layers,
        n_ctx: 8192,
        eps: 1e-6,
        d_vocab: 256000,
        act_fn: Some(if e.gemma2 { "gelu_pytorch_tanh" } else { "gelu_new" }.into()),
        initializer_range: 0.02,
        normalization_type: Some("RMS".into()),
        rotary_base: 10000.0,
        rotary_dim: (!e.gemma2).then_some(e.d_head),
        positional_embedding_type: "rotary".into(),
        use_attn_scale: true,
        n_key_value_heads: Some(e.n_key_value_heads),
        gated_mlp: true,
        final_rms: true,
        ..Config::default()
    };
    if let Some(s) = e.attn_scale {
        cfg.attn_scale = s;
    }
    if e.gemma2 {
        cfg.window_size = Some(4096);
        cfg.use_local_attn = true;
        cfg.attn_types = Some(alternating(e.pairs));
        cfg.attn_scores_soft_cap = 50.0;
        cfg.output_logits_soft_cap = 30.0;
        cfg.use_normalization_before_and_after = true;
    }
    // TL tests for "gemma-2" before "gemma": google/gemma-2b is labelled Gemma 2 (its config and
    // conversion are Gemma 1's, which both families here follow from the config).
    let arch = if official_name.to_lowercase().contains("gemma-2") { "Gemma2ForCausalLM" } else { "GemmaForCausalLM" };
    cfg.original_architecture = Some(arch.into());
    Some((arch, cfg))
}

/// Whether `a` and `b` have the same sizes (a checkpoint with other sizes is not the model the
/// table describes: a reduced copy, read from its own config.json).
pub fn same_sizes(a: &Config, b: &Config) -> bool {
    (a.d_model, a.d_head, a.n_heads, a.d_mlp, a.n_layers, a.d_vocab, a.n_key_value_heads)
        == (b.d_model, b.d_head, b.n_heads, b.d_mlp, b.n_layers, b.d_vocab, b.n_key_value_heads)
}
