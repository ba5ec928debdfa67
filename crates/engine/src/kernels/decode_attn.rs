//! Attention for a decode step's few query positions, straight from the KV cache: for each row
//! of queries, its scores against every cached key, the scaled and masked softmax, and `z`, in
//! one pass per (batch, head), without the dozen tensor ops (upcasts, two batched products,
//! transposes) that cost a GPT-2-small bf16 step ~2.5 ms (a fifth of it) whatever the cache
//! length. Runs only when nothing observes the scores or the pattern.
//!
//! The arithmetic is the unfused path's, up to the order of sums: scores in f32 from the widened
//! `q` and `k`, [`super::attn_softmax`]'s softmax (the same function), the pattern rounded to
//! the model's dtype (as the unfused path casts it before `pattern @ v`), `z` summed in f32 over
//! the keys in order and rounded once to the dtype (torch's 16-bit product; candle's f16 product
//! sums in f16). Scores sum sixteen lanes (`d ≡ l mod 16`, each in order) and then the lanes in
//! a tree, as the skinny kernel's dot products do; the vectors are the skinny kernel's
//! (kernels/skinny_simd.rs), with FMA on AVX2 and AVX-512 (the same bits) and without on the
//! plain path.

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use half::{bf16, f16};

use super::attn_softmax::row as softmax_row;
use super::skinny::{isa, Isa};
#[cfg(target_arch = "x86_64")]
use super::skinny_simd::{Avx2, Avx512};
use super::skinny_simd::{Elem, Plain, Simd, L};

/// The most query positions the pass takes (a decode step has one).
pub const MAX_QUERIES: usize = 8;

/// The shapes and strides of one call: `q` `[b, p, h, dh]` (contiguous f32), keys and values
/// `[b, kv, len, dh]` at `(offset, batch stride, head stride, position stride)`, the mask
/// `[rows, mh, p, len]` (contiguous f32) as (data, rows, mh).
struct Plan<'a> {
    b: usize,
    p: usize,
    h: usize,
    kv: usize,
    len: usize,
    dh: usize,
    ks: [usize; 4],
    vs: [usize; 4],
    mask: Option<(&'a [f32], usize, usize)>,
    inv_scale: f32,
    /// Round the pattern to the model's 16-bit dtype (None: f32).
    round: Option<DType>,
}

/// `Σ_d q[d] · k[d]` over `dh` elements: lane `l` sums `d ≡ l (mod 16)` in order, the lanes add
/// in [`Simd::sum`]'s tree, then the tail in order.
///
/// # Safety
/// `q` and `k` point at `dh` elements; the CPU has `S`'s instruction set.
#[inline(always)]
unsafe fn dot<S: Simd, W: Elem>(q: *const f32, k: *const W, dh: usize) -> f32 {
    let full = dh / L * L;
    let mut acc = S::zero();
    for c in (0..full).step_by(L) {
        acc = S::madd(S::loadf(q.add(c)), S::load(k.add(c)), acc);
    }
    (full..dh).fold(S::sum(acc), |s, d| S::madd1(*q.add(d), (*k.add(d)).widen(), s))
}

/// `z` `[b, p, h, dh]` in f32 for the plan.
///
/// # Safety
/// The plan's strides and offsets address `k` and `v` in bounds; `q` holds `b · p · h · dh`
/// elements; the CPU has `S`'s instruction set.
#[inline(always)]
unsafe fn attend_rows<S: Simd, W: Elem>(plan: &Plan<'_>, q: &[f32], k: &[W], v: &[W]) -> Vec<f32> {
    let Plan { b, p, h, kv, len, dh, ks, vs, mask, inv_scale, round } = *plan;
    let groups = h / kv;
    let full = dh / L * L;
    let mut z = vec![0f32; b * p * h * dh];
    let mut s = vec![0f32; len];
    let (kp, vp) = (k.as_ptr(), v.as_ptr());
    for bi in 0..b {
        for qi in 0..p {
            for hi in 0..h {
                let kh = hi / groups;
                let row = ((bi * p + qi) * h + hi) * dh;
                let qr = q.as_ptr().add(row);
                let kb = ks[0] + bi * ks[1] + kh * ks[2];
                for (t, st) in s.iter_mut().enumerate() {
                    *st = dot::<S, W>(qr, kp.add(kb + t * ks[3]), dh);
                }
                let m = mask.map(|(m, rows, mh)| {
                    let at = (((if rows == 1 { 0 } else { bi }) * mh + if mh == 1 { 0 } else { hi }) * p + qi) * len;
                    &m[at..at + len]
                });
                softmax_row(&mut s, inv_scale, m);
                match round {
                    Some(DType::BF16) => s.iter_mut().for_each(|x| *x = bf16::from_f32(*x).to_f32()),
                    Some(DType::F16) => s.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32()),
                    _ => {}
                }
                // z[d] = Σ_t pattern[t] · v[t, d], in order of t, sixteen d at a time.
                let zr = z.as_mut_ptr().add(row);
                let vb = vs[0] + bi * vs[1] + kh * vs[2];
                for c in (0..full).step_by(L) {
                    let mut acc = S::zero();
                    for (t, &pt) in s.iter().enumerate() {
                        acc = S::madd(S::splat(pt), S::load(vp.add(vb + t * vs[3] + c)), acc);
                    }
                    S::store(zr.add(c), acc);
                }
                for d in full..dh {
                    *zr.add(d) = s.iter().enumerate().fold(0.0, |a, (t, &pt)| S::madd1(pt, (*vp.add(vb + t * vs[3] + d)).widen(), a));
                }
            }
        }
    }
    z
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn attend_avx512<W: Elem>(plan: &Plan<'_>, q: &[f32], k: &[W], v: &[W]) -> Vec<f32> {
    attend_rows::<Avx512, W>(plan, q, k, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_avx2<W: Elem>(plan: &Plan<'_>, q: &[f32], k: &[W], v: &[W]) -> Vec<f32> {
    attend_rows::<Avx2, W>(plan, q, k, v)
}

/// [`attend_rows`] for an instruction set the CPU has ([`isa`]: AVX-512 and AVX2 give the same
/// bits; the plain path rounds multiplies and adds apart).
///
/// # Safety
/// As [`attend_rows`], but for the instruction set, which must be this CPU's or lower.
unsafe fn attend_with<W: Elem>(level: Isa, plan: &Plan<'_>, q: &[f32], k: &[W], v: &[W]) -> Vec<f32> {
    match level {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => attend_avx512(plan, q, k, v),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => attend_avx2(plan, q, k, v),
        Isa::Plain => attend_rows::<Plain, W>(plan, q, k, v),
    }
}

/// Checks that every row the plan reads lies in `k` and `v`.
fn in_bounds(plan: &Plan<'_>, k: usize, v: usize) -> bool {
    let last = |st: [usize; 4]| st[0] + (plan.b - 1) * st[1] + (plan.kv - 1) * st[2] + (plan.len - 1) * st[3] + plan.dh;
    last(plan.ks) <= k && last(plan.vs) <= v
}

/// A `[b, kv, len, dh]` CPU tensor's start offset and strides, when its last dim is contiguous.
fn strides(t: &Tensor) -> Option<[usize; 4]> {
    let st = t.layout().stride();
    (t.rank() == 4 && st[3] == 1).then(|| [t.layout().start_offset(), st[0], st[1], st[2]])
}

/// `z` `[b, p, h, dh]` for queries `q` `[b, p, h, dh]`, keys and values `[b, kv, len, dh]`
/// (rows of `dh` contiguous: views of the KV cache), `h` a multiple of `kv` (query head `i`
/// reads K/V head `i / (h / kv)`), and the additive mask `[1 or b, 1 or h, p, len]` (contiguous
/// f32) or none; the scores scaled by `inv_scale` before the mask. `None`: not taken (another
/// device or dtype, more than [`MAX_QUERIES`] positions, an autograd graph, other layouts).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, inv_scale: f32) -> Result<Option<Tensor>> {
    let dtype = q.dtype();
    let (Ok((b, p, h, dh)), Ok((kb, kv, len, kd))) = (q.dims4(), k.dims4()) else { return Ok(None) };
    let takes = [q, k, v].iter().all(|t| t.device().is_cpu() && t.dtype() == dtype && !t.track_op())
        && matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
        && (1..=MAX_QUERIES).contains(&p)
        && v.dims() == k.dims()
        && (kb, kd) == (b, dh)
        && kv > 0
        && h % kv == 0
        && len > 0;
    if !takes {
        return Ok(None);
    }
    let (Some(ks), Some(vs)) = (strides(k), strides(v)) else { return Ok(None) };
    let mask_data = match mask {
        None => None,
        Some(m) => {
            let Ok((rows, mh, mq, mk)) = m.dims4() else { return Ok(None) };
            if !(super::is_cpu_f32(m) && (rows == 1 || rows == b) && (mh == 1 || mh == h) && (mq, mk) == (p, len)) {
                return Ok(None);
            }
            Some((m.flatten_all()?.to_vec1::<f32>()?, rows, mh))
        }
    };
    let qs: Vec<f32> = q.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let plan = Plan {
        b,
        p,
        h,
        kv,
        len,
        dh,
        ks,
        vs,
        mask: mask_data.as_ref().map(|(m, r, mh)| (m.as_slice(), *r, *mh)),
        inv_scale,
        round: (dtype != DType::F32).then_some(dtype),
    };
    let (kst, _) = k.storage_and_layout();
    let (vst, _) = v.storage_and_layout();
    // SAFETY: the rows read are in bounds (checked), `qs` holds b·p·h·dh elements, and `isa()`
    // is this CPU's.
    let z = match (&*kst, &*vst) {
        (Storage::Cpu(CpuStorage::F32(kd)), Storage::Cpu(CpuStorage::F32(vd))) if in_bounds(&plan, kd.len(), vd.len()) => unsafe { attend_with(isa(), &plan, &qs, kd, vd) },
        (Storage::Cpu(CpuStorage::BF16(kd)), Storage::Cpu(CpuStorage::BF16(vd))) if in_bounds(&plan, kd.len(), vd.len()) => unsafe { attend_with(isa(), &plan, &qs, kd, vd) },
        (Storage::Cpu(CpuStorage::F16(kd)), Storage::Cpu(CpuStorage::F16(vd))) if in_bounds(&plan, kd.len(), vd.len()) => unsafe { attend_with(isa(), &plan, &qs, kd, vd) },
        _ => return Ok(None),
    };
    let shape = (b, p, h, dh);
    let dev = Device::Cpu;
    Ok(Some(match dtype {
        DType::BF16 => Tensor::from_vec(z.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>(), shape, &dev)?,
        DType::F16 => Tensor::from_vec(z.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(), shape, &dev)?,
        _ => Tensor::from_vec(z, shape, &dev)?,
    }))
}

#[cfg(test)]
#[path = "decode_attn_tests.rs"]
mod tests;
