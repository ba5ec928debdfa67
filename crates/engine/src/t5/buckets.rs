//! T5's relative position bias: HF's (and TL's) `_relative_position_bucket`, and the bias
//! `[1, n_heads, query, key]` block 0's embedding gives every layer of a stack.

use candle_core::Tensor;

use crate::error::Result;

/// The bucket of `relative = key_pos - query_pos`, computed as torch does (f32 logarithm,
/// truncated toward zero). `bidirectional`: the encoder's buckets (half for later keys); the
/// decoder's are unidirectional (later keys all share bucket 0, and are masked anyway).
pub fn bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> usize {
    let mut n = num_buckets as i64;
    let mut out = 0i64;
    let rel = if bidirectional {
        n /= 2;
        if relative > 0 {
            out += n;
        }
        relative.abs()
    } else {
        -relative.min(0)
    };
    let max_exact = n / 2;
    if rel < max_exact {
        return (out + rel) as usize;
    }
    let scale = ((max_distance as f64 / max_exact as f64).ln()) as f32;
    let large = ((rel as f32 / max_exact as f32).ln() / scale * (n - max_exact) as f32) as i64;
    (out + (max_exact + large).min(n - 1)) as usize
}

/// `[1, n_heads, q_len, k_len]` for queries at positions `q_start..q_start + q_len` and keys at
/// `0..k_len`, from the embedding `rel: [num_buckets, n_heads]`.
pub fn bias(rel: &Tensor, q_start: usize, q_len: usize, k_len: usize, bidirectional: bool, max_distance: usize) -> Result<Tensor> {
    let (nb, h) = rel.dims2()?;
    let mut ids = Vec::with_capacity(q_len * k_len);
    for i in 0..q_len {
        let q = (q_start + i) as i64;
        for k in 0..k_len {
            ids.push(bucket(k as i64 - q, bidirectional, nb, max_distance) as u32);
        }
    }
    let ids = Tensor::from_vec(ids, q_len * k_len, rel.device())?;
    let b = rel.index_select(&ids, 0)?.reshape((q_len, k_len, h))?.permute((2, 0, 1))?.contiguous()?;
    Ok(b.unsqueeze(0)?)
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_as_hf() {
        // Printed by TL's T5Attention._relative_position_bucket(torch.arange(-20, 21), True, 32, 128)
        // and (torch.arange(-20, 3), False, 32, 128) in the reference env.
        let bi: Vec<usize> = (-20..=20).map(|r| bucket(r, true, 32, 128)).collect();
        assert_eq!(&bi[..], &[10, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8, 7, 6, 5, 4, 3, 2, 1, 0, 17, 18, 19, 20, 21, 22, 23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 26][..]);
        let uni: Vec<usize> = (-20..=2).map(|r| bucket(r, false, 32, 128)).collect();
        assert_eq!(&uni[..], &[17, 17, 16, 16, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0][..]);
    }
}
