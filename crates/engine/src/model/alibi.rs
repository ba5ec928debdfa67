//! ALiBi (`positional_embedding_type == "alibi"`, Bloom): no position embeddings; each head adds
//! `m_h · min(key − query, 0)` to its attention scores, after the scaling and before the mask,
//! so `hook_attn_scores` sees it (TL's `AbstractAttention.create_alibi_bias`).
//!
//! TL's multipliers are the geometric sequence `start · start^h` with `start = 2^(-8 / n_heads)`
//! for every head count (HF's Bloom interleaves extra slopes when `n_heads` is not a power of
//! two; TL does not, and neither does this). Query `i` of a run with `past` cached positions sits
//! at index `past + i` (TL's `alibi[:, -query_ctx:, :key_ctx]`): distances are by index, so a
//! left-padded row gets the same biases between its real tokens as an unpadded one.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// TL's `create_alibi_multipliers(n_heads)`, in float32 as torch computes it
/// (`start * start ** arange(n_heads)` with the Python float `start` taken as float32).
pub fn multipliers(n_heads: usize) -> Vec<f32> {
    let start = 2f64.powf(-8.0 / n_heads as f64) as f32;
    (0..n_heads).map(|h| start * start.powf(h as f32)).collect()
}

/// `[1, heads, q, past + q]`: the bias of the `q` queries at indices `past..past + q` on every key.
pub fn bias(slopes: &[f32], past: usize, q: usize, dev: &Device) -> Result<Tensor> {
    let k = past + q;
    let mut v = Vec::with_capacity(slopes.len() * q * k);
    for &m in slopes {
        for i in 0..q {
            let row = (past + i) as i64;
            v.extend((0..k).map(|j| m * ((j as i64 - row).min(0) as f32)));
        }
    }
    Ok(Tensor::from_vec(v, (1, slopes.len(), q, k), dev)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_heads_are_powers_of_one_half() {
        // 8 heads: 2^-1 .. 2^-8, exact in float32.
        let m = multipliers(8);
        for (h, x) in m.iter().enumerate() {
            assert_eq!(*x, 0.5f32.powi(h as i32 + 1));
        }
    }

    #[test]
    fn cached_rows_are_the_last_rows_of_the_full_bias() -> Result<()> {
        let m = multipliers(6);
        let full = bias(&m, 0, 7, &Device::Cpu)?;
        let tail = bias(&m, 4, 3, &Device::Cpu)?;
        let want: Vec<f32> = full.narrow(2, 4, 3)?.flatten_all()?.to_vec1()?;
        assert_eq!(tail.flatten_all()?.to_vec1::<f32>()?, want);
        Ok(())
    }
}
