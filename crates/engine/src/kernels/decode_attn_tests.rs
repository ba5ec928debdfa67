//! Tests of the decode-step attention (kernels/decode_attn.rs) against the unfused tensor ops.

use super::*;
use crate::kernels::attn_softmax::scale_mask_softmax_;

/// The unfused path of model/attention.rs: f32 scores by a batched product, the fused softmax,
/// the pattern cast to the dtype, `pattern @ v` in the dtype, `[b, p, h, dh]`.
fn unfused(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, inv_scale: f32) -> Result<Tensor> {
    let (b, p, h, dh) = q.dims4()?;
    let (_, kv, len, _) = k.dims4()?;
    let g = h / kv;
    let q_ = q.transpose(1, 2)?.contiguous()?.to_dtype(DType::F32)?.reshape((b, kv, g * p, dh))?;
    let raw = q_.matmul(&k.to_dtype(DType::F32)?.transpose(2, 3)?)?.reshape((b, h, p, len))?;
    scale_mask_softmax_(&raw, inv_scale, mask)?;
    let pattern = raw.to_dtype(q.dtype())?.reshape((b, kv, g * p, len))?;
    // bf16 through gemmkit (f32 sums, as torch); f16 (candle's product sums in f16) in f32.
    let z = match q.dtype() {
        DType::F16 => pattern.to_dtype(DType::F32)?.matmul(&v.to_dtype(DType::F32)?)?.to_dtype(DType::F16)?,
        _ => crate::kernels::gemm16::matmul_any(&pattern, &v.contiguous()?)?,
    };
    let z = z.reshape((b, h, p, dh))?;
    z.transpose(1, 2)?.contiguous()
}

/// A cache-like view: `[b, kv, len, dh]` out of a `[b, kv, cap, dh]` buffer.
fn cache(b: usize, kv: usize, len: usize, dh: usize, dtype: DType) -> Result<Tensor> {
    Tensor::randn(0f32, 1.0, (b, kv, len + 5, dh), &Device::Cpu)?.to_dtype(dtype)?.narrow(2, 0, len)
}

fn mask(rows: usize, mh: usize, p: usize, len: usize, dead: bool) -> Result<Tensor> {
    let mut m = vec![0f32; rows * mh * p * len];
    for (i, x) in m.iter_mut().enumerate() {
        let (t, qi, r) = (i % len, (i / len) % p, i / (len * p * mh));
        // Causal over the last p keys, one padded key per row, and maybe a query with no key.
        if t > len - p + qi || t == r || (dead && r == 0 && qi == 0) {
            *x = f32::NEG_INFINITY;
        } else if mh > 1 {
            *x = -((i % 7) as f32) * 0.25; // a per-head bias, as ALiBi's
        }
    }
    Tensor::from_vec(m, (rows, mh, p, len), &Device::Cpu)
}

#[test]
fn matches_the_unfused_ops() -> Result<()> {
    let cases = [
        // b, p, h, kv, len, dh, mask (rows, heads, dead row)
        (1usize, 1usize, 12usize, 12usize, 37usize, 64usize, None),
        (2, 1, 4, 2, 20, 24, Some((2usize, 1usize, false))),
        (3, 2, 6, 1, 9, 16, Some((3, 6, true))),
        (1, 8, 2, 2, 130, 80, Some((1, 1, false))),
    ];
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for &(b, p, h, kv, len, dh, m) in &cases {
            let q = Tensor::randn(0f32, 1.0, (b, p, h, dh), &Device::Cpu)?.to_dtype(dtype)?;
            let (k, v) = (cache(b, kv, len, dh, dtype)?, cache(b, kv, len, dh, dtype)?);
            let m = m.map(|(rows, mh, dead)| mask(rows, mh, p, len, dead)).transpose()?;
            let inv = 1.0 / (dh as f32).sqrt();
            let got = attend(&q, &k, &v, m.as_ref(), inv)?.expect("taken");
            let want = unfused(&q, &k, &v, m.as_ref(), inv)?;
            assert_eq!(got.dims(), want.dims());
            assert_eq!(got.dtype(), dtype);
            let got: Vec<f32> = got.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let want: Vec<f32> = want.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            // f32: sums in another order; 16 bits: a rounding either way of the pattern or z.
            let tol = match dtype { DType::F32 => 1e-5, DType::BF16 => 2f32.powi(-7), _ => 2f32.powi(-10) };
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{dtype:?} b{b} p{p} h{h} kv{kv} len{len}: {g} vs {w}");
            }
            if m.is_some_and(|_| p > 1 && b == 3) {
                // The query with no key to attend to: a zero pattern, so z = 0.
                assert!(got[..h * dh].iter().all(|&x| x == 0.0));
            }
        }
    }
    Ok(())
}

#[test]
fn every_instruction_set_agrees() -> Result<()> {
    let (b, p, h, kv, len, dh) = (2usize, 2usize, 4usize, 2usize, 45usize, 40usize);
    for dtype in [DType::F32, DType::BF16] {
        let q: Vec<f32> = Tensor::randn(0f32, 1.0, b * p * h * dh, &Device::Cpu)?.to_vec1()?;
        let k = Tensor::randn(0f32, 1.0, b * kv * len * dh, &Device::Cpu)?.to_dtype(dtype)?;
        let v = Tensor::randn(0f32, 1.0, b * kv * len * dh, &Device::Cpu)?.to_dtype(dtype)?;
        let m = mask(b, h, p, len, true)?.flatten_all()?.to_vec1::<f32>()?;
        let plan = Plan {
            b,
            p,
            h,
            kv,
            len,
            dh,
            ks: [0, kv * len * dh, len * dh, dh],
            vs: [0, kv * len * dh, len * dh, dh],
            mask: Some((&m, b, h)),
            inv_scale: 0.125,
            round: (dtype != DType::F32).then_some(dtype),
        };
        if isa() != Isa::Avx512 {
            return Ok(());
        }
        // SAFETY: the plan addresses the whole of k and v; the CPU has AVX-512 (so AVX2).
        let (wide, narrow, plain) = unsafe {
            if dtype == DType::F32 {
                let (k, v) = (k.to_vec1::<f32>()?, v.to_vec1::<f32>()?);
                (attend_with(Isa::Avx512, &plan, &q, &k, &v), attend_with(Isa::Avx2, &plan, &q, &k, &v), attend_with(Isa::Plain, &plan, &q, &k, &v))
            } else {
                let (k, v) = (k.to_vec1::<bf16>()?, v.to_vec1::<bf16>()?);
                (attend_with(Isa::Avx512, &plan, &q, &k, &v), attend_with(Isa::Avx2, &plan, &q, &k, &v), attend_with(Isa::Plain, &plan, &q, &k, &v))
            }
        };
        assert_eq!(wide.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), narrow.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        // The plain path rounds multiplies apart from adds (and, in 16 bits, may round the
        // pattern the other way): close, not equal.
        for (p, w) in plain.iter().zip(&wide) {
            assert!((p - w).abs() <= 1e-2 * (1.0 + w.abs()), "{p} vs {w}");
        }
    }
    Ok(())
}

#[test]
fn declines_what_it_does_not_take() -> Result<()> {
    let dev = Device::Cpu;
    let q = Tensor::zeros((1, 9, 2, 8), DType::F32, &dev)?;
    let k = Tensor::zeros((1, 2, 9, 8), DType::F32, &dev)?;
    assert!(attend(&q, &k, &k, None, 1.0)?.is_none()); // 9 query positions
    let q1 = q.narrow(1, 0, 1)?;
    assert!(attend(&q1.to_dtype(DType::F64)?, &k.to_dtype(DType::F64)?, &k.to_dtype(DType::F64)?, None, 1.0)?.is_none());
    assert!(attend(&q1, &k.to_dtype(DType::BF16)?, &k, None, 1.0)?.is_none());
    assert!(attend(&q1, &k.transpose(2, 3)?, &k, None, 1.0)?.is_none()); // dh not contiguous
    let bad_mask = Tensor::zeros((1, 1, 1, 8), DType::F32, &dev)?;
    assert!(attend(&q1, &k, &k, Some(&bad_mask), 1.0)?.is_none());
    assert!(attend(&q1, &k, &k, None, 1.0)?.is_some());
    Ok(())
}
