//! Exact GELU (TL's `gelu`, torch's `F.gelu` / `nn.GELU()`): `0.5 x (1 + erf(x / √2))`, with a
//! vectorisable erf (Abramowitz–Stegun 7.1.26 on the shared `exp_neg`; GELU within 1e-6 of the
//! f64 formula) run on both cores, instead of candle's scalar erf.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::gelu::{exp_neg, map_par};
use super::{f32_slice, not_supported};

#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - p * exp_neg(-a * a)).copysign(x)
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "tl-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("gelu") };
        Ok((CpuStorage::F32(map_par(src, |_, x| gelu(x))?), l.shape().clone()))
    }
}

/// The fused kernel for contiguous f32 on the CPU outside autograd graphs, else candle's
/// `gelu_erf`.
pub fn gelu_erf_tensor(x: &Tensor) -> Result<Tensor> {
    if super::is_cpu_f32(x) && !x.track_op() {
        x.apply_op1_no_bwd(&GeluErf)
    } else {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_erf_formula() {
        let mut worst = 0f64;
        for i in -20000..20000 {
            let x = i as f64 * 0.001;
            let want = 0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2));
            worst = worst.max((gelu(x as f32) as f64 - want).abs());
        }
        assert!(worst < 1e-6, "max abs error {worst}");
        for x in [-1e30f32, -100.0, 100.0, 1e30] {
            assert!(gelu(x).is_finite());
        }
        assert_eq!(gelu(0.0), 0.0);
        let t = Tensor::new(&[[-3f32, -0.5, 0.0, 0.7, 4.0]], &candle_core::Device::Cpu).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (gelu_erf_tensor(&t).unwrap().flatten_all().unwrap().to_vec1().unwrap(), t.gelu_erf().unwrap().flatten_all().unwrap().to_vec1().unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    }

    /// erf in f64: a Taylor series below 4 (exact to ~1e-9 there), ±1 beyond (1 - erf(4) < 2e-8).
    fn libm_erf(x: f64) -> f64 {
        if x.abs() >= 4.0 {
            return x.signum();
        }
        // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)), summed until the terms vanish.
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }
}
