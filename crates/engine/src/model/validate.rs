//! The one check every config goes through before anything is sized from it: a family maps
//! `config.json` to TL's config, then [`check`] refuses values that cannot describe a model
//! (zero or negative dims, heads that do not divide, a norm epsilon that is not a positive
//! finite number, ...). Sizes are then bounded by what the weight files hold
//! (`load::spec`), so no buffer is reserved from an unchecked number.

use crate::model::config::Config;

/// A config value that cannot describe a model: TL's field name and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: String) -> Problem {
    Problem { field, message }
}

fn at_least_one(field: &'static str, v: usize) -> Result<(), Problem> {
    if v == 0 {
        return Err(problem(field, "is 0; it must be at least 1".into()));
    }
    Ok(())
}

fn positive_finite(field: &'static str, v: f64) -> Result<(), Problem> {
    if !(v.is_finite() && v > 0.0) {
        return Err(problem(field, format!("is {v}; it must be a positive finite number")));
    }
    Ok(())
}

/// TL's "unset" marker for soft caps and the attention scale is -1; anything else must be a
/// positive finite number.
fn unset_or_positive(field: &'static str, v: f64) -> Result<(), Problem> {
    if v == -1.0 {
        return Ok(());
    }
    positive_finite(field, v)
}

/// The values of `cfg` that cannot describe a model, first one found.
pub fn check(cfg: &Config) -> Result<(), Problem> {
    at_least_one("n_layers", cfg.n_layers)?;
    at_least_one("d_model", cfg.d_model)?;
    at_least_one("n_heads", cfg.n_heads)?;
    at_least_one("d_head", cfg.d_head)?;
    at_least_one("n_ctx", cfg.n_ctx)?;
    at_least_one("d_vocab", cfg.d_vocab)?;
    if !cfg.attn_only {
        at_least_one("d_mlp", cfg.d_mlp())?;
    }
    if cfg.d_vocab_out != -1 && cfg.d_vocab_out < 1 {
        return Err(problem("d_vocab_out", format!("is {}; it must be at least 1", cfg.d_vocab_out)));
    }
    positive_finite("eps", cfg.eps)?;
    if let Some(k) = cfg.n_key_value_heads {
        at_least_one("n_key_value_heads", k)?;
        if !cfg.n_heads.is_multiple_of(k) {
            return Err(problem("n_key_value_heads", format!("is {k}, which does not divide n_heads {}", cfg.n_heads)));
        }
    }
    if cfg.use_attn_scale {
        unset_or_positive("attn_scale", cfg.attn_scale)?;
    }
    unset_or_positive("attn_scores_soft_cap", cfg.attn_scores_soft_cap)?;
    unset_or_positive("output_logits_soft_cap", cfg.output_logits_soft_cap)?;
    if cfg.positional_embedding_type == "rotary" {
        positive_finite("rotary_base", cfg.rotary_base)?;
        if let Some(r) = cfg.rotary_dim {
            if r == 0 || r > cfg.d_head || !r.is_multiple_of(2) {
                return Err(problem("rotary_dim", format!("is {r}; it must be even and between 2 and d_head {}", cfg.d_head)));
            }
        }
    }
    if cfg.use_local_attn {
        match cfg.window_size {
            Some(w) => at_least_one("window_size", w)?,
            None => return Err(problem("window_size", "is missing; local attention needs one".into())),
        }
    }
    if let Some(types) = &cfg.attn_types {
        if types.len() < cfg.n_layers {
            return Err(problem("attn_types", format!("has {} entries for {} layers", types.len(), cfg.n_layers)));
        }
        if let Some(bad) = types.iter().find(|t| *t != "global" && *t != "local") {
            return Err(problem("attn_types", format!("has the entry {bad:?}; each must be 'global' or 'local'")));
        }
    }
    if let Some(e) = cfg.num_experts {
        at_least_one("num_experts", e)?;
        let k = cfg.experts_per_token.unwrap_or(0);
        if k == 0 || k > e {
            return Err(problem("experts_per_token", format!("is {k}; it must be between 1 and num_experts {e}")));
        }
    }
    Ok(())
}

/// Sizes no weight file bounds (positions when no tensor has one row per position): past this a
/// config is refused rather than sizing tables and masks from it.
pub const MAX_CTX: usize = 1 << 24;

/// Every size field of `cfg` with its TL name, for bounding by what the weight files hold.
pub fn sizes(cfg: &Config) -> [(&'static str, usize); 6] {
    [
        ("d_model", cfg.d_model),
        ("n_heads", cfg.n_heads),
        ("d_head", cfg.d_head),
        ("d_vocab", cfg.d_vocab),
        ("d_mlp", cfg.d_mlp()),
        ("n_key_value_heads", cfg.n_key_value_heads.unwrap_or(1)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Config {
        Config {
            n_layers: 2,
            d_model: 16,
            d_head: 8,
            n_heads: 2,
            n_ctx: 12,
            d_vocab: 40,
            d_mlp: Some(64),
            act_fn: Some("gelu_new".into()),
            ..Config::default()
        }
    }

    fn field_of(edit: impl FnOnce(&mut Config)) -> &'static str {
        let mut c = good();
        edit(&mut c);
        check(&c).expect_err("expected a problem").field
    }

    #[test]
    fn accepts_a_real_config_and_names_each_bad_field() {
        assert_eq!(check(&good()), Ok(()));
        assert_eq!(field_of(|c| c.n_heads = 0), "n_heads");
        assert_eq!(field_of(|c| c.n_layers = 0), "n_layers");
        assert_eq!(field_of(|c| c.d_mlp = Some(0)), "d_mlp");
        assert_eq!(field_of(|c| c.eps = -1e-5), "eps");
        assert_eq!(field_of(|c| c.eps = f64::NAN), "eps");
        assert_eq!(field_of(|c| c.eps = 0.0), "eps");
        assert_eq!(field_of(|c| c.n_key_value_heads = Some(3)), "n_key_value_heads");
        assert_eq!(field_of(|c| c.attn_scale = f64::INFINITY), "attn_scale");
        assert_eq!(field_of(|c| c.attn_types = Some(vec!["global".into()])), "attn_types");
        assert_eq!(
            field_of(|c| {
                c.use_local_attn = true;
                c.window_size = Some(0)
            }),
            "window_size"
        );
        assert_eq!(
            field_of(|c| {
                c.positional_embedding_type = "rotary".into();
                c.rotary_dim = Some(9)
            }),
            "rotary_dim"
        );
        let mut attn_only = good();
        attn_only.attn_only = true;
        attn_only.d_mlp = Some(0);
        assert_eq!(check(&attn_only), Ok(()));
    }
}
