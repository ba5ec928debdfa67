//! The Llama configs TL hard-codes instead of reading config.json (`convert_hf_model_config`'s
//! branches for official names containing "llama"), as data: a name rule and the values that
//! differ between models. TL tries the rules in this order and takes the first match.

use crate::model::config::Config;

enum Rule {
    /// The official name starts with one of these.
    Prefix(&'static [&'static str]),
    /// The official name contains this.
    Contains(&'static str),
}

/// NTK-by-parts rotary scaling (Llama 3.1 / 3.2 / 3.3): (factor).
struct Ntk(f64);

struct Entry {
    rule: Rule,
    d_model: usize,
    n_heads: usize,
    d_head: usize,
    d_mlp: usize,
    n_layers: usize,
    n_ctx: usize,
    eps: f64,
    d_vocab: usize,
    n_key_value_heads: Option<usize>,
    rotary_base: f64,
    ntk: Option<Ntk>,
}

const fn llama(rule: Rule, d_model: usize, n_heads: usize, d_mlp: usize, n_layers: usize, n_ctx: usize, eps: f64) -> Entry {
    Entry { rule, d_model, n_heads, d_head: d_model / n_heads, d_mlp, n_layers, n_ctx, eps, d_vocab: 32000, n_key_value_heads: None, rotary_base: 10000.0, ntk: None }
}

/// Llama 3.x: d_head 128, 8 K/V heads, vocab 128256, base 500000.
const fn llama3(rule: Rule, d_model: usize, n_heads: usize, d_mlp: usize, n_layers: usize, n_ctx: usize, ntk: Option<Ntk>) -> Entry {
    Entry { rule, d_model, n_heads, d_head: 128, d_mlp, n_layers, n_ctx, eps: 1e-5, d_vocab: 128256, n_key_value_heads: Some(8), rotary_base: 500000.0, ntk }
}

const TABLE: &[Entry] = &[
    // LLaMA and Llama-2 7B share the architecture; LLaMA has n_ctx 2048 and eps 1e-6.
    llama(Rule::Prefix(&["llama-7b"]), 4096, 32, 11008, 32, 2048, 1e-6),
    llama(Rule::Prefix(&["meta-llama/Llama-2-7b"]), 4096, 32, 11008, 32, 4096, 1e-5),
    Entry { d_vocab: 32016, rotary_base: 1000000.0, ..llama(Rule::Prefix(&["codellama"]), 4096, 32, 11008, 32, 4096, 1e-5) },
    llama(Rule::Prefix(&["llama-13b"]), 5120, 40, 13824, 40, 2048, 1e-6),
    llama(Rule::Prefix(&["meta-llama/Llama-2-13b"]), 5120, 40, 13824, 40, 4096, 1e-5),
    llama(Rule::Contains("llama-30b"), 6656, 52, 17920, 60, 2048, 1e-6),
    llama(Rule::Contains("llama-65b"), 8192, 64, 22016, 80, 2048, 1e-6),
    Entry { d_head: 128, n_key_value_heads: Some(8), ..llama(Rule::Contains("Llama-2-70b"), 8192, 64, 28672, 80, 4096, 1e-5) },
    llama3(Rule::Contains("Meta-Llama-3-8B"), 4096, 32, 14336, 32, 8192, None),
    llama3(Rule::Contains("Meta-Llama-3-70B"), 8192, 64, 28672, 80, 8192, None),
    Entry { d_head: 64, ..llama3(Rule::Contains("Llama-3.2-1B"), 2048, 32, 8192, 16, 2048, Some(Ntk(32.0))) },
    llama3(Rule::Contains("Llama-3.2-3B"), 3072, 24, 8192, 28, 2048, Some(Ntk(32.0))),
    llama3(Rule::Contains("Llama-3.3-70B"), 8192, 64, 28672, 80, 2048, Some(Ntk(8.0))),
    llama3(Rule::Contains("Llama-3.1-8B"), 4096, 32, 14336, 32, 2048, Some(Ntk(8.0))),
    llama3(Rule::Contains("Llama-3.1-70B"), 8192, 64, 28672, 80, 2048, Some(Ntk(8.0))),
];

/// TL's hard-coded config for `official_name`, when it has one (None: TL reads config.json).
pub fn lookup(official_name: &str) -> Option<Config> {
    if !official_name.to_lowercase().contains("llama") {
        return None;
    }
    let e = TABLE.iter().find(|e| match e.rule {
        Rule::Prefix(ps) => ps.iter().any(|p| official_name.starts_with(p)),
        Rule::Contains(s) => official_name.contains(s),
    })?;
    let mut cfg = Config {
        d_model: e.d_model,
        d_head: e.d_head,
        n_heads: e.n_heads,
        d_mlp: Some(e.d_mlp),
        n_layers: e.n_layers,
        n_ctx: e.n_ctx,
        eps: e.eps,
        d_vocab: e.d_vocab,
        act_fn: Some("silu".into()),
        n_key_value_heads: e.n_key_value_heads,
        normalization_type: Some("RMS".into()),
        positional_embedding_type: "rotary".into(),
        rotary_adjacent_pairs: false,
        rotary_dim: Some(e.d_head),
        final_rms: true,
        gated_mlp: true,
        rotary_base: e.rotary_base,
        original_architecture: Some("LlamaForCausalLM".into()),
        ..Config::default()
    };
    // The Python variant of CodeLlama-7b has LLaMA's vocabulary.
    if matches!(e.rule, Rule::Prefix(["codellama"])) && official_name.to_lowercase().contains("python") {
        cfg.d_vocab = 32000;
    }
    if let Some(Ntk(factor)) = e.ntk {
        cfg.use_ntk_by_parts_rope = true;
        cfg.ntk_by_parts_low_freq_factor = 1.0;
        cfg.ntk_by_parts_high_freq_factor = 4.0;
        cfg.ntk_by_parts_factor = factor;
        cfg.ntk_original_ctx_len = 8192;
    }
    Some(cfg)
}
