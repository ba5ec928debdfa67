//! `x @ W (+ b)` for a few rows (decode steps: one row per sequence, at most [`MAX_ROWS`]),
//! streaming the weight once at memory speed, for f32, bf16 and f16 weights.
//!
//! A general GEMM packs panels of the weight for reuse across rows; with one to eight rows there
//! is nothing to reuse, and gemm reads the weight at a third to a half of what the memory gives
//! (see DESIGN.md's GEMM facts). Here every weight element is read once, in row order: a block
//! of [`KB`] weight rows is widened to f32 sixteen columns at a time and multiplied into the
//! rows' f32 accumulators, which live in the output (L1/L2-resident: rows × n floats). The
//! columns are split between the two cores. Sums run over `k` in order, in f32; the result is
//! rounded once to the weight's dtype, as torch's 16-bit products (f32 accumulation) do.

use std::ops::Range;

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use half::{bf16, f16};

/// The most rows the kernel takes; more go to the blocked GEMM.
pub const MAX_ROWS: usize = 8;
/// Weight rows per pass over a column strip.
const KB: usize = 4;
/// Columns per vector step (one AVX-512 register of f32).
const L: usize = 16;
/// Below this many weight elements the product stays on one core.
const MIN_PARALLEL: usize = 1 << 16;

/// A weight element the kernel widens to f32.
trait Widen: Copy + Send + Sync {
    fn widen(self) -> f32;
}

impl Widen for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Widen for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl Widen for f16 {
    /// Branch-free (so that it vectorises): the exponent is rebased by a multiply, which also
    /// gets subnormals right; infinities and NaNs get the f32 all-ones exponent.
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = self.to_bits() as u32;
        let em = h & 0x7fff;
        let v = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000); // 2^112
        let special = if em >= 0x7c00 { 0x7f80_0000 } else { 0 };
        f32::from_bits(v.to_bits() | special | ((h & 0x8000) << 16))
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `y[.., cols] += x[.., rows] @ w[rows, cols]` for `R` weight rows starting at `k0`; the
/// weight's rows are `ld ≥ n` elements apart.
///
/// # Safety
/// `w` holds `(k - 1) · ld + n` elements, `y` `m × n`; `cols` lies within `0..n`, `k0 + R ≤ k`;
/// no other thread writes `y`'s columns `cols`.
#[inline(always)]
unsafe fn strip<W: Widen, const R: usize, const FMA: bool>(x: &[f32], m: usize, k: usize, k0: usize, w: *const W, ld: usize, n: usize, cols: &Range<usize>, y: *mut f32) {
    let mut j = cols.start;
    while j + L <= cols.end {
        let mut wv = [[0f32; L]; R];
        for (i, row) in wv.iter_mut().enumerate() {
            let src = w.add((k0 + i) * ld + j);
            for (l, v) in row.iter_mut().enumerate() {
                *v = (*src.add(l)).widen();
            }
        }
        for r in 0..m {
            let yp = y.add(r * n + j);
            let mut acc = [0f32; L];
            for (l, a) in acc.iter_mut().enumerate() {
                *a = *yp.add(l);
            }
            for (i, row) in wv.iter().enumerate() {
                let a = x[r * k + k0 + i];
                for l in 0..L {
                    acc[l] = madd::<FMA>(a, row[l], acc[l]);
                }
            }
            for (l, a) in acc.iter().enumerate() {
                *yp.add(l) = *a;
            }
        }
        j += L;
    }
    for jj in j..cols.end {
        for r in 0..m {
            let yp = y.add(r * n + jj);
            let mut s = *yp;
            for i in 0..R {
                s = madd::<FMA>(x[r * k + k0 + i], (*w.add((k0 + i) * ld + jj)).widen(), s);
            }
            *yp = s;
        }
    }
}

/// All of `k` for the columns `cols`.
///
/// # Safety
/// As [`strip`].
#[inline(always)]
unsafe fn columns<W: Widen, const FMA: bool>(x: &[f32], m: usize, k: usize, w: *const W, ld: usize, n: usize, cols: Range<usize>, y: *mut f32) {
    let mut k0 = 0;
    while k0 + KB <= k {
        strip::<W, KB, FMA>(x, m, k, k0, w, ld, n, &cols, y);
        k0 += KB;
    }
    while k0 < k {
        strip::<W, 1, FMA>(x, m, k, k0, w, ld, n, &cols, y);
        k0 += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn columns_avx512<W: Widen>(x: &[f32], m: usize, k: usize, w: *const W, ld: usize, n: usize, cols: Range<usize>, y: *mut f32) {
    columns::<W, true>(x, m, k, w, ld, n, cols, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn columns_avx2<W: Widen>(x: &[f32], m: usize, k: usize, w: *const W, ld: usize, n: usize, cols: Range<usize>, y: *mut f32) {
    columns::<W, true>(x, m, k, w, ld, n, cols, y)
}

/// # Safety
/// As [`strip`].
unsafe fn columns_best<W: Widen>(x: &[f32], m: usize, k: usize, w: *const W, ld: usize, n: usize, cols: Range<usize>, y: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vl") {
            return columns_avx512(x, m, k, w, ld, n, cols, y);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return columns_avx2(x, m, k, w, ld, n, cols, y);
        }
    }
    columns::<W, false>(x, m, k, w, ld, n, cols, y)
}

/// The output's base pointer, shared by the two halves (each writes its own columns).
#[derive(Clone, Copy)]
struct Out(*mut f32);
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `y = x @ w (+ b)`: `x` `[m, k]` f32, `w` `[k, n]` with rows `ld` apart, `b` `[n]`; `y`
/// `[m, n]` f32.
fn product<W: Widen>(x: &[f32], m: usize, k: usize, w: &[W], ld: usize, n: usize, b: Option<&[f32]>) -> Vec<f32> {
    assert!(ld >= n && w.len() >= (k - 1) * ld + n, "skinny: weight slice too short");
    let mut y = vec![0f32; m * n];
    if let Some(b) = b {
        for row in y.chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    }
    let out = Out(y.as_mut_ptr());
    let wp = w.as_ptr() as usize;
    let run = move |cols: Range<usize>| {
        let out = out;
        // SAFETY: `w` holds (k - 1)·ld + n elements and `y` m × n (asserted above); the halves'
        // columns are disjoint.
        unsafe { columns_best::<W>(x, m, k, wp as *const W, ld, n, cols, out.0) }
    };
    if k * n < MIN_PARALLEL || n < 2 * L {
        run(0..n);
    } else {
        let mid = (n / 2).div_ceil(L) * L;
        rayon::join(|| run(0..mid), || run(mid..n));
    }
    y
}

/// `x @ w + b` through this kernel when it takes it: CPU, `x` `[m ≤ 8, k]` and `w` `[k, n]`
/// in the same dtype (f32, bf16 or f16), `w`'s rows contiguous (a column block of a wider
/// matrix is fine: W_Q out of W_QKV), `b` one row of `n` or none. `None`: not taken.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    let (xd, wd) = (x.dims(), w.dims());
    let dtype = w.dtype();
    let takes = x.device().is_cpu()
        && w.device().is_cpu()
        && xd.len() == 2
        && wd.len() == 2
        && (1..=MAX_ROWS).contains(&xd[0])
        && xd[1] == wd[0]
        && wd[0] > 0
        && wd[1] > 0
        && x.dtype() == dtype
        && matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
        && w.layout().stride()[1] == 1
        && w.layout().stride()[0] >= wd[1]
        && b.is_none_or(|b| b.dims() == [wd[1]]);
    if !takes {
        return Ok(None);
    }
    let (m, k, n) = (xd[0], wd[0], wd[1]);
    let xs: Vec<f32> = x.contiguous()?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let bs: Option<Vec<f32>> = b.map(|b| b.to_dtype(DType::F32)?.to_vec1()).transpose()?;
    let (ws, wl) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*ws else { return Ok(None) };
    let (start, ld) = (wl.start_offset(), wl.stride()[0]);
    let end = start + (k - 1) * ld + n;
    let y = match cpu {
        CpuStorage::F32(v) => product(&xs, m, k, &v[start..end], ld, n, bs.as_deref()),
        CpuStorage::BF16(v) => product(&xs, m, k, &v[start..end], ld, n, bs.as_deref()),
        CpuStorage::F16(v) => product(&xs, m, k, &v[start..end], ld, n, bs.as_deref()),
        _ => return Ok(None),
    };
    let dev = Device::Cpu;
    let t = match dtype {
        DType::BF16 => Tensor::from_vec(y.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>(), (m, n), &dev)?,
        DType::F16 => Tensor::from_vec(y.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(), (m, n), &dev)?,
        _ => Tensor::from_vec(y, (m, n), &dev)?,
    };
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Vec<f32>> {
        let y = x.to_dtype(DType::F64)?.matmul(&w.to_dtype(DType::F64)?)?;
        let y = match b {
            Some(b) => y.broadcast_add(&b.to_dtype(DType::F64)?)?,
            None => y,
        };
        y.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
    }

    #[test]
    fn matches_a_wide_product_for_every_dtype_and_row_count() -> Result<()> {
        let dev = Device::Cpu;
        for &(k, n) in &[(37usize, 29usize), (64, 4099), (300, 16)] {
            for m in 1..=MAX_ROWS {
                for dtype in [DType::F32, DType::BF16, DType::F16] {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?.to_dtype(dtype)?;
                    let w = Tensor::randn(0f32, 1.0, (k, n), &dev)?.to_dtype(dtype)?;
                    let b = Tensor::randn(0f32, 1.0, n, &dev)?.to_dtype(dtype)?;
                    let got = linear(&x, &w, Some(&b))?.expect("taken");
                    assert_eq!(got.dtype(), dtype);
                    assert_eq!(got.dims(), [m, n]);
                    let want = reference(&x, &w, Some(&b))?;
                    let got: Vec<f32> = got.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                    // f32 sums in another order; 16-bit outputs round once.
                    let rel = match dtype { DType::F32 => 1e-5, DType::BF16 => 2f32.powi(-8), _ => 2f32.powi(-11) };
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= rel * (w.abs() + (k as f32).sqrt()), "{dtype:?} m{m} k{k} n{n}: {g} vs {w}");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn widens_every_f16_and_bf16_exactly() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            let (a, b) = (h.widen(), h.to_f32());
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "f16 {bits:#x}: {a} vs {b}");
            let h = bf16::from_bits(bits);
            let (a, b) = (h.widen(), h.to_f32());
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "bf16 {bits:#x}");
        }
    }

    #[test]
    fn declines_what_it_does_not_take() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (8, 4), &dev)?;
        assert!(linear(&Tensor::zeros((9, 8), DType::F32, &dev)?, &w, None)?.is_none());
        assert!(linear(&Tensor::zeros((2, 8), DType::F64, &dev)?, &w.to_dtype(DType::F64)?, None)?.is_none());
        let strided = Tensor::randn(0f32, 1.0, (4, 8), &dev)?.t()?;
        assert!(linear(&Tensor::zeros((2, 8), DType::F32, &dev)?, &strided, None)?.is_none());
        assert!(linear(&Tensor::zeros((2, 8), DType::BF16, &dev)?, &w, None)?.is_none());
        Ok(())
    }

    #[test]
    fn takes_a_column_block_of_a_wider_weight() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::BF16] {
            let wide = Tensor::randn(0f32, 1.0, (40, 99), &dev)?.to_dtype(dtype)?;
            let x = Tensor::randn(0f32, 1.0, (3, 40), &dev)?.to_dtype(dtype)?;
            let block = wide.narrow(1, 33, 33)?;
            let got = linear(&x, &block, None)?.expect("taken");
            let want = linear(&x, &block.contiguous()?, None)?.expect("taken");
            assert_eq!(got.to_dtype(DType::F32)?.to_vec2::<f32>()?, want.to_dtype(DType::F32)?.to_vec2::<f32>()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p tl-engine --lib skinny_timing -- --ignored --nocapture`: one
    /// GPT-2-small decode step's products (12 layers' weights, DRAM-resident), this kernel vs
    /// candle's matmul, per dtype.
    #[test]
    #[ignore]
    fn skinny_timing() -> Result<()> {
        let dev = Device::Cpu;
        let shapes = [(768usize, 2304usize), (768, 768), (768, 3072), (3072, 768)];
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let hot = std::env::var("SKINNY_HOT").is_ok();
            let ws: Vec<Tensor> = (0..12).flat_map(|_| shapes.iter().map(|&(k, n)| Tensor::randn(0f32, 1.0, (k, n), &dev).unwrap().to_dtype(dtype).unwrap())).collect();
            let ws: Vec<Tensor> = if hot { (0..48).map(|i| ws[i % 4].clone()).collect() } else { ws };
            let bytes: usize = ws.iter().map(|w| w.elem_count() * dtype.size_in_bytes()).sum();
            for m in [1usize, 8] {
                let x = Tensor::randn(0f32, 1.0, (m, 768), &dev)?.to_dtype(dtype)?;
                let x3 = Tensor::randn(0f32, 1.0, (m, 3072), &dev)?.to_dtype(dtype)?;
                let xs = |w: &Tensor| if w.dim(0).unwrap() == 768 { &x } else { &x3 };
                let time = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<f64> {
                    let mut best = f64::MAX;
                    for _ in 0..5 {
                        let t = std::time::Instant::now();
                        for w in &ws {
                            f(w)?;
                        }
                        best = best.min(t.elapsed().as_secs_f64());
                    }
                    Ok(best)
                };
                let ours = time(&|w| Ok(linear(xs(w), w, None)?.unwrap()))?;
                // One thread's CPU time (what it costs without waiting for a core).
                let cpu = || {
                    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
                };
                let t0 = cpu();
                for w in &ws {
                    let (k, n) = w.dims2()?;
                    let xv: Vec<f32> = xs(w).to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                    let mut y = vec![0f32; m * n];
                    let (st, _) = w.storage_and_layout();
                    let Storage::Cpu(c) = &*st else { panic!() };
                    unsafe {
                        match c {
                            CpuStorage::F32(v) => columns_best(&xv, m, k, v.as_ptr(), n, n, 0..n, y.as_mut_ptr()),
                            CpuStorage::BF16(v) => columns_best(&xv, m, k, v.as_ptr(), n, n, 0..n, y.as_mut_ptr()),
                            CpuStorage::F16(v) => columns_best(&xv, m, k, v.as_ptr(), n, n, 0..n, y.as_mut_ptr()),
                            _ => panic!(),
                        }
                    }
                }
                println!("  one thread, CPU time: {:.2} ms ({:.1} GB/s)", (cpu() - t0) * 1e3, bytes as f64 / (cpu() - t0) / 1e9);
                let candle = time(&|w| xs(w).matmul(w))?;
                println!("{dtype:?} m={m}: skinny {:.2} ms ({:.1} GB/s), candle {:.2} ms ({:.1} GB/s)", ours * 1e3, bytes as f64 / ours / 1e9, candle * 1e3, bytes as f64 / candle / 1e9);
            }
        }
        Ok(())
    }
}
