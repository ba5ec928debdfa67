//! Seeded random tensors: uniform and normal draws from the engine's xoshiro256** stream
//! (`generate::rng`). Only IEEE-exact operations (+, -, *, /, sqrt) touch the values, with a
//! logarithm built from them, so a seed gives the same bits on every platform.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::generate::rng::Rng;

/// Values are drawn in f64 and rounded once to a float dtype; integer dtypes are refused.
fn check_float(dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(format!("random tensors are floating point, got {dtype:?}")))
    }
}

fn finite(name: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(format!("{name} must be a finite number, got {v}")))
    }
}

/// The element count, refusing shapes whose product overflows.
fn elem_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::invalid(format!("shape {shape:?} has too many elements")))
}

fn build(values: Vec<f64>, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let t = Tensor::from_vec(values, shape, device)?;
    Ok(if dtype == DType::F64 { t } else { t.to_dtype(dtype)? })
}

/// `shape` filled with `low + (high - low) * u`, `u` uniform in `[0, 1)` with 53 random bits.
pub fn uniform(shape: &[usize], seed: u64, low: f64, high: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    check_float(dtype)?;
    let (low, high) = (finite("low", low)?, finite("high", high)?);
    if low > high {
        return Err(Error::invalid(format!("uniform needs low <= high, got low={low}, high={high}")));
    }
    let n = elem_count(shape)?;
    let mut rng = Rng::new(seed);
    let width = high - low;
    let values = (0..n).map(|_| low + width * rng.next_f64()).collect();
    build(values, shape, dtype, device)
}

/// `shape` filled with `mean + std * z`, `z` standard normal (Marsaglia's polar method).
pub fn normal(shape: &[usize], seed: u64, mean: f64, std: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    check_float(dtype)?;
    let (mean, std) = (finite("mean", mean)?, finite("std", std)?);
    if std < 0.0 {
        return Err(Error::invalid(format!("normal needs std >= 0, got {std}")));
    }
    let n = elem_count(shape)?;
    let mut rng = Rng::new(seed);
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        let (a, b) = polar_pair(&mut rng);
        values.push(mean + std * a);
        values.push(mean + std * b);
    }
    values.truncate(n);
    build(values, shape, dtype, device)
}

/// Two independent standard normal values.
fn polar_pair(rng: &mut Rng) -> (f64, f64) {
    loop {
        let u = 2.0 * rng.next_f64() - 1.0;
        let v = 2.0 * rng.next_f64() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            let m = (-2.0 * ln(s) / s).sqrt();
            return (u * m, v * m);
        }
    }
}

/// Natural log of a positive normal f64 from basic arithmetic only (no platform libm):
/// `x = m * 2^e` with `m` in `[sqrt(1/2), sqrt(2))`, `ln m = 2 atanh((m - 1) / (m + 1))` by its
/// series. Within a few ulps of the true value.
fn ln(x: f64) -> f64 {
    const MANTISSA: u64 = (1u64 << 52) - 1;
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & MANTISSA) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    // |t| <= 0.172, so t^2 <= 0.0295: 13 odd terms reach below 1e-19 of the sum.
    let mut term = t;
    let mut sum = 0.0;
    for k in 0..13 {
        sum += term / (2 * k + 1) as f64;
        term *= t2;
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f64> {
        t.flatten_all().and_then(|f| f.to_dtype(DType::F64)).and_then(|f| f.to_vec1::<f64>()).unwrap_or_default()
    }

    fn mean_std(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn ln_matches_libm() {
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let x = rng.next_f64() * 2f64.powi((rng.next_u64() % 120) as i32 - 100);
            if x > 0.0 {
                let (ours, libm) = (ln(x), x.ln());
                assert!((ours - libm).abs() <= 4.0 * f64::EPSILON * libm.abs().max(1.0), "ln({x}) = {ours}, libm {libm}");
            }
        }
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn uniform_and_normal_statistics() -> Result<()> {
        let u = values(&uniform(&[100_000], 11, -2.0, 3.0, DType::F64, &Device::Cpu)?);
        assert!(u.iter().all(|&x| (-2.0..3.0).contains(&x)));
        let (m, s) = mean_std(&u);
        assert!((m - 0.5).abs() < 0.03 && (s - 5.0 / 12f64.sqrt()).abs() < 0.02, "uniform mean {m} std {s}");
        let z = values(&normal(&[100_001], 11, 1.0, 2.0, DType::F64, &Device::Cpu)?);
        assert_eq!(z.len(), 100_001);
        let (m, s) = mean_std(&z);
        assert!((m - 1.0).abs() < 0.03 && (s - 2.0).abs() < 0.03, "normal mean {m} std {s}");
        Ok(())
    }

    #[test]
    fn seeds_reproduce_and_errors_are_coded() -> Result<()> {
        let a = values(&normal(&[7, 3], 5, 0.0, 1.0, DType::F32, &Device::Cpu)?);
        let b = values(&normal(&[7, 3], 5, 0.0, 1.0, DType::F32, &Device::Cpu)?);
        let c = values(&normal(&[7, 3], 6, 0.0, 1.0, DType::F32, &Device::Cpu)?);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let code = |r: Result<Tensor>| r.err().map(|e| e.code);
        assert_eq!(code(uniform(&[2], 0, 0.0, 1.0, DType::I64, &Device::Cpu)), Some(crate::ErrorCode::DType));
        assert_eq!(code(uniform(&[2], 0, 1.0, 0.0, DType::F32, &Device::Cpu)), Some(crate::ErrorCode::InvalidArgument));
        assert_eq!(code(normal(&[2], 0, 0.0, -1.0, DType::F32, &Device::Cpu)), Some(crate::ErrorCode::InvalidArgument));
        assert_eq!(code(normal(&[2], 0, f64::NAN, 1.0, DType::F32, &Device::Cpu)), Some(crate::ErrorCode::InvalidArgument));
        assert_eq!(code(uniform(&[usize::MAX, 3], 0, 0.0, 1.0, DType::F32, &Device::Cpu)), Some(crate::ErrorCode::InvalidArgument));
        Ok(())
    }
}
