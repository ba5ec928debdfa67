//! 16-bit (bf16 / f16) operands of the fused elementwise kernels: widened to f32, computed as
//! the f32 kernel does, rounded once to the dtype (round to nearest even), as torch's CPU
//! kernels for 16-bit tensors compute each op in f32 and round its result.

use candle_core::{CpuStorage, DType, Layout, Tensor};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Whether `t` is a contiguous bf16 or f16 CPU tensor outside autograd.
pub fn is_plain_cpu_16(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::BF16 | DType::F16) && t.is_contiguous() && !t.track_op()
}

/// The contiguous 16-bit elements of `s` as f32, with their dtype; None for other storage.
pub fn widen(s: &CpuStorage, l: &Layout) -> Option<(Vec<f32>, DType)> {
    let (a, b) = l.contiguous_offsets()?;
    match s {
        CpuStorage::BF16(v) => {
            let mut out = vec![0f32; b - a];
            v[a..b].convert_to_f32_slice(&mut out);
            Some((out, DType::BF16))
        }
        CpuStorage::F16(v) => {
            let mut out = vec![0f32; b - a];
            v[a..b].convert_to_f32_slice(&mut out);
            Some((out, DType::F16))
        }
        _ => None,
    }
}

/// `v` rounded to `dtype` (bf16 or f16; anything else stays f32).
pub fn narrow(v: &[f32], dtype: DType) -> CpuStorage {
    match dtype {
        DType::BF16 => {
            let mut out = vec![bf16::ZERO; v.len()];
            out.convert_from_f32_slice(v);
            CpuStorage::BF16(out)
        }
        DType::F16 => {
            let mut out = vec![f16::ZERO; v.len()];
            out.convert_from_f32_slice(v);
            CpuStorage::F16(out)
        }
        _ => CpuStorage::F32(v.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn widen_then_narrow_is_the_identity_and_rounds_to_nearest_even() -> candle_core::Result<()> {
        let t = Tensor::randn(0f32, 3.0, 1000, &Device::Cpu)?;
        for dtype in [DType::BF16, DType::F16] {
            let h = t.to_dtype(dtype)?;
            let (st, l) = h.storage_and_layout();
            let candle_core::Storage::Cpu(cpu) = &*st else { panic!("cpu") };
            let (wide, dt) = widen(cpu, l).expect("16-bit");
            assert_eq!(dt, dtype);
            let back: Vec<f32> = match narrow(&wide, dtype) {
                CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
                CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
                _ => panic!("not 16-bit"),
            };
            assert_eq!(back, h.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        }
        // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one (1.0).
        let CpuStorage::BF16(v) = narrow(&[1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)], DType::BF16) else { panic!() };
        assert_eq!(v.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), [1.0, 1.0 + 2f32.powi(-6)]);
        Ok(())
    }
}
