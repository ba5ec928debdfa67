//! Rotary position embeddings (TL's `calculate_sin_cos_rotary`, `rotate_every_two` and
//! `apply_rotary`): the first `rotary_dim` features of every query or key are rotated by an
//! angle set by their position; the rest pass through.
//!
//! `y = x_rot · cos + flip(x_rot) · sin`, where `flip` maps each pair `(a, b)` to `(-b, a)`: pairs
//! are the two halves of `x_rot` (GPT-NeoX, Llama) or adjacent features (GPT-J). The fused CPU
//! kernel does this in one pass over a contiguous f32 `[batch, s1, s2, d_head]` tensor whose
//! position axis is 1 or 2, with the positions of every (batch, position) given; rotation is
//! linear, so its backward is the same kernel with the angles negated.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

use super::{f32_slice, not_supported, par_rows};

/// The sine and cosine of every (position, rotary feature): `[n_ctx, rotary_dim]`, as TL's
/// `rotary_sin` / `rotary_cos` buffers (angles in f32 as TL computes them).
#[derive(Debug)]
pub struct RotaryTable {
    pub dim: usize,
    pub adjacent: bool,
    pub n_ctx: usize,
    sin: Vec<f32>,
    cos: Vec<f32>,
}

impl RotaryTable {
    /// `inv_freq[i]` for `i < dim / 2`: the angle per position of pair i (TL:
    /// `1 / base ** (i / (dim / 2))`, or the NTK-by-parts scaled one).
    pub fn new(dim: usize, n_ctx: usize, adjacent: bool, freqs: &[f32]) -> Self {
        let half = dim / 2;
        let mut sin = vec![0f32; n_ctx * dim];
        let mut cos = vec![0f32; n_ctx * dim];
        for p in 0..n_ctx {
            for j in 0..dim {
                // TL repeats each frequency: "(d 2)" for adjacent pairs, "(2 d)" for halves.
                let f = if adjacent { freqs[j / 2] } else { freqs[j % half] };
                // TL: angles = pos / freq in f32; sin/cos rounded from the exact value.
                let angle = p as f32 / f;
                sin[p * dim + j] = (angle as f64).sin() as f32;
                cos[p * dim + j] = (angle as f64).cos() as f32;
            }
        }
        RotaryTable { dim, adjacent, n_ctx, sin, cos }
    }

    /// TL's `rotary_sin` / `rotary_cos` buffers, `[n_ctx, rotary_dim]`, in `dtype`.
    pub fn buffers(&self, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
        let t = |v: &Vec<f32>| Tensor::from_slice(v, (self.n_ctx, self.dim), dev)?.to_dtype(dtype);
        Ok((t(&self.sin)?, t(&self.cos)?))
    }

    /// Rotates one row of `dim` features at `pos` from `src` into `dst` (`sign` -1: inverse).
    #[inline(always)]
    fn rotate_row(&self, src: &[f32], dst: &mut [f32], pos: usize, sign: f32) {
        let d = self.dim;
        let (s, c) = (&self.sin[pos * d..pos * d + d], &self.cos[pos * d..pos * d + d]);
        if self.adjacent {
            for j in (0..d).step_by(2) {
                let (a, b) = (src[j], src[j + 1]);
                dst[j] = a * c[j] + -b * (sign * s[j]);
                dst[j + 1] = b * c[j + 1] + a * (sign * s[j + 1]);
            }
        } else {
            let h = d / 2;
            for j in 0..h {
                let (a, b) = (src[j], src[j + h]);
                dst[j] = a * c[j] + -b * (sign * s[j]);
                dst[j + h] = b * c[j + h] + a * (sign * s[j + h]);
            }
        }
    }
}

/// The position of every (batch, position) row of the rotated tensor, `[batch * n_pos]`.
#[derive(Debug, Clone)]
pub struct Positions(pub Arc<Vec<u32>>);

impl Positions {
    /// `start..start + n` for every row of the batch.
    pub fn offset(batch: usize, start: usize, n: usize) -> Self {
        Positions(Arc::new((0..batch).flat_map(|_| (start..start + n).map(|p| p as u32)).collect()))
    }
}

/// `x: [batch, s1, s2, d_head]` contiguous; positions along axis `pos_axis` (1 or 2).
struct Rotate {
    table: Arc<RotaryTable>,
    pos: Positions,
    pos_axis: usize,
    inverse: bool,
}

impl Rotate {
    fn check(&self, dims: &[usize]) -> Result<()> {
        let [b, s1, s2, dh] = dims else { candle_core::bail!("rotary: expected [batch, s1, s2, d_head], got {dims:?}") };
        let n_pos = if self.pos_axis == 1 { *s1 } else { *s2 };
        if self.pos.0.len() != b * n_pos || self.table.dim > *dh {
            candle_core::bail!("rotary: {} positions for {dims:?} (axis {}), rotary_dim {}", self.pos.0.len(), self.pos_axis, self.table.dim)
        }
        if let Some(&p) = self.pos.0.iter().find(|&&p| p as usize >= self.table.n_ctx) {
            candle_core::bail!("rotary: position {p} is past n_ctx {}", self.table.n_ctx)
        }
        Ok(())
    }
}

impl CustomOp1 for Rotate {
    fn name(&self) -> &'static str {
        "tl-rotary"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some(src) = f32_slice(s, l) else { return not_supported("rotary") };
        let dims = l.dims();
        self.check(dims)?;
        let (s1, s2, dh) = (dims[1], dims[2], dims[3]);
        let rd = self.table.dim;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut dst = src.to_vec(); // the pass-through features, then the rotated ones over them
        par_rows(&mut dst, dh, |part, first| {
            for (i, row) in part.chunks_mut(dh).enumerate() {
                let r = first + i; // row index over [b, s1, s2]
                let (bi, i1, i2) = (r / (s1 * s2), (r / s2) % s1, r % s2);
                let n_pos = if self.pos_axis == 1 { s1 } else { s2 };
                let p = self.pos.0[bi * n_pos + if self.pos_axis == 1 { i1 } else { i2 }] as usize;
                self.table.rotate_row(&src[r * dh..r * dh + rd], &mut row[..rd], p, sign);
            }
        })?;
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let inv = Rotate { table: self.table.clone(), pos: self.pos.clone(), pos_axis: self.pos_axis, inverse: !self.inverse };
        Ok(Some(grad.contiguous()?.apply_op1(inv)?))
    }
}

/// TL's `apply_rotary` on `x: [batch, s1, s2, d_head]` with positions along `pos_axis`: the
/// fused kernel for f32 on the CPU (differentiable), candle ops elsewhere.
pub fn rotate(x: &Tensor, table: &Arc<RotaryTable>, pos: &Positions, pos_axis: usize) -> Result<Tensor> {
    let op = Rotate { table: table.clone(), pos: pos.clone(), pos_axis, inverse: false };
    op.check(x.dims())?;
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1(op);
    }
    rotate_ops(x, table, pos, pos_axis)
}

/// [`rotate`] with candle ops (other dtypes and devices), as TL writes it.
fn rotate_ops(x: &Tensor, table: &RotaryTable, pos: &Positions, pos_axis: usize) -> Result<Tensor> {
    let (b, s1, s2, dh) = x.dims4()?;
    let (rd, dev) = (table.dim, x.device());
    let n_pos = if pos_axis == 1 { s1 } else { s2 };
    let (sin, cos) = table.buffers(DType::F32, dev)?;
    let ids = Tensor::from_slice(&pos.0[..], b * n_pos, dev)?;
    let shape: &[usize] = if pos_axis == 1 { &[b, s1, 1, rd] } else { &[b, 1, s2, rd] };
    let pick = |t: &Tensor| -> Result<Tensor> { t.index_select(&ids, 0)?.reshape(shape)?.to_dtype(x.dtype()) };
    let (sin, cos) = (pick(&sin)?, pick(&cos)?);
    let x_rot = x.narrow(3, 0, rd)?;
    let flip = if table.adjacent {
        let pairs = x_rot.reshape((b, s1, s2, rd / 2, 2))?;
        let (a, c) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
        Tensor::cat(&[&c.neg()?, &a], 4)?.reshape((b, s1, s2, rd))?
    } else {
        let h = rd / 2;
        Tensor::cat(&[&x_rot.narrow(3, h, h)?.neg()?, &x_rot.narrow(3, 0, h)?], 3)?
    };
    let rotated = (x_rot.broadcast_mul(&cos)? + flip.broadcast_mul(&sin)?)?;
    if rd == dh {
        return Ok(rotated);
    }
    Tensor::cat(&[&rotated, &x.narrow(3, rd, dh - rd)?], 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freqs(dim: usize, base: f64) -> Vec<f32> {
        (0..dim / 2).map(|i| base.powf((i as f32 / (dim as f32 / 2.0)) as f64) as f32).collect()
    }

    #[test]
    fn fused_kernel_matches_the_candle_ops_and_inverts() {
        for adjacent in [false, true] {
            let table = Arc::new(RotaryTable::new(6, 20, adjacent, &freqs(6, 10000.0)));
            let x = Tensor::randn(0f32, 1.0, (2, 5, 3, 8), &Device::Cpu).unwrap();
            let pos = Positions(Arc::new(vec![0, 1, 2, 3, 4, 0, 0, 7, 8, 19]));
            let fused = rotate(&x, &table, &pos, 1).unwrap();
            let ops = rotate_ops(&x, &table, &pos, 1).unwrap();
            let gap = (&fused - &ops).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(gap < 1e-6, "adjacent {adjacent}: {gap}");
            // Pass-through features are untouched; position 0 is the identity.
            let tail = |t: &Tensor| t.narrow(3, 6, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(tail(&fused), tail(&x));
            let row0 = |t: &Tensor| t.get(0).unwrap().get(0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(row0(&fused), row0(&x));
            // Axis 2 gives the transposed result.
            let xt = x.transpose(1, 2).unwrap().contiguous().unwrap();
            let ft = rotate(&xt, &table, &pos, 2).unwrap().transpose(1, 2).unwrap();
            let gap = (&ft - &fused).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(gap, 0.0);
        }
    }

    #[test]
    fn backward_is_the_inverse_rotation() {
        let table = Arc::new(RotaryTable::new(4, 16, false, &freqs(4, 10000.0)));
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 4, 2, 6), &Device::Cpu).unwrap()).unwrap();
        let pos = Positions::offset(1, 3, 4);
        let coef = Tensor::randn(0f32, 1.0, (1, 4, 2, 6), &Device::Cpu).unwrap();
        let ours = rotate(x.as_tensor(), &table, &pos, 1).unwrap();
        let theirs = rotate_ops(x.as_tensor(), &table, &pos, 1).unwrap();
        let gap = crate::kernels::testing::grad_gap(&ours, &theirs, &coef, x.as_tensor()).unwrap();
        assert!(gap < 1e-5, "{gap}");
        assert!(rotate(x.as_tensor(), &table, &Positions::offset(1, 13, 4), 1).is_err(), "past n_ctx");
    }
}
