//! Tests of the skinny kernel (kernels/skinny.rs), and its timing against candle's matmul.

use super::*;
use half::bf16;

/// Every instruction set this CPU has, lowest first.
fn isas() -> Vec<Isa> {
    let mut all = vec![Isa::Plain];
    #[cfg(target_arch = "x86_64")]
    {
        if matches!(isa(), Isa::Avx512 | Isa::Avx2) {
            all.push(Isa::Avx2);
        }
        if isa() == Isa::Avx512 {
            all.push(Isa::Avx512);
        }
    }
    all
}

mod checks {
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

    /// The vector loads widen as [`Elem::widen`] does, for every 16-bit pattern.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_loads_widen_every_f16_and_bf16_exactly() {
        use crate::kernels::skinny_simd::{Avx2, Avx512, Simd};
        #[target_feature(enable = "avx512f,avx2,f16c")]
        unsafe fn with_avx512<W: Elem>(all: &[W], out: &mut [f32]) {
            for (c, o) in all.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
                Avx512::store(o.as_mut_ptr(), Avx512::load(c.as_ptr()));
            }
        }
        #[target_feature(enable = "avx2,f16c")]
        unsafe fn with_avx2<W: Elem>(all: &[W], out: &mut [f32]) {
            for (c, o) in all.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
                Avx2::store(o.as_mut_ptr(), Avx2::load(c.as_ptr()));
            }
        }
        fn check<W: Elem>(all: &[W], out: &[f32]) {
            for (g, w) in out.iter().zip(all) {
                let w = w.widen();
                assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{g} vs {w}");
            }
        }
        let h: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let b: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
        let mut out = vec![0f32; 1 << 16];
        for level in [Isa::Avx512, Isa::Avx2] {
            if level == Isa::Avx512 && isa() != Isa::Avx512 || isa() == Isa::Plain {
                continue;
            }
            // SAFETY: 16 elements a load, on a CPU that has the instruction set.
            unsafe { if level == Isa::Avx512 { with_avx512(&h, &mut out) } else { with_avx2(&h, &mut out) } };
            check(&h, &out);
            unsafe { if level == Isa::Avx512 { with_avx512(&b, &mut out) } else { with_avx2(&b, &mut out) } };
            check(&b, &out);
        }
    }

    #[test]
    fn declines_what_it_does_not_take() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (8, 4), &dev)?;
        assert!(linear(&Tensor::zeros((9, 8), DType::F32, &dev)?, &w, None)?.is_none());
        assert!(linear(&Tensor::zeros((2, 8), DType::F64, &dev)?, &w.to_dtype(DType::F64)?, None)?.is_none());
        let strided = Tensor::randn(0f32, 1.0, (4, 16), &dev)?.narrow(1, 0, 8)?.t()?.narrow(1, 0, 2)?;
        assert!(linear(&Tensor::zeros((2, 8), DType::F32, &dev)?, &strided, None)?.is_some());
        assert!(linear(&Tensor::zeros((2, 8), DType::BF16, &dev)?, &w, None)?.is_none());
        Ok(())
    }

    #[test]
    fn takes_a_transposed_weight() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for (k, n, m) in [(40usize, 99usize, 1usize), (37, 20, 8), (64, 3, 3)] {
                let we = Tensor::randn(0f32, 1.0, (n, k), &dev)?.to_dtype(dtype)?;
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?.to_dtype(dtype)?;
                let b = Tensor::randn(0f32, 1.0, n, &dev)?.to_dtype(dtype)?;
                let got: Vec<f32> = linear(&x, &we.t()?, Some(&b))?.expect("taken").to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                let want = reference(&x, &we.t()?, Some(&b))?;
                let rel = match dtype { DType::F32 => 1e-5, DType::BF16 => 2f32.powi(-8), _ => 2f32.powi(-11) };
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= rel * (w.abs() + (k as f32).sqrt()), "{dtype:?} m{m} k{k} n{n}: {g} vs {w}");
                }
            }
        }
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

/// Every instruction set this CPU has gives, bit for bit, what the documented order of sums
/// gives when computed one element at a time.
mod exact {
    use super::*;

    /// `y` of [`product`] computed element by element: `fma` as the vector paths (one rounding
    /// per multiply-add), or not, as the plain path.
    fn reference(fma: bool, x: &[f32], m: usize, k: usize, w: &[f32], ld: usize, n: usize, transposed: bool, b: &[f32]) -> Vec<f32> {
        let madd = |a: f32, c: f32, s: f32| if fma { a.mul_add(c, s) } else { a * c + s };
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            let xr = &x[r * k..(r + 1) * k];
            for j in 0..n {
                y[r * n + j] = if transposed {
                    let wj = &w[j * ld..j * ld + k];
                    let full = k / L * L;
                    let mut lanes = [0f32; L];
                    for kk in (0..full).step_by(L) {
                        for l in 0..L {
                            lanes[l] = madd(xr[kk + l], wj[kk + l], lanes[l]);
                        }
                    }
                    let mut width = L / 2;
                    while width > 0 {
                        for l in 0..width {
                            lanes[l] += lanes[l + width];
                        }
                        width /= 2;
                    }
                    let s = (full..k).fold(lanes[0], |s, t| madd(xr[t], wj[t], s));
                    b[j] + s
                } else {
                    let h = k_split(k);
                    let col = |range: Range<usize>, s0: f32| range.fold(s0, |s, i| madd(xr[i], w[i * ld + j], s));
                    if h == 0 {
                        col(0..k, b[j])
                    } else {
                        col(0..h, b[j]) + col(h..k, 0.0)
                    }
                };
            }
        }
        y
    }

    fn case<W: Elem>(to: impl Fn(f32) -> W, level: Isa, m: usize, k: usize, n: usize, ld: usize, transposed: bool) {
        let seed = |i: usize, s: usize| (((i * 2654435761 + s * 40503) >> 5) % 2001) as f32 / 1000.0 - 1.0;
        let x: Vec<f32> = (0..m * k).map(|i| seed(i, 1)).collect();
        let len = if transposed { (n - 1) * ld + k } else { (k - 1) * ld + n };
        let w: Vec<W> = (0..len).map(|i| to(seed(i, 2))).collect();
        let b: Vec<f32> = (0..n).map(|i| seed(i, 3)).collect();
        let got = product(level, &x, m, k, &w, ld, n, transposed, Some(&b));
        let wide: Vec<f32> = w.iter().map(|v| v.widen()).collect();
        let want = reference(level != Isa::Plain, &x, m, k, &wide, ld, n, transposed, &b);
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), e.to_bits(), "{level:?} m{m} k{k} n{n} ld{ld} transposed {transposed} at {i}: {g} vs {e}");
        }
    }

    #[test]
    fn every_path_sums_in_the_documented_order() {
        // Tails of k and n (not multiples of 16 or of the 8-row passes), both splits, a large
        // product that takes both cores, and strided weights.
        let shapes = [(37usize, 29usize, false), (300, 16, false), (770, 1100, false), (5, 40, false), (40, 99, true), (37, 20, true), (800, 301, true), (7, 3, true)];
        for level in isas() {
            for &(k, n, transposed) in &shapes {
                for m in 1..=MAX_ROWS {
                    let inner = if transposed { k } else { n };
                    for ld in [inner, inner + 3] {
                        case(|v| v, level, m, k, n, ld, transposed);
                        case(bf16::from_f32, level, m, k, n, ld, transposed);
                        case(f16::from_f32, level, m, k, n, ld, transposed);
                    }
                }
            }
        }
    }
}

#[path = "skinny_timing.rs"]
mod timing;
