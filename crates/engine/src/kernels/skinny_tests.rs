//! Tests of the skinny kernel (kernels/skinny.rs), and its timing against candle's matmul.

use super::*;

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
                let wts: Vec<Tensor> = ws.iter().map(|w| w.t().unwrap().contiguous().unwrap().t().unwrap()).collect();
                let mut best_t = f64::MAX;
                for _ in 0..5 {
                    let t = std::time::Instant::now();
                    for w in &wts {
                        linear(xs(w), w, None)?.unwrap();
                    }
                    best_t = best_t.min(t.elapsed().as_secs_f64());
                }
                println!("  transposed storage (dot products): {:.2} ms ({:.1} GB/s)", best_t * 1e3, bytes as f64 / best_t / 1e9);
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
                            CpuStorage::F32(v) => best(false, Job { x: &xv, m, k, w: v.as_ptr(), ld: n, n, y: y.as_mut_ptr() }, 0..n),
                            // (the transposed path is timed through `linear` on a transposed weight.)
                            CpuStorage::BF16(v) => best(false, Job { x: &xv, m, k, w: v.as_ptr(), ld: n, n, y: y.as_mut_ptr() }, 0..n),
                            CpuStorage::F16(v) => best(false, Job { x: &xv, m, k, w: v.as_ptr(), ld: n, n, y: y.as_mut_ptr() }, 0..n),
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
