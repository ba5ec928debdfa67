//! `gelu_new` (TL's `gelu_new` / `gelu_fast` / `gelu_pytorch_tanh`):
//! `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))` with a vectorisable tanh (absolute error
//! below 2e-7), instead of libm's scalar `tanhf`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported, par_rows};

/// `e^x` for x ≤ 0 (Cephes-style range reduction and a degree-6 polynomial), branch-free so
/// the loop vectorises.
#[inline(always)]
pub(super) fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_452 + r * 0.001_388_89)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

#[inline(always)]
fn tanh_fast(x: f32) -> f32 {
    let t = exp_neg(-2.0 * x.abs());
    let y = (1.0 - t) / (1.0 + t);
    y.copysign(x)
}

const C: f32 = 0.797_884_6; // sqrt(2/π)
const A: f32 = 0.044_715;

#[inline(always)]
fn gelu_new(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh_fast(C * (x + A * x * x * x)))
}

/// d gelu_new / dx = ½(1 + t) + ½ x (1 - t²) C (1 + 3 A x²), t = tanh(C (x + A x³)).
#[inline(always)]
fn gelu_new_slope(x: f32) -> f32 {
    let t = tanh_fast(C * (x + A * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * A * x * x)
}

/// `part[i] = f(first + i, src[i])`.
#[inline(always)]
fn fill(part: &mut [f32], src: &[f32], first: usize, f: &impl Fn(usize, f32) -> f32) {
    for (i, (y, &x)) in part.iter_mut().zip(src).enumerate() {
        *y = f(first + i, x);
    }
}

/// [`fill`] compiled for AVX2, where [`exp_neg`]'s `round` is a vector instruction: for the
/// x86-64 baseline (SSE2) it is a call to libm's `roundf` per element, which keeps the loop
/// scalar (a third of a GELU's time at a decode step). Same operations, same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(part: &mut [f32], src: &[f32], first: usize, f: &impl Fn(usize, f32) -> f32) {
    fill(part, src, first, f)
}

/// `dst[i] = f(src[i])` on both cores for large inputs.
pub(super) fn map_par(src: &[f32], f: impl Fn(usize, f32) -> f32 + Sync) -> Result<Vec<f32>> {
    let mut dst = vec![0f32; src.len()];
    par_rows(&mut dst, 1, |part, first| {
        let src = &src[first..];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { fill_avx2(part, src, first, &f) };
        }
        fill(part, src, first, &f)
    })?;
    Ok(dst)
}

struct GeluNew;

impl CustomOp1 for GeluNew {
    fn name(&self) -> &'static str {
        "tl-gelu-new"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if let Some((src, dtype)) = super::half16::widen(s, l) {
            return Ok((super::half16::narrow(&map_par(&src, |_, x| gelu_new(x))?, dtype), l.shape().clone()));
        }
        let Some(src) = f32_slice(s, l) else { return not_supported("gelu_new") };
        Ok((CpuStorage::F32(map_par(src, |_, x| gelu_new(x))?), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluNewGrad)?))
    }
}

/// `grad · gelu_new'(x)` for the backward of [`GeluNew`] (both contiguous f32).
struct GeluNewGrad;

impl CustomOp2 for GeluNewGrad {
    fn name(&self) -> &'static str {
        "tl-gelu-new-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(x), Some(g)) = (f32_slice(s1, l1), f32_slice(s2, l2)) else { return not_supported("gelu_new grad") };
        if x.len() != g.len() {
            candle_core::bail!("gelu_new grad: {} inputs and {} gradients", x.len(), g.len())
        }
        Ok((CpuStorage::F32(map_par(x, |i, x| g[i] * gelu_new_slope(x))?), l1.shape().clone()))
    }
}

/// The fused kernel for contiguous f32 on the CPU (with a fused backward when `x` is in an
/// autograd graph: candle records a custom op only then) and for 16-bit outside autograd
/// (computed in f32, rounded once), else candle's `gelu` (the same formula, differentiable).
pub fn gelu_new_tensor(x: &Tensor) -> Result<Tensor> {
    if super::is_cpu_f32(x) {
        x.apply_op1(GeluNew)
    } else if super::half16::is_plain_cpu_16(x) {
        x.apply_op1_no_bwd(&GeluNew)
    } else {
        x.gelu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_tanh_formula() {
        let mut worst = 0f64;
        for i in -20000..20000 {
            let x = i as f32 * 0.001;
            let want = 0.5 * x as f64 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x as f64 + 0.044715 * (x as f64).powi(3))).tanh());
            worst = worst.max((gelu_new(x) as f64 - want).abs());
        }
        assert!(worst < 5e-6, "max abs error {worst}");
        for x in [-1e30f32, -100.0, 100.0, 1e30] {
            assert!(gelu_new(x).is_finite());
        }
        assert_eq!(gelu_new(0.0), 0.0);
    }

    #[test]
    fn sixteen_bit_input_is_the_f32_result_rounded_once() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (3, 700), &dev)?;
        for dtype in [candle_core::DType::BF16, candle_core::DType::F16] {
            let h = x.to_dtype(dtype)?;
            let got = gelu_new_tensor(&h)?;
            assert_eq!(got.dtype(), dtype);
            let want = gelu_new_tensor(&h.to_dtype(candle_core::DType::F32)?)?.to_dtype(dtype)?;
            let (g, w) = (got.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?, want.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
            assert_eq!(g, w);
        }
        Ok(())
    }

    #[test]
    fn backward_is_the_exact_slope() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 / 500.0).collect();
        let x = candle_core::Var::from_vec(xs.clone(), 8000, &dev)?;
        let coef: Vec<f32> = (0..8000).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let grads = (gelu_new_tensor(x.as_tensor())? * Tensor::new(coef.as_slice(), &dev)?)?.sum_all()?.backward()?;
        let got = grads.get(x.as_tensor()).expect("grad").to_vec1::<f32>()?;
        let mut worst = 0f64;
        for ((&x, &c), &g) in xs.iter().zip(&coef).zip(&got) {
            let (x, c) = (x as f64, c as f64);
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let t = (k * (x + 0.044715 * x.powi(3))).tanh();
            let slope = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
            worst = worst.max((g as f64 - c * slope).abs() / c.abs().max(1.0));
        }
        assert!(worst < 2e-6, "max error {worst}");
        Ok(())
    }
}
