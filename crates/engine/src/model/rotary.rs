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
            // TL: ~(wavelen < high) * ~(wavelen > low); wavelen is never NaN.
            let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// TL's `rotary_sin` / `rotary_cos` for NTK-by-parts and adjacent-pair configs
    /// (scripts/reference/make_rotary_fixtures.py).
    #[test]
    fn tables_match_tl() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/golden/rotary/tables.json");
        let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cases = golden["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for case in cases {
            let c = &case["cfg"];
            let num = |k: &str, d: f64| c.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
            let cfg = Config {
                d_head: num("d_head", 0.0) as usize,
                n_ctx: num("n_ctx", 0.0) as usize,
                rotary_dim: Some(num("rotary_dim", 0.0) as usize),
                rotary_base: num("rotary_base", 10000.0),
                rotary_adjacent_pairs: c.get("rotary_adjacent_pairs").and_then(|v| v.as_bool()).unwrap_or(false),
                use_ntk_by_parts_rope: c.get("use_NTK_by_parts_rope").and_then(|v| v.as_bool()).unwrap_or(false),
                ntk_by_parts_factor: num("NTK_by_parts_factor", 8.0),
                ntk_by_parts_low_freq_factor: num("NTK_by_parts_low_freq_factor", 1.0),
                ntk_by_parts_high_freq_factor: num("NTK_by_parts_high_freq_factor", 4.0),
                ntk_original_ctx_len: num("NTK_original_ctx_len", 8192.0) as usize,
                ..Config::default()
            };
            let (sin, cos) = table(&cfg).unwrap().buffers(DType::F32, &Device::Cpu).unwrap();
            for (ours, key) in [(sin, "sin"), (cos, "cos")] {
                let ours = ours.to_vec2::<f32>().unwrap();
                let theirs = case[key].as_array().unwrap();
                assert_eq!(ours.len(), theirs.len());
                for (row, want) in ours.iter().zip(theirs) {
                    for (a, b) in row.iter().zip(want.as_array().unwrap()) {
                        let b = b.as_f64().unwrap() as f32;
                        // One f32 rounding of the angle apart at most (TL's pow and sin are torch's).
                        assert!((a - b).abs() <= 2e-5, "{key}: {a} vs {b} ({c})");
                    }
                }
            }
        }
    }
}
