//! TL's `sample_logits`: temperature, frequency penalty, top-k or top-p, then a categorical
//! draw; temperature 0 is greedy.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::generate::rng::Rng;

#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub freq_penalty: f64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { temperature: 1.0, top_k: None, top_p: None, freq_penalty: 0.0 }
    }
}

impl SampleOptions {
    pub fn validate(&self) -> Result<()> {
        if self.temperature.is_nan() || self.temperature < 0.0 {
            return Err(Error::invalid(format!("temperature must be >= 0, got {}", self.temperature)));
        }
        if self.top_k == Some(0) {
            return Err(Error::invalid("top_k has to be greater than 0"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::invalid(format!("top_p has to be in (0, 1], got {p}")));
            }
        }
        Ok(())
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] || (row[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

/// One row: logits → a token id. `history` holds the tokens seen so far (for the frequency
/// penalty).
pub fn sample_row(logits: &[f32], history: &[i64], o: &SampleOptions, rng: &mut Rng) -> usize {
    if o.temperature == 0.0 {
        return argmax(logits);
    }
    let v = logits.len();
    let mut x: Vec<f64> = logits.iter().map(|&l| l as f64 / o.temperature).collect();
    if o.freq_penalty > 0.0 {
        for &t in history {
            if t >= 0 && (t as usize) < v {
                x[t as usize] -= o.freq_penalty;
            }
        }
    }
    if let Some(k) = o.top_k {
        if k < v {
            let mut sorted = x.clone();
            let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            let kth = *kth;
            x.iter_mut().filter(|l| **l < kth).for_each(|l| *l = f64::NEG_INFINITY);
        }
    } else if let Some(p) = o.top_p {
        let mut order: Vec<usize> = (0..v).collect();
        order.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
        let max = x[order[0]];
        let total: f64 = x.iter().map(|l| (l - max).exp()).sum();
        let mut cum = 0.0;
        let mut drop_rest = false;
        for &i in &order {
            // TL removes a token when the mass before it already exceeds top_p.
            if drop_rest {
                x[i] = f64::NEG_INFINITY;
                continue;
            }
            cum += (x[i] - max).exp() / total;
            if cum > p {
                drop_rest = true;
            }
        }
    }
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY || max.is_nan() {
        return argmax(logits);
    }
    let weights: Vec<f64> = x.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.next_f64() * total;
    let mut last = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            last = i;
            if u < *w {
                return i;
            }
            u -= w;
        }
    }
    last
}

/// A batch: `logits [batch, vocab]` → `[batch]` i64. `do_sample` false is argmax.
pub fn sample_logits(
    logits: &Tensor,
    history: Option<&[Vec<i64>]>,
    do_sample: bool,
    o: &SampleOptions,
    rng: &mut Rng,
) -> Result<Vec<i64>> {
    let (b, _) = logits.dims2().map_err(|_| Error::shape(format!("logits must be [batch, d_vocab], got {:?}", logits.dims())))?;
    if !do_sample {
        return Ok(logits.argmax(1)?.to_dtype(DType::I64)?.to_vec1()?);
    }
    o.validate()?;
    if o.freq_penalty > 0.0 && history.is_none() {
        return Err(Error::invalid("a frequency penalty needs the tokens seen so far"));
    }
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    let empty: Vec<i64> = Vec::new();
    Ok((0..b)
        .map(|i| {
            let h = history.and_then(|h| h.get(i)).unwrap_or(&empty);
            sample_row(&rows[i], h, o, rng) as i64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [0.0f32, 3.0, 1.0, 2.9, -1.0];
        let mut rng = Rng::new(1);
        let k2 = SampleOptions { top_k: Some(2), ..Default::default() };
        for _ in 0..500 {
            let t = sample_row(&logits, &[], &k2, &mut rng);
            assert!(t == 1 || t == 3, "top_k 2 drew {t}");
        }
        // probabilities ~ [0.02, 0.47, 0.06, 0.43, 0.01]: top_p 0.5 keeps 1 and 3.
        let p = SampleOptions { top_p: Some(0.5), ..Default::default() };
        for _ in 0..500 {
            let t = sample_row(&logits, &[], &p, &mut rng);
            assert!(t == 1 || t == 3, "top_p 0.5 drew {t}");
        }
        let greedy = SampleOptions { temperature: 0.0, ..Default::default() };
        assert_eq!(sample_row(&logits, &[], &greedy, &mut rng), 1);
    }

    #[test]
    fn frequency_penalty_moves_mass_away() {
        let logits = [5.0f32, 5.0];
        let o = SampleOptions { freq_penalty: 10.0, ..Default::default() };
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            assert_eq!(sample_row(&logits, &[0, 0], &o, &mut rng), 1);
        }
    }

    #[test]
    fn draws_follow_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()];
        let mut rng = Rng::new(11);
        let n = 20000;
        let ones = (0..n).filter(|_| sample_row(&logits, &[], &SampleOptions::default(), &mut rng) == 1).count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "P(1) = {frac}");
    }
}
