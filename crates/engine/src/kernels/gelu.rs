//! `gelu_new` (TL's `gelu_new` / `gelu_fast` / `gelu_pytorch_tanh`):
//! `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))` with a vectorisable tanh (absolute error
//! below 2e-7), instead of libm's scalar `tanhf`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported};

/// `e^x` for x ≤ 0 (Cephes-style range reduction and a degree-6 polynomial), branch-free so
/// the loop vectorises.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
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

#[inline(always)]
fn gelu_new(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/π)
    0.5 * x * (1.0 + tanh_fast(C * (x + 0.044_715 * x * x * x)))
}

struct GeluNew;

impl CustomOp1 for GeluNew {
    fn name(&self) -> &'static str {
        "tl-gelu-new"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("gelu_new") };
        let dst: Vec<f32> = src.iter().map(|&x| gelu_new(x)).collect();
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// The fused kernel for contiguous f32 on the CPU, else candle's `gelu`.
pub fn gelu_new_tensor(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.is_contiguous() {
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
}
