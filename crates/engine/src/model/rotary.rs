//! Rotary position embeddings in the attention: the frequencies TL's config implies
//! (`calculate_sin_cos_rotary`, with Llama 3.1's NTK-by-parts scaling) and the rotation of
//! queries and keys at their positions (`apply_rotary`), with `hook_rot_q` / `hook_rot_k`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::kernels::rotary::{Positions, RotaryTable};
use crate::model::config::Config;
use crate::model::mask::MaskPlan;

/// Each pair's angle per position as TL computes it in f32: `base ** (i / (dim / 2))`, or the
/// NTK-by-parts frequencies (Llama 3.1 / 3.2).
fn frequencies(cfg: &Config, dim: usize) -> Vec<f32> {
    let base = cfg.rotary_base;
    let half = dim / 2;
    if !cfg.use_ntk_by_parts_rope {
        return (0..half).map(|i| base.powf((i as f32 / (dim as f32 / 2.0)) as f64) as f32).collect();
    }
    let factor = cfg.ntk_by_parts_factor as f32;
    let (low, high) = (cfg.ntk_by_parts_low_freq_factor as f32, cfg.ntk_by_parts_high_freq_factor as f32);
    let old_ctx = cfg.ntk_original_ctx_len as f32;
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    (0..half)
        .map(|i| {
            let inv = 1.0 / (base.powf(((2 * i) as f32 / dim as f32) as f64) as f32);
            let wavelen = (2.0 * std::f64::consts::PI) as f32 / inv;
            let scaled = if wavelen > low_wavelen { inv / factor } else { inv };
            let smooth = (old_ctx / wavelen - low) / (high - low);
            let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
            let medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            1.0 / if medium { smoothed } else { scaled }
        })
        .collect()
}

/// The model's sin/cos table over `n_ctx` positions.
pub fn table(cfg: &Config) -> Result<RotaryTable> {
    let dim = cfg.rotary_dim.unwrap_or(cfg.d_head);
    if dim == 0 || dim > cfg.d_head || !dim.is_multiple_of(2) {
        return Err(Error::invalid(format!("rotary_dim {dim} must be even and at most d_head {}", cfg.d_head)));
    }
    Ok(RotaryTable::new(dim, cfg.n_ctx, cfg.rotary_adjacent_pairs, &frequencies(cfg, dim)))
}

/// The positions of the `q` new queries (`past..past + q`, or moved by padding).
pub fn query_positions(plan: &MaskPlan, b: usize, q: usize) -> Positions {
    match &plan.key_positions {
        Some(all) => {
            let k = plan.past + q;
            Positions(Arc::new(all.chunks(k).flat_map(|row| row[plan.past..].iter().copied()).collect()))
        }
        None => Positions::offset(b, plan.past, q),
    }
}

/// The positions of all `k` keys, cached and new.
pub fn key_positions(plan: &MaskPlan, b: usize, k: usize) -> Positions {
    match &plan.key_positions {
        Some(all) => Positions(Arc::new(all.clone())),
        None => Positions::offset(b, 0, k),
    }
}
