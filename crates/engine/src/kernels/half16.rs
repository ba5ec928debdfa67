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

/// The elements of an f32, bf16 or f16 CPU tensor as f32, in row-major order: an activation
/// row, a bias or a norm's weight (a plain widening loop over its storage where it is
/// contiguous, where candle's `to_dtype` would run an op and allocate a tensor first).
pub fn f32_elements(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    {
        let (st, l) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((a, b))) = (&*st, l.contiguous_offsets()) {
            match cpu {
                CpuStorage::F32(v) => return Ok(v[a..b].to_vec()),
                // A shift, as `bf16::to_f32` but for a NaN's quiet bit (so that it vectorises).
                CpuStorage::BF16(v) => return Ok(v[a..b].iter().map(|h| f32::from_bits((h.to_bits() as u32) << 16)).collect()),
                CpuStorage::F16(v) => {
                    let mut out = vec![0f32; b - a];
                    v[a..b].convert_to_f32_slice(&mut out);
                    return Ok(out);
                }
                _ => {}
            }
        }
    }
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// `src` rounded to bf16 (to nearest even; a NaN stays a quiet NaN), bit for bit as
/// `bf16::from_f32`, whose branches keep the compiler from vectorising a loop of it.
pub fn narrow_bf16(src: &[f32]) -> Vec<bf16> {
    src.iter()
        .map(|&v| {
            let x = v.to_bits();
            let rounded = (x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16;
            let nan = ((x >> 16) | 0x40) as u16;
            bf16::from_bits(if x & 0x7fff_ffff > 0x7f80_0000 { nan } else { rounded })
        })
        .collect()
}

/// `v` rounded to `dtype` (bf16 or f16; anything else stays f32).
pub fn narrow(v: &[f32], dtype: DType) -> CpuStorage {
    match dtype {
        DType::BF16 => CpuStorage::BF16(narrow_bf16(v)),
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

    #[test]
    fn narrow_bf16_is_bf16_from_f32_bit_for_bit() {
        // Every fifth f32 bit pattern (every class: zeros, subnormals, ties, the overflow to
        // infinity, infinities, quiet and signalling NaNs of both signs), plus the edges.
        let edges = [0u32, 0x8000_0000, 0x7f7f_ffff, 0x7f7f_8000, 0x7f80_0000, 0x7f80_0001, 0x7fc0_0000, 0xff80_0001, 0x0000_8000, 0x0001_8000, 0xffff_ffff];
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut bits = (0..=u32::MAX).step_by(5).chain(edges).peekable();
        while bits.peek().is_some() {
            chunk.clear();
            chunk.extend(bits.by_ref().take(1 << 20).map(f32::from_bits));
            for (got, &x) in narrow_bf16(&chunk).iter().zip(&chunk) {
                assert_eq!(got.to_bits(), bf16::from_f32(x).to_bits(), "{:#x}", x.to_bits());
            }
        }
    }
}
