//! The end of a norm whose hooks are watched: `(c / scale) * w + b` for a centred (or, for RMS,
//! raw) input `c: [.., d]` and its `scale: [.., 1]`, as one autograd node.
//!
//! With `hook_scale` or `hook_normalized` watched, the norm cannot run as one fused kernel (the
//! scale is a hook point whose gradient flows), and the division, weight and bias as candle ops
//! made four graph nodes (the broadcast of the scale, the division, the product, the sum), each
//! of which candle's backward zero-fills and adds a full gradient buffer for. Here they are one.
//! The forward does the same f32 operations in the same order as those ops (same bits); the
//! backward gives `c` the gradient `(g · w) / scale` and `scale` the gradient
//! `-Σ (g · w) · c / scale²`, as candle's division backward does.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::{cpu_part, f32_slice, is_cpu_f32, par_rows};

struct NormAffine {
    /// Weight and bias (length d), when the norm has them.
    w: Option<Vec<f32>>,
    b: Option<Vec<f32>>,
}

impl NormAffine {
    fn check(&self, d: usize) -> Result<()> {
        let ok = |v: &Option<Vec<f32>>| v.as_ref().is_none_or(|v| v.len() == d);
        if !ok(&self.w) || !ok(&self.b) {
            candle_core::bail!("norm affine: weight or bias length differs from the last dim {d}")
        }
        Ok(())
    }
}

/// `(rows, d)` of `c: [.., d]` with `s: [.., 1]` of the same leading dims.
fn dims(cl: &Layout, sl: &Layout) -> Result<(usize, usize)> {
    let (cd, sd) = (cl.dims(), sl.dims());
    let d = *cd.last().unwrap_or(&0);
    if cd.is_empty() || sd.len() != cd.len() || sd[sd.len() - 1] != 1 || sd[..sd.len() - 1] != cd[..cd.len() - 1] {
        candle_core::bail!("norm affine: scale {:?} does not match input {:?}", sd, cd)
    }
    Ok((cl.shape().elem_count().checked_div(d).unwrap_or(0), d))
}

impl CustomOp2 for NormAffine {
    fn name(&self) -> &'static str {
        "tl-norm-affine"
    }

    fn cpu_fwd(&self, c: &CpuStorage, cl: &Layout, s: &CpuStorage, sl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some(c), Some(s)) = (f32_slice(c, cl), f32_slice(s, sl)) else {
            candle_core::bail!("norm affine: contiguous f32 operands expected")
        };
        let (_, d) = dims(cl, sl)?;
        self.check(d)?;
        let mut out = vec![0f32; c.len()];
        if d > 0 {
            par_rows(&mut out, d, |part, first| {
                for (i, y) in part.chunks_exact_mut(d).enumerate() {
                    let r = first + i;
                    let (x, sc) = (&c[r * d..(r + 1) * d], s[r]);
                    for (yj, &xj) in y.iter_mut().zip(x) {
                        *yj = xj / sc;
                    }
                    if let Some(w) = &self.w {
                        y.iter_mut().zip(w).for_each(|(yj, &wj)| *yj *= wj);
                    }
                    if let Some(b) = &self.b {
                        y.iter_mut().zip(b).for_each(|(yj, &bj)| *yj += bj);
                    }
                }
            })?;
        }
        Ok((CpuStorage::F32(out), cl.shape().clone()))
    }

    fn bwd(&self, c: &Tensor, s: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let (cs, cl) = c.storage_and_layout();
        let (ss, sl) = s.storage_and_layout();
        let (Some(gs), Some(cs), Some(ss)) = (cpu_part(&gs), cpu_part(&cs), cpu_part(&ss)) else {
            candle_core::bail!("norm affine: CPU operands expected")
        };
        let (Some(g), Some(cv), Some(sv)) = (f32_slice(gs, gl), f32_slice(cs, cl), f32_slice(ss, sl)) else {
            candle_core::bail!("norm affine: contiguous f32 operands expected")
        };
        let (rows, d) = dims(cl, sl)?;
        let mut gc = vec![0f32; cv.len()];
        let mut gscale = vec![0f32; rows];
        for r in 0..rows {
            let (gr, xr, sc) = (&g[r * d..(r + 1) * d], &cv[r * d..(r + 1) * d], sv[r]);
            let out = &mut gc[r * d..(r + 1) * d];
            let s2 = sc * sc;
            let mut acc = 0f32;
            for j in 0..d {
                let gw = match &self.w {
                    Some(w) => gr[j] * w[j],
                    None => gr[j],
                };
                out[j] = gw / sc;
                acc += gw * xr[j] / s2;
            }
            gscale[r] = -acc;
        }
        let dev = c.device();
        let gc = Tensor::from_vec(gc, c.shape(), dev)?;
        let gscale = Tensor::from_vec(gscale, s.shape(), dev)?;
        Ok((Some(gc), Some(gscale)))
    }
}

/// `(c / scale) * w + b` as one node, or None when the caller must use candle ops (not contiguous
/// f32 on the CPU).
pub fn norm_affine(c: &Tensor, scale: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    if !is_cpu_f32(c) || !is_cpu_f32(scale) {
        return Ok(None);
    }
    let vec = |t: Option<&Tensor>| -> Result<Option<Vec<f32>>> { t.map(|t| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()).transpose() };
    let op = NormAffine { w: vec(w)?, b: vec(b)? };
    Ok(Some(c.apply_op2(scale, op)?))
}

#[cfg(test)]
mod tests {
    use super::super::testing::grad_gap;
    use super::*;
    use candle_core::{Device, Var, D};

    fn case(with_w: bool, with_b: bool) -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 5, 16), &dev)?;
        let c = Var::from_tensor(&x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?)?;
        let s = Var::from_tensor(&(c.as_tensor().sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?)?;
        let w = Tensor::randn(0f32, 1.0, 16, &dev)?;
        let b = Tensor::randn(0f32, 1.0, 16, &dev)?;
        let (wo, bo) = (with_w.then_some(&w), with_b.then_some(&b));
        let ours = norm_affine(c.as_tensor(), s.as_tensor(), wo, bo)?.expect("fused");
        let mut theirs = c.as_tensor().broadcast_div(s.as_tensor())?;
        if with_w {
            theirs = theirs.broadcast_mul(&w)?;
        }
        if with_b {
            theirs = theirs.broadcast_add(&b)?;
        }
        // The forward: the same bits as the candle ops.
        assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, theirs.flatten_all()?.to_vec1::<f32>()?);
        let coef = Tensor::randn(0f32, 1.0, (2, 5, 16), &dev)?;
        for v in [c.as_tensor(), s.as_tensor()] {
            let diff = grad_gap(&ours, &theirs, &coef, v)?;
            assert!(diff < 1e-5, "grad max diff {diff} (w {with_w}, b {with_b})");
        }
        Ok(())
    }

    #[test]
    fn matches_candle_ops_forward_bits_and_gradients() -> Result<()> {
        case(true, true)?;
        case(true, false)?;
        case(false, false)
    }

    #[test]
    fn mismatched_scale_or_weight_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let c = Tensor::zeros((3, 4), DType::F32, &dev)?;
        let bad_scale = Tensor::ones((3, 2), DType::F32, &dev)?;
        assert!(norm_affine(&c, &bad_scale, None, None).is_err());
        let scale = Tensor::ones((3, 1), DType::F32, &dev)?;
        let bad_w = Tensor::ones(5, DType::F32, &dev)?;
        assert!(norm_affine(&c, &scale, Some(&bad_w), None).is_err());
        Ok(())
    }
}
