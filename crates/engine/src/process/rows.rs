//! The slice arithmetic of the in-place processing steps, on row-major f32 matrices.
//! f32 sums, as TL's (torch) reductions; the loops vectorise.

use crate::kernels::layer_norm::lanes_sum;

/// `w: [d_in, n]` reads a norm's output. In place: `b += Σ_i bias[i] · w[i, :]` (with the
/// unscaled rows), `w[i, :] *= scale[i]`, then with `center` every column is made mean-zero
/// over `i`. Lengths are the caller's to check (`scale`, `bias`: `d_in`; `b`: `n`).
pub fn fold_norm(w: &mut [f32], n: usize, scale: Option<&[f32]>, bias: Option<&[f32]>, b: &mut [f32], center: bool) {
    if n == 0 {
        return;
    }
    let d_in = w.len() / n;
    let mut bsum = vec![0f32; if bias.is_some() { n } else { 0 }];
    let mut colsum = vec![0f32; if center { n } else { 0 }];
    for (i, row) in w.chunks_exact_mut(n).enumerate() {
        if let Some(&c) = bias.and_then(|nb| nb.get(i)) {
            for (acc, &x) in bsum.iter_mut().zip(row.iter()) {
                *acc += c * x;
            }
        }
        if let Some(&s) = scale.and_then(|s| s.get(i)) {
            row.iter_mut().for_each(|x| *x *= s);
        }
        for (acc, &x) in colsum.iter_mut().zip(row.iter()) {
            *acc += x;
        }
    }
    for (bj, acc) in b.iter_mut().zip(&bsum) {
        *bj += acc;
    }
    if center && d_in > 0 {
        let mean: Vec<f32> = colsum.iter().map(|s| s / d_in as f32).collect();
        for row in w.chunks_exact_mut(n) {
            for (x, m) in row.iter_mut().zip(&mean) {
                *x -= m;
            }
        }
    }
}

/// Every row of `w` (rows of `n`) made mean-zero, in place.
pub fn center_rows(w: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    for row in w.chunks_exact_mut(n) {
        let mean = lanes_sum(row) / n as f32;
        row.iter_mut().for_each(|x| *x -= mean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_norm_matches_the_definition() {
        let (d, n) = (3, 4);
        let w0: Vec<f32> = (0..d * n).map(|i| (i as f32 * 0.37).sin()).collect();
        let (s, nb) = ([1.5f32, 0.5, 2.0], [0.1f32, -0.2, 0.3]);
        let mut w = w0.clone();
        let mut b = vec![1f32; n];
        fold_norm(&mut w, n, Some(&s), Some(&nb), &mut b, true);
        for j in 0..n {
            let fold: f32 = (0..d).map(|i| nb[i] * w0[i * n + j]).sum();
            assert!((b[j] - (1.0 + fold)).abs() < 1e-6);
            let mean: f32 = (0..d).map(|i| s[i] * w0[i * n + j]).sum::<f32>() / d as f32;
            for i in 0..d {
                assert!((w[i * n + j] - (s[i] * w0[i * n + j] - mean)).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn centred_rows_have_zero_mean() {
        let mut w: Vec<f32> = (0..12).map(|i| i as f32).collect();
        center_rows(&mut w, 4);
        assert_eq!(&w[..4], &[-1.5, -0.5, 0.5, 1.5]);
    }
}
