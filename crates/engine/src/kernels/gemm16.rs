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

/// Below this many multiply-adds a product runs on the calling thread (a rayon hand-off costs more).
const MIN_PARALLEL: usize = 1 << 18;

/// How a bf16 CPU operand's matrices sit in its storage: the element offset of each of its
/// `batch` matrices, and the row and column strides of one (one of them 1). None when the
/// layout is not that (or the tensor is not bf16 on the CPU).
struct Operand {
    offsets: Vec<usize>,
    rs: usize,
    cs: usize,
    /// Elements the last matrix reaches past its offset.
    extent: usize,
}

impl Operand {
    fn of(t: &Tensor, batch_dims: &[usize]) -> Option<Operand> {
        if !t.device().is_cpu() || t.dtype() != DType::BF16 || t.rank() < 2 {
            return None;
        }
        let (dims, st) = (t.dims(), t.layout().stride());
        let r = dims.len();
        let (rows, cols, rs, cs) = (dims[r - 2], dims[r - 1], st[r - 2], st[r - 1]);
        if !((cs == 1 && rs >= cols) || (rs == 1 && cs >= rows)) {
            return None;
        }
        let lead = &dims[..r - 2];
        // A rank-2 operand is shared by every batch; otherwise its leading dims are the batch's.
        let mut offsets = vec![t.layout().start_offset()];
        if !lead.is_empty() {
            if lead != batch_dims {
                return None;
            }
            for (&d, &s) in lead.iter().zip(&st[..r - 2]) {
                offsets = offsets.iter().flat_map(|&o| (0..d).map(move |i| o + i * s)).collect();
            }
        }
        Some(Operand { offsets, rs, cs, extent: (rows - 1) * rs + (cols - 1) * cs + 1 })
    }

    fn at<'a>(&self, data: &'a [bf16], i: usize, rows: usize, cols: usize) -> Option<MatRef<'a, bf16>> {
        let o = *self.offsets.get(i).or(self.offsets.first())?;
        Some(MatRef::new(data.get(o..o + self.extent)?, rows, cols, self.rs as isize, self.cs as isize))
    }
}

fn bf16_data(st: &Storage) -> Option<&[bf16]> {
    match st {
        Storage::Cpu(CpuStorage::BF16(v)) => Some(v),
        _ => None,
    }
}

/// `a @ b` for bf16 CPU tensors `a: [.., m, k]` and `b: [.., k, n]` (the same leading dims, or
/// `b` rank 2 shared by every batch) whose matrices have contiguous rows or contiguous columns
/// (a column block of W_QKV, a transposed W_E as W_U, K/V heads inside a preallocated cache),
/// outside autograd; `None` when not that.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    let (ad, bd) = (a.dims(), b.dims());
    if ad.len() < 2 || bd.len() < 2 || a.track_op() || b.track_op() {
        return Ok(None);
    }
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (kb, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    let lead = &ad[..ad.len() - 2];
    if k != kb || m == 0 || n == 0 || k == 0 {
        return Ok(None);
    }
    let (Some(ao), Some(bo)) = (Operand::of(a, lead), Operand::of(b, lead)) else { return Ok(None) };
    if ao.offsets.len() != lead.iter().product::<usize>() {
        return Ok(None);
    }
    let ((ast, _), (bst, _)) = (a.storage_and_layout(), b.storage_and_layout());
    let (Some(av), Some(bv)) = (bf16_data(&ast), bf16_data(&bst)) else { return Ok(None) };
    let batch = ao.offsets.len();
    let par = if m * n * k < MIN_PARALLEL { Parallelism::Serial } else { Parallelism::Rayon(0) };
    let mut out = vec![bf16::ZERO; batch * m * n];
    for (i, c) in out.chunks_exact_mut(m * n).enumerate() {
        let (Some(am), Some(bm)) = (ao.at(av, i, m, k), bo.at(bv, i, k, n)) else { return Ok(None) };
        gemmkit::gemm(bf16::ONE, am, bm, bf16::ZERO, MatMut::from_row_major(c, m, n), par);
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
        // A transposed weight (W_U as W_Eᵀ) and V heads inside a longer preallocated cache.
        let we = Tensor::randn(0f32, 1.0, (50, 40), &dev)?.to_dtype(DType::BF16)?;
        let x1 = Tensor::randn(0f32, 1.0, (1, 40), &dev)?.to_dtype(DType::BF16)?;
        let got = matmul(&x1, &we.t()?)?.expect("taken").to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let want = matmul(&x1, &we.t()?.contiguous()?)?.expect("taken").to_dtype(DType::F32)?.to_vec2::<f32>()?;
        assert_eq!(got, want);
        let cache = Tensor::randn(0f32, 1.0, (2, 3, 16, 8), &dev)?.to_dtype(DType::BF16)?;
        let v = cache.narrow(2, 0, 5)?;
        let p = Tensor::randn(0f32, 1.0, (2, 3, 1, 5), &dev)?.to_dtype(DType::BF16)?;
        let got = matmul(&p, &v)?.expect("taken").to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let want = matmul(&p, &v.contiguous()?)?.expect("taken").to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(got, want);
        // Not bf16, or mismatched: declined.
        let a = Tensor::randn(0f32, 1.0, (4, 8), &dev)?;
        assert!(matmul(&a, &a.t()?)?.is_none());
        let a16 = a.to_dtype(DType::BF16)?;
        assert!(matmul(&a16, &a16)?.is_none());
        Ok(())
    }
}
