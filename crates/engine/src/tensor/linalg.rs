//! Dense linear algebra that candle lacks: batched thin SVD and eigenvalues of square matrices.
//!
//! The decompositions run on [`faer`] (pure Rust). Why faer rather than nalgebra: faer's SVD and
//! real Schur/eigenvalue routines are blocked, LAPACK-class algorithms (nalgebra's are textbook
//! unblocked ones, several times slower on model-sized matrices such as a 3072×768 `W_in`), and
//! faer builds on the very crates candle already compiles (`gemm`, `pulp`, `dyn-stack`,
//! `num-complex`), so it adds little to the build. It is used with default features off
//! (`std` only): no rayon, no sparse solvers, no npy/rand, so the decompositions run on the
//! calling thread.
//!
//! Every matrix is copied to f64, decomposed, and the results cast back to the input dtype
//! (f32 or f64): f32 inputs get results at least as accurate as torch's f32 LAPACK calls.
//! Inputs with NaN or infinity are refused with a clear error instead of returning garbage.

use std::panic::{catch_unwind, AssertUnwindSafe};

use candle_core::{DType, Device, Tensor};
use faer::{Mat, MatRef};

use crate::error::{Error, ErrorCode, Result};

/// A thin SVD `M = U diag(S) Vᵀ` of a batch of matrices `[..., m, n]`, with `k = min(m, n)`.
pub struct Svd {
    /// `[..., m, k]`, orthonormal columns (left singular vectors).
    pub u: Tensor,
    /// `[..., k]`, non-negative, non-increasing.
    pub s: Tensor,
    /// `[..., n, k]`, orthonormal columns (right singular vectors). This is `V`, not `Vᴴ`.
    pub v: Tensor,
}

/// Eigenvalues of a batch of square matrices `[..., n, n]` as two real tensors `[..., n]`.
pub struct Eigenvalues {
    pub real: Tensor,
    pub imag: Tensor,
}

/// Batch layout of a `[..., m, n]` tensor: leading dims and the matrix dims.
struct Batch {
    lead: Vec<usize>,
    m: usize,
    n: usize,
    count: usize,
    dtype: DType,
    device: Device,
}

fn batch_of(t: &Tensor, op: &str) -> Result<Batch> {
    let dims = t.dims();
    if dims.len() < 2 {
        return Err(Error::shape(format!("{op} needs a matrix or a batch of matrices [..., m, n], got shape {dims:?}")));
    }
    match t.dtype() {
        DType::F32 | DType::F64 => {}
        other => {
            return Err(Error::dtype(format!(
                "{op} works on float32 or float64 tensors, got {}; cast it first",
                super::ops::dtype_name(other)
            )))
        }
    }
    let lead = dims[..dims.len() - 2].to_vec();
    let (m, n) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    Ok(Batch { count: lead.iter().product(), lead, m, n, dtype: t.dtype(), device: t.device().clone() })
}

/// The tensor's values as one row-major f64 buffer, refusing NaN and infinity.
fn values(t: &Tensor, op: &str) -> Result<Vec<f64>> {
    let data = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(format!(
            "{op}: the input contains {} (at flat position {i}); it has no decomposition",
            if data[i].is_nan() { "NaN" } else { "an infinity" }
        )));
    }
    Ok(data)
}

fn out(data: Vec<f64>, shape: Vec<usize>, b: &Batch) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(b.dtype)?.to_device(&b.device)?)
}

fn with_dims(lead: &[usize], tail: &[usize]) -> Vec<usize> {
    lead.iter().chain(tail).copied().collect()
}

/// Runs a faer call, turning a panic inside it into an error (the engine never panics).
fn shielded<T>(op: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| Error::new(ErrorCode::Internal, format!("{op}: the linear algebra backend failed")))
}

fn matrix(data: &[f64], m: usize, n: usize) -> Mat<f64> {
    Mat::from_fn(m, n, |i, j| data[i * n + j])
}

/// Thin SVD of every matrix in `t: [..., m, n]`, as `torch.linalg.svd(t, full_matrices=False)`
/// up to the sign of each singular pair, with `V` returned instead of `Vᴴ`.
///
/// Signs are made deterministic: in each left singular vector the entry of largest magnitude
/// (the first such entry on ties) is positive, and the right vector is flipped with it.
pub fn svd(t: &Tensor) -> Result<Svd> {
    let b = batch_of(t, "svd")?;
    let (m, n) = (b.m, b.n);
    let k = m.min(n);
    let data = values(t, "svd")?;
    let (mut us, mut ss, mut vs) = (Vec::with_capacity(b.count * m * k), Vec::with_capacity(b.count * k), Vec::with_capacity(b.count * n * k));
    if k > 0 {
        for i in 0..b.count {
            let a = matrix(&data[i * m * n..(i + 1) * m * n], m, n);
            let dec = shielded("svd", || a.thin_svd())?
                .map_err(|e| Error::new(ErrorCode::Internal, format!("svd did not converge ({e:?}) for matrix {i} of the batch")))?;
            push_svd(dec.U(), dec.S().column_vector().iter().copied(), dec.V(), &mut us, &mut ss, &mut vs);
        }
    }
    Ok(Svd {
        u: out(us, with_dims(&b.lead, &[m, k]), &b)?,
        s: out(ss, with_dims(&b.lead, &[k]), &b)?,
        v: out(vs, with_dims(&b.lead, &[n, k]), &b)?,
    })
}

/// Appends one decomposition row-major, with the sign convention applied.
fn push_svd(u: MatRef<'_, f64>, s: impl Iterator<Item = f64>, v: MatRef<'_, f64>, us: &mut Vec<f64>, ss: &mut Vec<f64>, vs: &mut Vec<f64>) {
    let k = u.ncols();
    let signs: Vec<f64> = (0..k)
        .map(|c| {
            let mut best = 0.0f64;
            for r in 0..u.nrows() {
                let x = u[(r, c)];
                if x.abs() > best.abs() {
                    best = x;
                }
            }
            if best < 0.0 { -1.0 } else { 1.0 }
        })
        .collect();
    for r in 0..u.nrows() {
        us.extend((0..k).map(|c| u[(r, c)] * signs[c]));
    }
    ss.extend(s);
    for r in 0..v.nrows() {
        vs.extend((0..k).map(|c| v[(r, c)] * signs[c]));
    }
}

/// Eigenvalues of every square matrix in `t: [..., n, n]`, as `torch.linalg.eig(t).eigenvalues`
/// split into real and imaginary parts. Complex eigenvalues of a real matrix come in conjugate
/// pairs. Their order is the backend's (torch's is LAPACK's; neither is sorted).
pub fn eigenvalues(t: &Tensor) -> Result<Eigenvalues> {
    let b = batch_of(t, "eigenvalues")?;
    if b.m != b.n {
        return Err(Error::shape(format!("eigenvalues need square matrices, got shape {:?}", t.dims())));
    }
    let n = b.n;
    let data = values(t, "eigenvalues")?;
    let (mut re, mut im) = (Vec::with_capacity(b.count * n), Vec::with_capacity(b.count * n));
    if n > 0 {
        for i in 0..b.count {
            let a = matrix(&data[i * n * n..(i + 1) * n * n], n, n);
            let ev = shielded("eigenvalues", || a.eigenvalues())?
                .map_err(|e| Error::new(ErrorCode::Internal, format!("eigenvalues did not converge ({e:?}) for matrix {i} of the batch")))?;
            for z in ev {
                re.push(z.re);
                im.push(z.im);
            }
        }
    }
    let shape = with_dims(&b.lead, &[n]);
    Ok(Eigenvalues { real: out(re, shape.clone(), &b)?, imag: out(im, shape, &b)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(data: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    /// A deterministic pseudo-random buffer (xorshift), values in [-1, 1).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
        a.to_dtype(DType::F64).unwrap().sub(&b.to_dtype(DType::F64).unwrap()).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    fn reconstruct(d: &Svd) -> Tensor {
        let us = d.u.broadcast_mul(&d.s.unsqueeze(d.s.rank() - 1).unwrap()).unwrap();
        us.matmul(&d.v.transpose(d.v.rank() - 2, d.v.rank() - 1).unwrap().contiguous().unwrap()).unwrap()
    }

    fn assert_orthonormal_cols(q: &Tensor, tol: f64) {
        let r = q.rank();
        let gram = q.transpose(r - 2, r - 1).unwrap().contiguous().unwrap().matmul(q).unwrap();
        let k = q.dim(r - 1).unwrap();
        let eye = Tensor::eye(k, q.dtype(), &Device::Cpu).unwrap().broadcast_as(gram.shape()).unwrap();
        assert!(max_abs(&gram, &eye) < tol, "columns are not orthonormal");
    }

    #[test]
    fn svd_reconstructs_tall_wide_and_batched_matrices() {
        for (shape, seed) in [(vec![5usize, 3], 1u64), (vec![3, 7], 2), (vec![2, 3, 4, 6], 3), (vec![4, 4], 4)] {
            let n: usize = shape.iter().product();
            let a = t(&noise(n, seed), &shape);
            let d = svd(&a).unwrap();
            let r = shape.len();
            let k = shape[r - 2].min(shape[r - 1]);
            assert_eq!(d.u.dims(), with_dims(&shape[..r - 2], &[shape[r - 2], k]).as_slice());
            assert_eq!(d.s.dims(), with_dims(&shape[..r - 2], &[k]).as_slice());
            assert_eq!(d.v.dims(), with_dims(&shape[..r - 2], &[shape[r - 1], k]).as_slice());
            assert!(max_abs(&reconstruct(&d), &a) < 1e-12, "reconstruction of {shape:?}");
            assert_orthonormal_cols(&d.u, 1e-12);
            assert_orthonormal_cols(&d.v, 1e-12);
            let s = d.s.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for row in s.chunks(k) {
                assert!(row.windows(2).all(|w| w[0] >= w[1]) && row.iter().all(|&x| x >= 0.0), "S sorted, non-negative: {row:?}");
            }
        }
    }

    #[test]
    fn svd_known_values_and_sign_convention() {
        // diag(3, -2) padded: singular values 3, 2.
        let a = t(&[0.0, 3.0, -2.0, 0.0, 0.0, 0.0], &[3, 2]);
        let d = svd(&a).unwrap();
        assert_eq!(d.s.to_vec1::<f64>().unwrap(), vec![3.0, 2.0]);
        let u = d.u.to_vec2::<f64>().unwrap();
        // Largest-magnitude entry of each left vector is positive.
        assert_eq!(u[0][0], 1.0);
        assert_eq!(u[1][1], 1.0);
        let v = d.v.to_vec2::<f64>().unwrap();
        assert_eq!(v, vec![vec![0.0, -1.0], vec![1.0, 0.0]]);
        // Flipping the input's sign flips V, not U: signs are a function of U.
        let d2 = svd(&a.neg().unwrap()).unwrap();
        assert_eq!(d2.u.to_vec2::<f64>().unwrap(), u);
    }

    #[test]
    fn svd_keeps_dtype_and_handles_empty() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu).unwrap();
        let d = svd(&a).unwrap();
        assert_eq!(d.u.dtype(), DType::F32);
        assert_eq!(d.s.dtype(), DType::F32);
        // Strided views (a transpose, a broadcast) are read by their logical layout.
        let wide = t(&noise(12, 5), &[3, 4]);
        let (d1, d2) = (svd(&wide).unwrap(), svd(&wide.t().unwrap()).unwrap());
        assert!(max_abs(&d1.s, &d2.s) < 1e-12);
        let rep = svd(&wide.unsqueeze(0).unwrap().broadcast_as((2, 3, 4)).unwrap()).unwrap();
        assert!(max_abs(&rep.s.get(1).unwrap(), &d1.s) < 1e-12);
        let e = svd(&Tensor::zeros((0, 3, 2), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(e.u.dims(), &[0, 3, 2]);
        let z = svd(&Tensor::zeros((3, 0), DType::F64, &Device::Cpu).unwrap()).unwrap();
        assert_eq!((z.u.dims(), z.s.dims(), z.v.dims()), (&[3usize, 0][..], &[0usize][..], &[0usize, 0][..]));
    }

    #[test]
    fn eigenvalues_real_and_complex() {
        // Rotation by 90° scaled by 2: eigenvalues ±2i. Upper triangular: its diagonal.
        let rot = t(&[0.0, -2.0, 2.0, 0.0], &[2, 2]);
        let e = eigenvalues(&rot).unwrap();
        let mut im = e.imag.to_vec1::<f64>().unwrap();
        im.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!(e.real.to_vec1::<f64>().unwrap().iter().all(|x| x.abs() < 1e-12));
        assert!((im[0] + 2.0).abs() < 1e-12 && (im[1] - 2.0).abs() < 1e-12);

        let tri = t(&[1.0, 5.0, 7.0, 0.0, -3.0, 2.0, 0.0, 0.0, 4.0], &[1, 3, 3]);
        let e = eigenvalues(&tri).unwrap();
        assert_eq!(e.real.dims(), &[1, 3]);
        let mut re = e.real.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        re.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!(re.iter().zip([-3.0, 1.0, 4.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{re:?}");
    }

    #[test]
    fn eigenvalues_sum_to_trace_in_a_batch() {
        let a = t(&noise(2 * 6 * 6, 9), &[2, 6, 6]);
        let e = eigenvalues(&a).unwrap();
        let tr: Vec<f64> = (0..2).map(|b| (0..6).map(|i| a.get(b).unwrap().get(i).unwrap().get(i).unwrap().to_scalar::<f64>().unwrap()).sum()).collect();
        let sums = e.real.sum(1).unwrap().to_vec1::<f64>().unwrap();
        let isums = e.imag.sum(1).unwrap().to_vec1::<f64>().unwrap();
        for b in 0..2 {
            assert!((sums[b] - tr[b]).abs() < 1e-10 && isums[b].abs() < 1e-10);
        }
    }

    #[test]
    fn errors_not_panics() {
        let err = eigenvalues(&t(&[1.0; 6], &[2, 3])).err().unwrap();
        assert_eq!(err.code, ErrorCode::ShapeMismatch);
        let err = svd(&t(&[1.0, 2.0], &[2])).err().unwrap();
        assert_eq!(err.code, ErrorCode::ShapeMismatch);
        let err = svd(&t(&[1.0, f64::NAN, 0.0, 1.0], &[2, 2])).err().unwrap();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("NaN"), "{}", err.message);
        let err = eigenvalues(&t(&[1.0, f64::INFINITY, 0.0, 1.0], &[2, 2])).err().unwrap();
        assert!(err.message.contains("infinity"), "{}", err.message);
        let ints = Tensor::from_slice(&[1i64, 2, 3, 4], (2, 2), &Device::Cpu).unwrap();
        assert_eq!(svd(&ints).err().unwrap().code, ErrorCode::DType);
    }
}
