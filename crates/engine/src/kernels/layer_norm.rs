//! TL's LayerNorm arithmetic in one pass per row: centre, `scale = sqrt(mean(c²) + eps)`,
//! `c / scale` (then `* w + b` when given). Two-pass centring, as TL, not `E[x²] - mean²`.
//! RMSNorm is the same pass without the centring and the bias.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};

use super::{f32_slice, not_supported, par_rows};

struct LayerNormPre {
    eps: f32,
    /// Subtract the row mean first (LayerNorm) or not (RMSNorm).
    center: bool,
    /// Weight and bias (contiguous, length d) for an un-folded LayerNorm (RMSNorm: no bias).
    affine: Option<(Vec<f32>, Option<Vec<f32>>)>,
}

pub(crate) fn lanes_sum(v: &[f32]) -> f32 {
    // Eight independent partial sums: the loop vectorises, and every path uses this order.
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

fn row_mean(x: &[f32]) -> f32 {
    lanes_sum(x) / x.len() as f32
}

/// `sqrt(mean(c²) + eps)` of a centred row.
fn row_scale(c: &[f32], eps: f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = c.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for i in 0..8 {
            acc[i] += ch[i] * ch[i];
        }
    }
    let sq = acc.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>();
    (sq / c.len() as f32 + eps).sqrt()
}

fn rows(l: &Layout) -> usize {
    *l.shape().dims().last().unwrap_or(&1)
}

impl LayerNormPre {
    /// The rows of `src` (each `d` long) normalised, in f32.
    fn normalize(&self, src: &[f32], d: usize) -> Vec<f32> {
        let mut dst = vec![0f32; src.len()];
        if d == 0 {
            return dst;
        }
        for (x, y) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
            let mean = if self.center { row_mean(x) } else { 0.0 };
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = xi - mean;
            }
            // The same operations, in the same order, as the hooked path (centre, scale, divide,
            // then `* w + b`), so a hook that changes nothing changes no bit.
            let scale = row_scale(y, self.eps);
            match &self.affine {
                None => y.iter_mut().for_each(|c| *c /= scale),
                Some((w, Some(b))) => {
                    for ((c, wi), bi) in y.iter_mut().zip(w).zip(b) {
                        *c = *c / scale * wi + bi;
                    }
                }
                Some((w, None)) => {
                    for (c, wi) in y.iter_mut().zip(w) {
                        *c = *c / scale * wi;
                    }
                }
            }
        }
        dst
    }
}

impl CustomOp1 for LayerNormPre {
    fn name(&self) -> &'static str {
        "tl-layer-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        // 16-bit input (LayerNorm only, outside autograd): computed in f32, rounded once.
        if let Some((src, dtype)) = super::half16::widen(s, l) {
            return Ok((super::half16::narrow(&self.normalize(&src, rows(l)), dtype), l.shape().clone()));
        }
        let Some(src) = f32_slice(s, l) else { return not_supported("layer_norm") };
        Ok((CpuStorage::F32(self.normalize(src, rows(l))), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = LayerNormGrad { eps: self.eps, center: self.center, w: self.affine.as_ref().map(|(w, _)| w.clone()) };
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// The backward of [`LayerNormPre`] on `(x, grad)`, one pass per row: with `n = (x - mean) / s`
/// and `gn = grad · w`, `dx = (gn - mean(gn) - n · mean(gn · n)) / s` (RMSNorm: no mean, and no
/// `mean(gn)` term).
struct LayerNormGrad {
    eps: f32,
    center: bool,
    w: Option<Vec<f32>>,
}

impl LayerNormGrad {
    fn row(&self, x: &[f32], g: &[f32], out: &mut [f32]) {
        let d = x.len() as f32;
        let mean = if self.center { row_mean(x) } else { 0.0 };
        for (o, &xi) in out.iter_mut().zip(x) {
            *o = xi - mean;
        }
        let s = row_scale(out, self.eps);
        let gn = |i: usize| match &self.w {
            Some(w) => g[i] * w[i],
            None => g[i],
        };
        let (mut m1, mut m2) = (0f32, 0f32);
        for (i, o) in out.iter_mut().enumerate() {
            let n = *o / s;
            m1 += gn(i);
            m2 += gn(i) * n;
            *o = n;
        }
        let (m1, m2) = (if self.center { m1 / d } else { 0.0 }, m2 / d);
        for (i, o) in out.iter_mut().enumerate() {
            *o = (gn(i) - m1 - *o * m2) / s;
        }
    }
}

impl CustomOp2 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "tl-layer-norm-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(x), Some(g)) = (f32_slice(s1, l1), f32_slice(s2, l2)) else { return not_supported("layer_norm grad") };
        let d = rows(l1);
        if x.len() != g.len() || d == 0 {
            candle_core::bail!("layer_norm grad: {} inputs and {} gradients", x.len(), g.len())
        }
        let mut dst = vec![0f32; x.len()];
        par_rows(&mut dst, d, |part, first| {
            let (x, g) = (&x[first * d..first * d + part.len()], &g[first * d..first * d + part.len()]);
            for ((x, g), o) in x.chunks_exact(d).zip(g.chunks_exact(d)).zip(part.chunks_exact_mut(d)) {
                self.row(x, g, o);
            }
        })?;
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// `x - mean(x)` over the last dim.
struct Center;

impl CustomOp1 for Center {
    fn name(&self) -> &'static str {
        "tl-center"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("center") };
        let d = rows(l).max(1);
        let mut dst = vec![0f32; src.len()];
        for (x, y) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
            let mean = row_mean(x);
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = xi - mean;
            }
        }
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }

    /// Centring is linear and its own adjoint: the gradient is centred too.
    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Center)?))
    }
}

/// `sqrt(mean(c²) + eps)` over the last dim, kept as a size-1 dim.
struct Scale {
    eps: f32,
}

impl CustomOp1 for Scale {
    fn name(&self) -> &'static str {
        "tl-ln-scale"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("ln scale") };
        let d = rows(l).max(1);
        let dst: Vec<f32> = src.chunks_exact(d).map(|c| row_scale(c, self.eps)).collect();
        let mut dims = l.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = 1;
        }
        Ok((CpuStorage::F32(dst), Shape::from(dims)))
    }

    /// d s / d c = c / (d · s).
    fn bwd(&self, c: &Tensor, s: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = c.dim(D::Minus1)? as f64;
        Ok(Some(c.broadcast_mul(&((grad / s)? / d)?)?))
    }
}

fn fusable(x: &Tensor) -> bool {
    super::is_cpu_f32(x)
}

/// The centred input and its scale, computed as the fused kernel does; None when the caller
/// must use candle ops.
pub fn center_and_scale(x: &Tensor, eps: f64) -> Result<Option<(Tensor, Tensor)>> {
    if !fusable(x) {
        return Ok(None);
    }
    // candle records a custom op for the backward only when its input is in an autograd graph.
    let c = x.apply_op1(Center)?;
    let s = c.apply_op1(Scale { eps: eps as f32 })?;
    Ok(Some((c, s)))
}

/// `sqrt(mean(x²) + eps)` over the last dim (RMSNorm's scale, differentiable), as the fused
/// kernel computes it; None when the caller must use candle ops.
pub fn rms_scale(x: &Tensor, eps: f64) -> Result<Option<Tensor>> {
    if !fusable(x) {
        return Ok(None);
    }
    Ok(Some(x.apply_op1(Scale { eps: eps as f32 })?))
}

/// Fused LayerNorm (`center`) or RMSNorm over the last dim for contiguous f32 CPU tensors
/// (differentiable, with a fused backward), and LayerNorm for 16-bit ones outside autograd;
/// None when the caller must use the op-by-op path.
pub fn layer_norm_fused(x: &Tensor, eps: f64, center: bool, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    // A 16-bit LayerNorm runs in f32 and rounds once, as TL's (which casts its input to f32):
    // the same bits as the op-by-op path. (TL's 16-bit RMSNorm multiplies by its weight in the
    // dtype, after rounding: that one stays op by op.)
    if !(fusable(x) || (center && super::half16::is_plain_cpu_16(x))) {
        return Ok(None);
    }
    let vec = super::half16::f32_elements;
    let affine = match (w, b) {
        (Some(w), b) => Some((vec(w)?, b.map(vec).transpose()?)),
        (None, None) => None,
        (None, Some(_)) => return Ok(None),
    };
    Ok(Some(x.apply_op1(LayerNormPre { eps: eps as f32, center, affine })?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// TL's LayerNorm as candle ops (differentiable), the reference for the fused backward.
    fn reference(x: &Tensor, eps: f64, w: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let s = (c.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
        let n = c.broadcast_div(&s)?;
        match w {
            Some((w, b)) => n.broadcast_mul(w)?.broadcast_add(b),
            None => Ok(n),
        }
    }

    fn grad_of(y: &Tensor, x: &Var, coef: &Tensor) -> Result<Tensor> {
        let g = (y * coef)?.sum_all()?.backward()?;
        Ok(g.get(x.as_tensor()).expect("grad").clone())
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    #[test]
    fn fused_backward_matches_the_composite_one() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0.5f32, 2.0, (3, 7, 40), &dev)?;
        let coef = Tensor::randn(0f32, 1.0, (3, 7, 40), &dev)?;
        let w = Tensor::randn(1f32, 0.3, 40, &dev)?;
        let b = Tensor::randn(0f32, 0.3, 40, &dev)?;
        for affine in [None, Some((&w, &b))] {
            let fused = layer_norm_fused(x.as_tensor(), 1e-5, true, affine.map(|a| a.0), affine.map(|a| a.1))?.expect("fusable");
            let want = reference(x.as_tensor(), 1e-5, affine)?;
            assert!(max_diff(&fused, &want)? < 1e-5);
            let d = max_diff(&grad_of(&fused, &x, &coef)?, &grad_of(&want, &x, &coef)?)?;
            assert!(d < 1e-5, "affine {}: max grad diff {d}", affine.is_some());
        }
        // The hooked path: centre and scale as two differentiable ops.
        let (c, s) = center_and_scale(x.as_tensor(), 1e-5)?.expect("fusable");
        let split = c.broadcast_div(&s)?;
        let d = max_diff(&grad_of(&split, &x, &coef)?, &grad_of(&reference(x.as_tensor(), 1e-5, None)?, &x, &coef)?)?;
        assert!(d < 1e-5, "centre/scale: max grad diff {d}");
        Ok(())
    }

    #[test]
    fn fused_rms_norm_and_its_backward_match_the_composite_ones() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0.5f32, 2.0, (3, 7, 40), &dev)?;
        let coef = Tensor::randn(0f32, 1.0, (3, 7, 40), &dev)?;
        let w = Tensor::randn(1f32, 0.3, 40, &dev)?;
        // TL's RMSNorm: x / sqrt(mean(x²) + eps) * w.
        let s = (x.as_tensor().sqr()?.mean_keepdim(D::Minus1)? + 1e-6)?.sqrt()?;
        for wt in [None, Some(&w)] {
            let n = x.as_tensor().broadcast_div(&s)?;
            let want = match wt {
                Some(w) => n.broadcast_mul(w)?,
                None => n,
            };
            let fused = layer_norm_fused(x.as_tensor(), 1e-6, false, wt, None)?.expect("fusable");
            assert!(max_diff(&fused, &want)? < 1e-5);
            let d = max_diff(&grad_of(&fused, &x, &coef)?, &grad_of(&want, &x, &coef)?)?;
            assert!(d < 1e-5, "weight {}: max grad diff {d}", wt.is_some());
        }
        let split = x.as_tensor().broadcast_div(&rms_scale(x.as_tensor(), 1e-6)?.expect("fusable"))?;
        let want = x.as_tensor().broadcast_div(&s)?;
        let d = max_diff(&grad_of(&split, &x, &coef)?, &grad_of(&want, &x, &coef)?)?;
        assert!(d < 1e-5, "scale op: max grad diff {d}");
        Ok(())
    }

    #[test]
    fn a_16_bit_layer_norm_is_the_op_by_op_path_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [candle_core::DType::BF16, candle_core::DType::F16] {
            let x = (Tensor::randn(0.5f32, 2.0, (3, 40), &dev)? * 7.0)?.to_dtype(dtype)?;
            let w = Tensor::randn(1f32, 0.3, 40, &dev)?.to_dtype(dtype)?;
            let b = Tensor::randn(0f32, 0.3, 40, &dev)?.to_dtype(dtype)?;
            let got = layer_norm_fused(&x, 1e-5, true, Some(&w), Some(&b))?.expect("taken");
            assert_eq!(got.dtype(), dtype);
            // norm.rs's path: cast to f32, centre and scale, `c / s * w + b`, cast back.
            let (c, sc) = center_and_scale(&x.to_dtype(candle_core::DType::F32)?, 1e-5)?.expect("f32");
            let want = crate::kernels::norm_affine::norm_affine(&c, &sc, Some(&w), Some(&b))?.expect("f32").to_dtype(dtype)?;
            let bits = |t: &Tensor| -> Result<Vec<f32>> { t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1() };
            assert_eq!(bits(&got)?, bits(&want)?, "{dtype:?}");
        }
        // RMSNorm in 16 bits (weight applied after rounding, in TL) is not taken.
        let x16 = Tensor::randn(0f32, 1.0, (2, 8), &dev)?.to_dtype(candle_core::DType::BF16)?;
        assert!(layer_norm_fused(&x16, 1e-5, false, None, None)?.is_none());
        Ok(())
    }
}
