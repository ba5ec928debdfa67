//! Fused CPU kernels for the hot elementwise work of a forward (f32, contiguous), ops with a
//! lean backward for gradient runs (constant weights and masks get no gradient), and the
//! two-way split the load path's passes share. Each kernel has a candle-op fallback for other
//! dtypes and devices, used by the caller.

pub mod attn_products;
pub mod attn_softmax;
pub mod cross_entropy;
pub mod decode_attn;
pub mod gated;
pub mod gelu;
pub mod gelu_erf;
pub mod gemm16;
pub mod half16;
pub mod kl_div;
pub mod layer_norm;
pub mod linear;
pub mod mask_fill;
pub mod norm_affine;
pub mod rotary;
pub mod row_ops;
pub mod skinny;
mod skinny_loops;
mod skinny_simd;
pub mod softmax;
pub mod split;
pub mod threads;
pub mod transpose;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};

/// Whether `t` is contiguous f32 on the CPU: what the fused kernels (and the load path's
/// in-place passes) take.
pub fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

/// The contiguous f32 slice a kernel reads, or None when it must fall back.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Option<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => l.contiguous_offsets().map(|(a, b)| &v[a..b]),
        _ => None,
    }
}

/// [`split::par_rows_mut`] for kernels: `f(part, first_row)` on both cores; candle's errors.
fn par_rows<T: Send>(data: &mut [T], row_len: usize, f: impl Fn(&mut [T], usize) + Sync) -> Result<()> {
    split::par_rows_mut(data, row_len, |part, first| {
        f(part, first);
        Ok(())
    })
    .map_err(|e| candle_core::Error::Msg(e.to_string()))
}

fn not_supported(op: &str) -> Result<(CpuStorage, candle_core::Shape)> {
    candle_core::bail!("{op}: the fused kernel takes contiguous f32 input")
}

/// A constant operand's CPU storage (None when it lives on another device).
fn cpu_part(st: &Storage) -> Option<&CpuStorage> {
    match st {
        Storage::Cpu(c) => Some(c),
        _ => None,
    }
}

/// A constant operand's CUDA storage (None when it lives on another device).
#[cfg(feature = "cuda")]
fn cuda_part(st: &Storage) -> Option<&candle_core::CudaStorage> {
    match st {
        Storage::Cuda(c) => Some(c),
        _ => None,
    }
}

/// Test support: kernels with a backward are checked against the candle ops they replace.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Result, Tensor};

    /// The largest gap between the gradients of `Σ coef · ours` and `Σ coef · theirs` with
    /// respect to `wrt`; an error when either has no gradient there or one of `wrt`'s shape.
    pub fn grad_gap(ours: &Tensor, theirs: &Tensor, coef: &Tensor, wrt: &Tensor) -> Result<f32> {
        let g1 = (ours * coef)?.sum_all()?.backward()?;
        let g2 = (theirs * coef)?.sum_all()?.backward()?;
        let (Some(a), Some(b)) = (g1.get(wrt), g2.get(wrt)) else { candle_core::bail!("no gradient reached the input") };
        if a.dims() != wrt.dims() || b.dims() != wrt.dims() {
            candle_core::bail!("gradient shapes {:?} / {:?}, input {:?}", a.dims(), b.dims(), wrt.dims())
        }
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }
}
