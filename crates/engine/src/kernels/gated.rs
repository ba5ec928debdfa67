//! The gated MLP's elementwise step (TL's `GatedMLP`: `act(pre) * pre_linear + b_in`) in one
//! pass for SiLU (Llama, Mistral, Qwen), where candle would make three buffers; in a gradient
//! run (f32) the same op is one autograd node whose backward is one pass per input, where candle's silu, mul and add
//! make three nodes and about a dozen passes. Other activations, devices and dtypes take the
//! candle ops.

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

    /// In a gradient run (f32): the gate and the linear input get their gradients in one pass
    /// each, the bias its row sum only when it is trainable.
    fn bwd(&self, gate: &Tensor, lin: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let d_gate = g.apply_op3_no_bwd(gate, lin, &SiluGateGrad { wrt_gate: true })?;
        let d_lin = g.apply_op3_no_bwd(gate, lin, &SiluGateGrad { wrt_gate: false })?;
        let d_b = if b.track_op() { Some(super::row_ops::sum_rows(&g)?) } else { None };
        Ok((Some(d_gate), Some(d_lin), d_b))
    }
}

/// The gradient of `silu(gate) * lin` from the output's `g`: `g · lin · silu'(gate)` for the
/// gate, `g · silu(gate)` for `lin` (torch's silu backward: `σ(x) · (1 + x · (1 − σ(x)))`).
struct SiluGateGrad {
    wrt_gate: bool,
}

impl CustomOp3 for SiluGateGrad {
    fn name(&self) -> &'static str {
        "tl-silu-mul-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(g), Some(gate), Some(lin)) = (f32_slice(s1, l1), f32_slice(s2, l2), f32_slice(s3, l3)) else { return not_supported("silu_mul_add backward") };
        if g.len() != gate.len() || g.len() != lin.len() {
            candle_core::bail!("silu_mul_add backward: {} gradients for {} gates and {} linear values", g.len(), gate.len(), lin.len())
        }
        let d = *l1.dims().last().unwrap_or(&1);
        let mut out = vec![0f32; g.len()];
        let wrt_gate = self.wrt_gate;
        par_rows(&mut out, d.max(1), |part, first| {
            let off = first * d;
            for (i, o) in part.iter_mut().enumerate() {
                let x = gate[off + i];
                let sig = 1.0 / (1.0 + (-x).exp());
                *o = if wrt_gate { g[off + i] * lin[off + i] * (sig * (1.0 + x * (1.0 - sig))) } else { g[off + i] * (x * sig) };
            }
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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

/// `silu(gate) * lin + b` (b over the last dim) when all are contiguous f32 on the CPU (one
/// autograd node with a fused backward when any of them is in a graph), or all the same 16-bit
/// dtype outside autograd (computed in f32, rounded once); None: the caller uses candle ops.
pub fn silu_mul_add(gate: &Tensor, lin: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    if gate.dims() != lin.dims() || b.rank() != 1 || gate.dims().last() != Some(&b.dim(0)?) {
        return Ok(None);
    }
    let all = |f: &dyn Fn(&Tensor) -> bool| f(gate) && f(lin) && f(b);
    if all(&|t: &Tensor| super::is_cpu_f32(t)) {
        return Ok(Some(if all(&|t: &Tensor| !t.track_op()) {
            gate.apply_op3_no_bwd(lin, b, &SiluMulAdd)?
        } else {
            gate.apply_op3(lin, b, SiluMulAdd)?
        }));
    }
    let same = gate.dtype() == lin.dtype() && gate.dtype() == b.dtype();
    if !(same && all(&super::half16::is_plain_cpu_16)) {
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

    #[test]
    fn gradient_run_matches_the_candle_ops() {
        use crate::kernels::testing::grad_gap;
        use candle_core::Var;
        let dev = Device::Cpu;
        let g = Var::from_tensor(&Tensor::randn(0f32, 3.0, (2, 7, 130), &dev).unwrap()).unwrap();
        let l = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 7, 130), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 130, &dev).unwrap()).unwrap();
        let coef = Tensor::randn(0f32, 1.0, (2, 7, 130), &dev).unwrap();
        let ours = silu_mul_add(g.as_tensor(), l.as_tensor(), b.as_tensor()).unwrap().expect("fusable");
        let theirs = (g.as_tensor().silu().unwrap() * l.as_tensor()).unwrap().broadcast_add(b.as_tensor()).unwrap();
        let value_gap = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(value_gap < 1e-5, "{value_gap}");
        for (name, wrt) in [("gate", &g), ("linear", &l), ("bias", &b)] {
            let gap = grad_gap(&ours, &theirs, &coef, wrt.as_tensor()).unwrap();
            assert!(gap < 1e-4, "{name}: {gap}");
        }
        // A constant bias gets no gradient; the inputs still do.
        let c = Tensor::randn(0f32, 1.0, 130, &dev).unwrap();
        let y = silu_mul_add(g.as_tensor(), l.as_tensor(), &c).unwrap().expect("fusable");
        let grads = (y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&c).is_none() && grads.get(g.as_tensor()).is_some() && grads.get(l.as_tensor()).is_some());
        // Nothing tracked: the same op, outside any graph.
        assert!(!silu_mul_add(&coef, &coef, &c).unwrap().expect("fusable").track_op());
    }
}
