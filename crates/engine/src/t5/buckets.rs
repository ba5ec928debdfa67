//! T5's relative position bias: HF's (and TL's) `_relative_position_bucket`, and the bias
//! `[1, n_heads, query, key]` block 0's embedding gives every layer of a stack.

use candle_core::Tensor;

use crate::error::Result;

/// The bucket of `relative = key_pos - query_pos`, computed as torch does (f32 logarithm,
/// truncated toward zero). `bidirectional`: the encoder's buckets (half for later keys); the
/// decoder's are unidirectional (later keys all share bucket 0, and are masked anyway).
/// `None` where torch's bucket is no embedding row (its `nn.Embedding` raises IndexError): a
/// `max_distance` at most the exact buckets' count makes the logarithmic buckets negative (or
/// 0/0, NaN) from some distance on.
pub fn bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> Option<usize> {
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
        return Some((out + rel) as usize);
    }
    let scale = ((max_distance as f64 / max_exact as f64).ln()) as f32;
    let large = (rel as f32 / max_exact as f32).ln() / scale * (n - max_exact) as f32;
    if !large.is_finite() || large.abs() >= 9.2e18 {
        return None; // torch: NaN, infinities and out-of-range floats as int64 are i64::MIN
    }
    usize::try_from(out + (max_exact + large as i64).min(n - 1)).ok()
}

/// `[1, n_heads, q_len, k_len]` for queries at positions `q_start..q_start + q_len` and keys at
/// `0..k_len`, from the embedding `rel: [num_buckets, n_heads]`.
pub fn bias(rel: &Tensor, q_start: usize, q_len: usize, k_len: usize, bidirectional: bool, max_distance: usize) -> Result<Tensor> {
    let (nb, h) = rel.dims2()?;
    let mut ids = Vec::with_capacity(q_len * k_len);
    for i in 0..q_len {
        let q = (q_start + i) as i64;
        for k in 0..k_len {
            let rel = k as i64 - q;
            let b = bucket(rel, bidirectional, nb, max_distance).ok_or_else(|| {
                crate::error::Error::unsupported(format!(
                    "relative position {rel} has no bucket with relative_attention_num_buckets {nb} and relative_attention_max_distance {max_distance} (torch's embedding raises IndexError there: the {} buckets need a max distance above {})",
                    if bidirectional { "encoder's bidirectional" } else { "decoder's unidirectional" },
                    if bidirectional { nb / 4 } else { nb / 2 }
                ))
            })?;
            ids.push(b as u32);
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
        let bi: Vec<usize> = (-20..=20).map(|r| bucket(r, true, 32, 128).unwrap()).collect();
        assert_eq!(&bi[..], &[10, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8, 7, 6, 5, 4, 3, 2, 1, 0, 17, 18, 19, 20, 21, 22, 23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 26][..]);
        let uni: Vec<usize> = (-20..=2).map(|r| bucket(r, false, 32, 128).unwrap()).collect();
        assert_eq!(&uni[..], &[17, 17, 16, 16, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0][..]);
    }

    /// A max distance at most the exact buckets' count: torch's buckets go negative (no row of
    /// the embedding: IndexError) or stay in range where torch's do.
    #[test]
    fn small_max_distance_as_torch() {
        // Printed by TL's T5Attention._relative_position_bucket(torch.arange(-40, 41), True, 32, 4),
        // (torch.arange(-12, 1), False, 16, 8) and (torch.arange(-40, 1), False, 32, 12).
        let cases: [(i64, bool, usize, usize, &[i64]); 3] = [
            (-40, true, 32, 4, &[-10, -10, -9, -9, -9, -9, -8, -8, -8, -7, -7, -6, -6, -6, -5, -5, -4, -4, -3, -3, -2, -1, -1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 5, 4, 3, 2, 1, 0, 17, 18, 19, 20, 21, 22, 23, 24, 23, 22, 21, 20, 19, 18, 17, 16, 16, 15, 15, 14, 13, 13, 12, 12, 11, 11, 10, 10, 10, 9, 9, 8, 8, 8, 7, 7, 7, 7, 6, 6]),
            (-12, false, 16, 8, &[i64::MIN, i64::MIN, i64::MIN, i64::MIN, i64::MIN, 7, 6, 5, 4, 3, 2, 1, 0]),
            (-40, false, 32, 12, &[-34, -33, -32, -30, -29, -27, -25, -24, -22, -20, -18, -17, -15, -13, -11, -8, -6, -4, -1, 1, 4, 7, 10, 13, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
        ];
        for (start, bi, nb, md, want) in cases {
            for (i, w) in want.iter().enumerate() {
                let r = start + i as i64;
                assert_eq!(bucket(r, bi, nb, md), usize::try_from(*w).ok(), "relative {r}, bidirectional {bi}, {nb} buckets, max distance {md}");
            }
        }
    }
}
