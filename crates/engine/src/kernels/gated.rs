//! The gated MLP's elementwise step (TL's `GatedMLP`: `act(pre) * pre_linear + b_in`) in one
//! pass for SiLU (Llama, Mistral, Qwen), where candle would make three buffers; other
//! activations, devices, dtypes and gradient runs take the candle ops.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported, par_rows};

struct SiluMulAdd;

impl CustomOp3 for SiluMulAdd {
    fn name(&self) -> &'static str {
        "tl-silu-mul-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let wide = |s, l| super::half16::widen(s, l);
        if let (Some((gate, dtype)), Some((lin, _)), Some((b, _))) = (wide(s1, l1), wide(s2, l2), wide(s3, l3)) {
            return Ok((super::half16::narrow(&silu_mul_add_f32(&gate, &lin, &b)?, dtype), l1.shape().clone()));
        }
        let (Some(gate), Some(lin), Some(b)) = (f32_slice(s1, l1), f32_slice(s2, l2), f32_slice(s3, l3)) else { return not_supported("silu_mul_add") };
        Ok((CpuStorage::F32(silu_mul_add_f32(gate, lin, b)?), l1.shape().clone()))
    }
}

fn silu_mul_add_f32(gate: &[f32], lin: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let d = b.len();
    if gate.len() != lin.len() || d == 0 || !gate.len().is_multiple_of(d) {
        candle_core::bail!("silu_mul_add: {} gates, {} linear values, {d} biases", gate.len(), lin.len())
    }
    let mut out = vec![0f32; gate.len()];
    par_rows(&mut out, d, |part, first| {
        let off = first * d;
        for (i, o) in part.iter_mut().enumerate() {
            let g = gate[off + i];
            // torch's silu: x / (1 + e^-x); then `* pre_linear + b_in` as TL.
            *o = g / (1.0 + (-g).exp()) * lin[off + i] + b[(off + i) % d];
        }
    })?;
    Ok(out)
}

/// `silu(gate) * lin + b` (b over the last dim) when all are contiguous f32 on the CPU, or all
/// the same 16-bit dtype (computed in f32, rounded once), and none is in an autograd graph;
/// None: the caller uses candle ops.
pub fn silu_mul_add(gate: &Tensor, lin: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    let f32_plain = |t: &Tensor| super::is_cpu_f32(t) && !t.track_op();
    let all = |f: &dyn Fn(&Tensor) -> bool| f(gate) && f(lin) && f(b);
    let same = gate.dtype() == lin.dtype() && gate.dtype() == b.dtype();
    if !(all(&f32_plain) || (same && all(&super::half16::is_plain_cpu_16))) || gate.dims() != lin.dims() || b.rank() != 1 {
        return Ok(None);
    }
    Ok(Some(gate.apply_op3_no_bwd(lin, b, &SiluMulAdd)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_candle_ops() {
        let g = Tensor::randn(0f32, 3.0, (2, 300, 130), &Device::Cpu).unwrap();
        let l = Tensor::randn(0f32, 1.0, (2, 300, 130), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 1.0, 130, &Device::Cpu).unwrap();
        let fused = silu_mul_add(&g, &l, &b).unwrap().expect("fusable");
        let ops = (g.silu().unwrap() * &l).unwrap().broadcast_add(&b).unwrap();
        let gap = (fused - ops).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(gap < 1e-5, "{gap}");
        // 16-bit: the f32 result rounded once.
        let h = |t: &Tensor| t.to_dtype(candle_core::DType::BF16).unwrap();
        let half = silu_mul_add(&h(&g), &h(&l), &h(&b)).unwrap().expect("fusable");
        let f32_of = |t: &Tensor| t.to_dtype(candle_core::DType::F32).unwrap();
        let want = h(&silu_mul_add(&f32_of(&h(&g)), &f32_of(&h(&l)), &f32_of(&h(&b))).unwrap().unwrap());
        assert_eq!(f32_of(&half).flatten_all().unwrap().to_vec1::<f32>().unwrap(), f32_of(&want).flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
}
