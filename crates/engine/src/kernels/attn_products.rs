//! Attention's two products for gradient runs, read and written in TL's head layouts:
//! `scores[b, h, i, j] = (q[b, i, h, :] · k[b, j, h / g, :]) / scale` and
//! `z[b, i, h, :] = Σ_j pattern[b, h, i, j] · v[b, j, h / g, :]`, with `g` query heads per K/V
//! head (grouped-query attention without repeating K or V).
//!
//! Through candle ops these products need Q, K and V transposed into `[b, heads, pos, d_head]`
//! copies, the groups reshaped, and z transposed back: a dozen autograd nodes per layer, each of
//! which candle's backward zero-fills and adds a gradient buffer for. Here each product is one
//! node: every head's product is a strided gemm on the tensors as they are, and the backward
//! writes the inputs' gradients in their own layouts (K's and V's summed over the heads of a
//! group), one head (or K/V head) per gemm, the heads split between the two cores.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::f32_slice;

/// A row-major operand of one head's product: a base pointer and its row and column strides.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst (m×n, rows `rs` apart) (+)= lhs (m×k) · rhs (k×n)` on this thread.
///
/// # Safety
/// Every element the three views address must lie in live buffers; `dst` must not overlap the
/// operands, nor be written by another thread meanwhile.
unsafe fn product(m: usize, n: usize, k: usize, (dst, rs): (*mut f32, usize), accumulate: bool, lhs: Mat, rhs: Mat) {
    gemm::gemm(
        m, n, k, dst, 1, rs as isize, accumulate, lhs.ptr, lhs.cs, lhs.rs, rhs.ptr, rhs.cs, rhs.rs, 1.0, 1.0, false, false, false,
        gemm::Parallelism::None,
    )
}

/// The two operands and the output, shared by the two halves of a split (each half writes its
/// own heads' regions).
#[derive(Clone, Copy)]
struct Shared(*const f32, *const f32, *mut f32);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The first operand at element `i` (a method, so closures capture the whole struct).
    fn a(&self, i: usize) -> *const f32 {
        self.0.wrapping_add(i)
    }
    fn c(&self, i: usize) -> *const f32 {
        self.1.wrapping_add(i)
    }
    fn out(&self, i: usize) -> *mut f32 {
        self.2.wrapping_add(i)
    }
}

/// `f(i)` for `i` in `0..n`, the items split between the two cores when there is enough work.
fn each_head(n: usize, work: usize, f: impl Fn(usize) + Sync) -> Result<()> {
    super::split::par_halves(n, work, |r| r.for_each(&f)).map(|_| ()).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// The sizes of a scores product: `q: [b, p, h, dh]`, `k: [b, kp, kv, dh]`.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    p: usize,
    kp: usize,
    h: usize,
    kv: usize,
    dh: usize,
}

impl Dims {
    fn group(&self) -> usize {
        self.h / self.kv
    }
    /// From a query-side `[b, p, h, dh]` and a key-side `[b, kp, kv, dh]` layout.
    fn of(ql: &Layout, kl: &Layout, what: &str) -> Result<Self> {
        let (qd, kd) = (ql.dims(), kl.dims());
        if qd.len() != 4 || kd.len() != 4 || qd[0] != kd[0] || qd[3] != kd[3] || kd[2] == 0 || qd[2] % kd[2] != 0 {
            candle_core::bail!("{what}: queries {qd:?} and keys {kd:?} do not pair up")
        }
        Ok(Dims { b: qd[0], p: qd[1], kp: kd[1], h: qd[2], kv: kd[2], dh: qd[3] })
    }
    fn work(&self) -> usize {
        self.b * self.h * self.p * self.kp * self.dh
    }
}

fn slices<'a>(s1: &'a CpuStorage, l1: &Layout, s2: &'a CpuStorage, l2: &Layout, what: &str) -> Result<(&'a [f32], &'a [f32])> {
    match (f32_slice(s1, l1), f32_slice(s2, l2)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => candle_core::bail!("{what}: contiguous f32 operands expected"),
    }
}

/// `f` on the f32 CPU data of `ts` (a backward's gradient and saved inputs), read in place.
fn with_data<const N: usize, R>(ts: [&Tensor; N], f: impl FnOnce([&[f32]; N]) -> Result<R>) -> Result<R> {
    let owned = ts.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut views: [&[f32]; N] = [&[]; N];
    for (view, (st, l)) in views.iter_mut().zip(&guards) {
        match super::cpu_part(st).and_then(|c| f32_slice(c, l)) {
            Some(v) => *view = v,
            None => candle_core::bail!("attention backward: f32 CPU operands expected"),
        }
    }
    f(views)
}

// The three product shapes, from which both ops and their backwards are made. Head `h` of the
// query side reads K/V head `h / g`.

/// `out[b, h] = a[b, :, h, :] · c[b, :, h/g, :]ᵀ` (`a: [b, p, h, dh]`, `c: [b, kp, kv, dh]`) →
/// `[b, h, p, kp]`, times `factor`: the scores from Q and K, the pattern's gradient from z's and V.
fn heads_by_kv_t(a: &[f32], c: &[f32], d: Dims, factor: f32) -> Result<Vec<f32>> {
    let Dims { p, kp, h, kv, dh, .. } = d;
    let mut out = vec![0f32; d.b * h * p * kp];
    let ptrs = Shared(a.as_ptr(), c.as_ptr(), out.as_mut_ptr());
    each_head(d.b * h, d.work(), |bh| {
        let (bi, hi) = (bh / h, bh % h);
        // SAFETY: head bh reads a[bi, :, hi, :] and c[bi, :, hi / g, :] (in bounds by the checked
        // dims) and writes only its own [p, kp] block of the output.
        unsafe {
            let lhs = Mat { ptr: ptrs.a(bi * p * h * dh + hi * dh), rs: (h * dh) as isize, cs: 1 };
            let rhs = Mat { ptr: ptrs.c(bi * kp * kv * dh + (hi / d.group()) * dh), rs: 1, cs: (kv * dh) as isize };
            let dst = ptrs.out(bh * p * kp);
            product(p, kp, dh, (dst, kp), false, lhs, rhs);
            if factor != 1.0 {
                std::slice::from_raw_parts_mut(dst, p * kp).iter_mut().for_each(|v| *v *= factor);
            }
        }
    })?;
    Ok(out)
}

/// `out[b, :, h, :] = blocks[b, h] · c[b, :, h/g, :]` (`blocks: [b, h, p, kp]`) → `[b, p, h, dh]`:
/// z from the pattern and V, Q's gradient from the scores' and K.
fn blocks_by_kv(blocks: &[f32], c: &[f32], d: Dims) -> Result<Vec<f32>> {
    let Dims { p, kp, h, kv, dh, .. } = d;
    let mut out = vec![0f32; d.b * p * h * dh];
    let ptrs = Shared(blocks.as_ptr(), c.as_ptr(), out.as_mut_ptr());
    each_head(d.b * h, d.work(), |bh| {
        let (bi, hi) = (bh / h, bh % h);
        // SAFETY: head bh reads its block and c[bi, :, hi / g, :]; writes out[bi, :, hi, :].
        unsafe {
            let lhs = Mat { ptr: ptrs.a(bh * p * kp), rs: kp as isize, cs: 1 };
            let rhs = Mat { ptr: ptrs.c(bi * kp * kv * dh + (hi / d.group()) * dh), rs: (kv * dh) as isize, cs: 1 };
            product(p, dh, kp, (ptrs.out(bi * p * h * dh + hi * dh), h * dh), false, lhs, rhs);
        }
    })?;
    Ok(out)
}

/// `out[b, :, kvh, :] = Σ_{h in group kvh} blocks[b, h]ᵀ · a[b, :, h, :]` → `[b, kp, kv, dh]`: the
/// gradients of K (from the scores' and Q) and of V (from the pattern and z's).
fn group_blocks_t_by_heads(blocks: &[f32], a: &[f32], d: Dims) -> Result<Vec<f32>> {
    let Dims { b, p, kp, h, kv, dh } = d;
    let mut out = vec![0f32; b * kp * kv * dh];
    let ptrs = Shared(blocks.as_ptr(), a.as_ptr(), out.as_mut_ptr());
    each_head(b * kv, d.work(), |bk| {
        let (bi, ki) = (bk / kv, bk % kv);
        for j in 0..d.group() {
            let hi = ki * d.group() + j;
            // SAFETY: K/V head bk reads its query heads' blocks and a[bi, :, hi, :]; it alone
            // writes out[bi, :, ki, :].
            unsafe {
                let lhs = Mat { ptr: ptrs.a((bi * h + hi) * p * kp), rs: 1, cs: kp as isize };
                let rhs = Mat { ptr: ptrs.c(bi * p * h * dh + hi * dh), rs: (h * dh) as isize, cs: 1 };
                product(kp, dh, p, (ptrs.out(bi * kp * kv * dh + ki * dh), kv * dh), j > 0, lhs, rhs);
            }
        }
    })?;
    Ok(out)
}

/// `(q · kᵀ) / scale` per head: `[b, h, p, kp]`.
struct Scores {
    inv_scale: f32,
}

impl CustomOp2 for Scores {
    fn name(&self) -> &'static str {
        "tl-attn-scores"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(l1, l2, "attention scores")?;
        let (q, k) = slices(s1, l1, s2, l2, "attention scores")?;
        Ok((CpuStorage::F32(heads_by_kv_t(q, k, d, self.inv_scale)?), Shape::from((d.b, d.h, d.p, d.kp))))
    }

    /// `dq[b, :, h] = (g[b, h] / scale) · k[b, :, h/g]`, `dk[b, :, kvh] = Σ_h (g[b, h] / scale)ᵀ · q[b, :, h]`.
    fn bwd(&self, q: &Tensor, k: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = Dims::of(q.layout(), k.layout(), "attention scores backward")?;
        let (dq, dk) = with_data([grad, q, k], |[g, qv, kvv]| {
            let g: Vec<f32> = g.iter().map(|v| v * self.inv_scale).collect();
            Ok((blocks_by_kv(&g, kvv, d)?, group_blocks_t_by_heads(&g, qv, d)?))
        })?;
        let dev = q.device();
        Ok((Some(Tensor::from_vec(dq, q.shape(), dev)?), Some(Tensor::from_vec(dk, k.shape(), dev)?)))
    }
}

/// `pattern · v` per head: `[b, p, h, dh]`.
struct Mix;

/// The sizes of a mix: `pattern: [b, h, p, kp]`, `v: [b, kp, kv, dh]`.
fn mix_dims(pl: &Layout, vl: &Layout) -> Result<Dims> {
    let (pd, vd) = (pl.dims(), vl.dims());
    if pd.len() != 4 || vd.len() != 4 || pd[0] != vd[0] || pd[3] != vd[1] || vd[2] == 0 || pd[1] % vd[2] != 0 {
        candle_core::bail!("attention mix: pattern {pd:?} and values {vd:?} do not pair up")
    }
    Ok(Dims { b: pd[0], p: pd[2], kp: pd[3], h: pd[1], kv: vd[2], dh: vd[3] })
}

impl CustomOp2 for Mix {
    fn name(&self) -> &'static str {
        "tl-attn-mix"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = mix_dims(l1, l2)?;
        let (pat, v) = slices(s1, l1, s2, l2, "attention mix")?;
        Ok((CpuStorage::F32(blocks_by_kv(pat, v, d)?), Shape::from((d.b, d.p, d.h, d.dh))))
    }

    /// `dpattern[b, h] = g[b, :, h] · v[b, :, h/g]ᵀ`, `dv[b, :, kvh] = Σ_h pattern[b, h]ᵀ · g[b, :, h]`.
    fn bwd(&self, pat: &Tensor, v: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = mix_dims(pat.layout(), v.layout())?;
        let (dp, dv) = with_data([grad, pat, v], |[g, pv, vv]| Ok((heads_by_kv_t(g, vv, d, 1.0)?, group_blocks_t_by_heads(pv, g, d)?)))?;
        let dev = v.device();
        Ok((Some(Tensor::from_vec(dp, pat.shape(), dev)?), Some(Tensor::from_vec(dv, v.shape(), dev)?)))
    }
}

fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == candle_core::DType::F32
}

/// Whether Q, K and V (`[b, pos, heads, d_head]`) suit [`scores`] and [`mix`]: f32 on the CPU.
pub fn fits(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    cpu_f32(q) && cpu_f32(k) && cpu_f32(v)
}

/// `(q · kᵀ) / scale` per head (`q: [b, p, h, dh]`, `k: [b, kp, kv, dh]` → `[b, h, p, kp]`), one
/// autograd node; None when the operands are not f32 on the CPU.
pub fn scores(q: &Tensor, k: &Tensor, scale: f64) -> Result<Option<Tensor>> {
    if !cpu_f32(q) || !cpu_f32(k) {
        return Ok(None);
    }
    Ok(Some(q.contiguous()?.apply_op2(&k.contiguous()?, Scores { inv_scale: (1.0 / scale) as f32 })?))
}

/// `pattern · v` per head (`pattern: [b, h, p, kp]`, `v: [b, kp, kv, dh]` → z `[b, p, h, dh]`),
/// one autograd node; None when the operands are not f32 on the CPU.
pub fn mix(pattern: &Tensor, v: &Tensor) -> Result<Option<Tensor>> {
    if !cpu_f32(pattern) || !cpu_f32(v) {
        return Ok(None);
    }
    Ok(Some(pattern.contiguous()?.apply_op2(&v.contiguous()?, Mix)?))
}

#[cfg(test)]
#[path = "attn_products_tests.rs"]
mod tests;
