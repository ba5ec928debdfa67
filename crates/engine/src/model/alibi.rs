//! ALiBi (`positional_embedding_type == "alibi"`, Bloom): no position embeddings; each head adds
//! `m_h · min(key − query, 0)` to its attention scores, after the scaling and before the mask,
//! so `hook_attn_scores` sees it (TL's `AbstractAttention.create_alibi_bias`).
//!
//! TL's multipliers are the geometric sequence `start · start^h` with `start = 2^(-8 / n_heads)`
//! for every head count (HF's Bloom interleaves extra slopes when `n_heads` is not a power of
//! two; TL does not, and neither does this). Query `i` of a run with `past` cached positions sits
//! at index `past + i` (TL's `alibi[:, -query_ctx:, :key_ctx]`): distances are by index, so a
//! left-padded row gets the same biases between its real tokens as an unpadded one.
//!
//! TL keeps each layer's bias table (`self.alibi`) at the largest key length that layer has run
//! and never rebuilds it smaller: a later, shorter run takes the last rows of the larger table,
//! so its unmasked scores sit lower by `m_h · (largest − key_len)`, a per-row constant that the
//! softmax removes but `hook_attn_scores` shows. [`Alibi`] keeps that length per layer, so the
//! scores of a model instance follow the same history as TL's.

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Tensor};

use crate::error::Result;

/// TL's `create_alibi_multipliers(n_heads)`, in float32 as torch computes it
/// (`start * start ** arange(n_heads)` with the Python float `start` taken as float32).
pub fn multipliers(n_heads: usize) -> Vec<f32> {
    let start = 2f64.powf(-8.0 / n_heads as f64) as f32;
    (0..n_heads).map(|h| start * start.powf(h as f32)).collect()
}

/// One model's ALiBi: TL's multipliers, and per layer the largest key length run so far.
#[derive(Debug)]
pub struct Alibi {
    pub slopes: Vec<f32>,
    largest: Vec<AtomicUsize>,
}

impl Alibi {
    pub fn new(n_heads: usize, n_layers: usize) -> Self {
        Alibi { slopes: multipliers(n_heads), largest: (0..n_layers).map(|_| AtomicUsize::new(0)).collect() }
    }

    /// `[1, heads, q, k]`: layer `layer`'s bias for `q` queries (the last of `k` positions) as
    /// TL's table of the largest key length so far gives it (TL's `alibi[:, -q:, :k]`).
    pub fn layer_bias(&self, layer: usize, q: usize, k: usize, dev: &Device) -> Result<Tensor> {
        let size = self.largest.get(layer).map_or(k, |s| s.fetch_max(k, Ordering::Relaxed).max(k));
        bias(&self.slopes, size - q, q, k, dev)
    }
}

/// `[1, heads, q, k]`: the bias of the `q` queries at indices `first..first + q` on keys `0..k`.
pub fn bias(slopes: &[f32], first: usize, q: usize, k: usize, dev: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(slopes.len() * q * k);
    for &m in slopes {
        for i in 0..q {
            let row = (first + i) as i64;
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
        let full = bias(&m, 0, 7, 7, &Device::Cpu)?;
        let tail = bias(&m, 4, 3, 7, &Device::Cpu)?;
        let want: Vec<f32> = full.narrow(2, 4, 3)?.flatten_all()?.to_vec1()?;
        assert_eq!(tail.flatten_all()?.to_vec1::<f32>()?, want);
        Ok(())
    }

    /// After a longer run, a layer's unmasked biases sit lower by m · (largest − k), as TL's
    /// table kept at the largest length gives them; other layers are untouched.
    #[test]
    fn a_shorter_run_after_a_longer_one_takes_the_last_rows_of_the_larger_table() -> Result<()> {
        let a = Alibi::new(2, 2);
        let fresh: Vec<f32> = a.layer_bias(0, 3, 3, &Device::Cpu)?.flatten_all()?.to_vec1()?;
        a.layer_bias(0, 5, 5, &Device::Cpu)?;
        let later: Vec<f32> = a.layer_bias(0, 3, 3, &Device::Cpu)?.flatten_all()?.to_vec1()?;
        let other: Vec<f32> = a.layer_bias(1, 3, 3, &Device::Cpu)?.flatten_all()?.to_vec1()?;
        assert_eq!(other, fresh);
        // Head 0, query 0 (index 2 of the 5-row table): keys 0..3 at distances 2, 1, 0 → -2m.. 0.
        let m = a.slopes[0];
        assert_eq!(&later[..3], &[-2.0 * m, -m, 0.0]);
        assert_eq!(&fresh[..3], &[0.0, 0.0, 0.0]);
        Ok(())
    }
}
