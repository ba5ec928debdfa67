//! bf16 products on the CPU through gemmkit's `vdpbf16ps` kernels (bf16 × bf16, f32
//! accumulation, one rounding to bf16: torch's semantics for a bf16 matmul).
//!
//! candle's CPU matmul widens bf16 operands to f32 and runs slower than f32 itself; gemmkit
//! multiplies bf16 pairs directly where the CPU has AVX-512 BF16 (and widens otherwise), so a
//! bf16 model's products cost about half of f32's (DESIGN.md's GEMM facts). Used for the
//! products a decode step's skinny kernel does not take: prompts, batches, attention's
//! `pattern @ v`.

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use gemmkit::{MatMut, MatRef, Parallelism};
use half::bf16;

/// Whether `t` is a contiguous bf16 CPU tensor.
fn takes(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::BF16 && t.is_contiguous()
}

/// The row stride of a rank-2 bf16 CPU tensor whose rows are contiguous (a column block of a
/// wider matrix, as W_Q out of W_QKV, included).
fn row_stride(t: &Tensor) -> Option<usize> {
    let st = t.layout().stride();
    (t.device().is_cpu() && t.dtype() == DType::BF16 && t.rank() == 2 && st[1] == 1 && st[0] >= t.dims()[1]).then_some(st[0])
}

fn bf16_slice(st: &Storage, start: usize, len: usize) -> Option<&[bf16]> {
    match st {
        Storage::Cpu(CpuStorage::BF16(v)) => v.get(start..start + len),
        _ => None,
    }
}

/// `a @ b` for contiguous bf16 CPU tensors `a: [.., m, k]` and `b: [.., k, n]` (the same
/// leading dims, or `b` rank 2 shared by every batch), outside autograd; `None` when not that.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    let (ad, bd) = (a.dims(), b.dims());
    if ad.len() < 2 || bd.len() < 2 || a.track_op() || b.track_op() {
        return Ok(None);
    }
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (kb, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    let lead = &ad[..ad.len() - 2];
    let shared_b = bd.len() == 2;
    if k != kb || (!shared_b && &bd[..bd.len() - 2] != lead) || m == 0 || n == 0 || k == 0 {
        return Ok(None);
    }
    // `b`'s row stride: a shared weight may be a column block; batched operands are contiguous.
    let ldb = if shared_b { row_stride(b) } else { takes(b).then_some(n) };
    let (true, Some(ldb)) = (takes(a), ldb) else { return Ok(None) };
    let ((ast, al), (bst, bl)) = (a.storage_and_layout(), b.storage_and_layout());
    let (a0, b0) = (al.start_offset(), bl.start_offset());
    let batch: usize = lead.iter().product();
    let b_len = if shared_b { (k - 1) * ldb + n } else { batch * k * n };
    let (Some(av), Some(bv)) = (bf16_slice(&ast, a0, batch * m * k), bf16_slice(&bst, b0, b_len)) else {
        return Ok(None);
    };
    let mut out = vec![bf16::ZERO; batch * m * n];
    for (i, c) in out.chunks_exact_mut(m * n).enumerate() {
        let bm = if shared_b { MatRef::new(bv, k, n, ldb as isize, 1) } else { MatRef::from_row_major(&bv[i * k * n..(i + 1) * k * n], k, n) };
        gemmkit::gemm(
            bf16::ONE,
            MatRef::from_row_major(&av[i * m * k..(i + 1) * m * k], m, k),
            bm,
            bf16::ZERO,
            MatMut::from_row_major(c, m, n),
            Parallelism::Rayon(0),
        );
    }
    let mut shape = lead.to_vec();
    shape.extend([m, n]);
    Ok(Some(Tensor::from_vec(out, shape, &Device::Cpu)?))
}

/// `a @ b`: [`matmul`] where it applies, candle's otherwise.
pub fn matmul_any(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match matmul(a, b)? {
        Some(y) => Ok(y),
        None => a.matmul(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_f64_product_rounded_once() -> Result<()> {
        let dev = Device::Cpu;
        for (ad, bd) in [(vec![37usize, 29usize], vec![29usize, 41usize]), (vec![3, 2, 17, 64], vec![3, 2, 64, 9]), (vec![4, 130, 40], vec![40, 70])] {
            let a = Tensor::randn(0f32, 1.0, ad.as_slice(), &dev)?.to_dtype(DType::BF16)?;
            let b = Tensor::randn(0f32, 1.0, bd.as_slice(), &dev)?.to_dtype(DType::BF16)?;
            let got = matmul(&a, &b)?.expect("taken");
            let want = a.to_dtype(DType::F64)?.broadcast_matmul(&b.to_dtype(DType::F64)?)?;
            assert_eq!(got.dims(), want.dims());
            let got: Vec<f32> = got.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let want: Vec<f64> = want.flatten_all()?.to_vec1()?;
            let k = *ad.last().unwrap() as f64;
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 2f64.powi(-8) * (w.abs() + k.sqrt() * 1e-2), "{g} vs {w}");
            }
        }
        // A column block of a wider weight, as W_Q out of W_QKV.
        let wide = Tensor::randn(0f32, 1.0, (40, 99), &dev)?.to_dtype(DType::BF16)?;
        let x = Tensor::randn(0f32, 1.0, (20, 40), &dev)?.to_dtype(DType::BF16)?;
        let block = wide.narrow(1, 33, 33)?;
        let got = matmul(&x, &block)?.expect("taken").to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let want = matmul(&x, &block.contiguous()?)?.expect("taken").to_dtype(DType::F32)?.to_vec2::<f32>()?;
        assert_eq!(got, want);
        // Not bf16, transposed, or mismatched: declined.
        let a = Tensor::randn(0f32, 1.0, (4, 8), &dev)?;
        assert!(matmul(&a, &a.t()?)?.is_none());
        let a16 = a.to_dtype(DType::BF16)?;
        assert!(matmul(&a16, &a16.t()?)?.is_none());
        assert!(matmul(&a16, &a16)?.is_none());
        Ok(())
    }
}
