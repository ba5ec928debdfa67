//! The skinny kernel's speed at a GPT-2-small decode step, against a plain read of memory:
//! `cargo test --release -p tl-engine --lib skinny_timing -- --ignored --nocapture`.
//!
//! Per dtype and row count: what one core reads per second (its CPU time, so that other work on
//! the machine counts less) with each instruction set, for the 48 block products (row-major,
//! DRAM-resident) and the tied unembed (dot products over W_E's rows); then both cores' wall
//! time through [`product`], and candle's matmul.

use super::*;
use half::bf16;

type Mats<W> = Vec<(Vec<W>, usize, usize)>;

fn cpu_time() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Median over `reps` runs of (wall, this thread's CPU) seconds.
fn median(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (mut wall, mut cpu) = (vec![], vec![]);
    for _ in 0..reps {
        let (t, c) = (std::time::Instant::now(), cpu_time());
        f();
        cpu.push(cpu_time() - c);
        wall.push(t.elapsed().as_secs_f64());
    }
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    (mid(&mut wall), mid(&mut cpu))
}

fn read_sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 64];
    for c in v.chunks_exact(64) {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum()
}

fn report<W: Elem + candle_core::WithDType>(name: &str, blocks: &Mats<W>, wu: &[W]) -> Result<()> {
    let (vocab, d) = (50257usize, 768usize);
    let size = std::mem::size_of::<W>();
    let bytes: usize = blocks.iter().map(|(w, _, _)| w.len() * size).sum();
    let ubytes = wu.len() * size;
    let gb = |b: usize, s: f64| b as f64 / s / 1e9;
    for m in [1usize, 8] {
        let x: Vec<f32> = (0..m * 3072).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut y = vec![0f32; m * vocab];
        let yp = y.as_mut_ptr();
        for level in isas() {
            // SAFETY: every weight holds k·n elements, `x` m·3072 ≥ m·k, `y` m·vocab ≥ m·n.
            let (_, tb) = median(5, || unsafe {
                for (w, k, n) in blocks {
                    run(level, false, m, Job { x: &x, xs: *k, k: *k, w: w.as_ptr(), ld: *n, n: *n, y: yp }, 0..*n);
                }
            });
            let (_, tu) = median(5, || unsafe { run(level, true, m, Job { x: &x, xs: d, k: d, w: wu.as_ptr(), ld: d, n: vocab, y: yp }, 0..vocab) });
            println!("{name} m={m} {level:?}, one core: blocks {:.1} GB/s, unembed {:.1} GB/s", gb(bytes, tb), gb(ubytes, tu));
        }
        let (tb, _) = median(5, || {
            for (w, k, n) in blocks {
                std::hint::black_box(product(isa(), &x[..m * k], m, *k, w, *n, *n, false, None));
            }
        });
        let (tu, _) = median(5, || {
            std::hint::black_box(product(isa(), &x[..m * d], m, d, wu, d, vocab, true, None));
        });
        let dev = Device::Cpu;
        let ws: Vec<Tensor> = blocks.iter().map(|(w, k, n)| Tensor::from_slice(w, (*k, *n), &dev)).collect::<Result<_>>()?;
        let xs: Vec<Tensor> = ws.iter().map(|w| Tensor::from_slice(&x[..m * w.dim(0).unwrap_or(0)], (m, w.dim(0).unwrap_or(0)), &dev)?.to_dtype(W::DTYPE)).collect::<Result<_>>()?;
        let (tc, _) = median(5, || {
            for (x, w) in xs.iter().zip(&ws) {
                std::hint::black_box(x.matmul(w).ok());
            }
        });
        println!(
            "{name} m={m} both cores, wall: blocks {:.2} ms ({:.1} GB/s), unembed {:.2} ms ({:.1} GB/s); candle's matmul, blocks {:.1} GB/s",
            tb * 1e3,
            gb(bytes, tb),
            tu * 1e3,
            gb(ubytes, tu),
            gb(bytes, tc)
        );
    }
    Ok(())
}

#[test]
#[ignore]
fn skinny_timing() -> Result<()> {
    let buf = vec![1f32; 64 << 20];
    let (one, _) = median(5, || assert!(read_sum(&buf) > 0.0));
    let (two, _) = median(5, || {
        let (a, b) = buf.split_at(buf.len() / 2);
        let (x, y) = rayon::join(|| read_sum(a), || read_sum(b));
        assert!(x + y > 0.0)
    });
    let gb = |s: f64| (buf.len() * 4) as f64 / s / 1e9;
    println!("plain read of 256 MiB: one core {:.1} GB/s, two {:.1} GB/s", gb(one), gb(two));
    drop(buf);
    let shapes = [(768usize, 768usize), (768, 768), (768, 768), (768, 768), (768, 3072), (3072, 768)];
    let seed = |i: usize| ((i.wrapping_mul(2654435761) >> 7) % 2000) as f32 / 1000.0 - 1.0;
    let blocks: Mats<f32> = (0..12).flat_map(|_| shapes.iter().map(|&(k, n)| ((0..k * n).map(seed).collect(), k, n))).collect();
    let wu: Vec<f32> = (0..50257 * 768).map(seed).collect();
    report("f32 ", &blocks, &wu)?;
    let to16 = |v: &[f32]| -> Vec<bf16> { v.iter().map(|&v| bf16::from_f32(v)).collect() };
    let blocks16: Mats<bf16> = blocks.iter().map(|(w, k, n)| (to16(w), *k, *n)).collect();
    report("bf16", &blocks16, &to16(&wu))?;
    let toh = |v: &[f32]| -> Vec<f16> { v.iter().map(|&v| f16::from_f32(v)).collect() };
    let blocksh: Mats<f16> = blocks.iter().map(|(w, k, n)| (toh(w), *k, *n)).collect();
    report("f16 ", &blocksh, &toh(&wu))
}
