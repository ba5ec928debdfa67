//! `[rows, cols]` → `[cols, rows]` in a fresh buffer: what converting HF's `[out, in]` weights
//! to the compute layout does for every matrix of a checkpoint. candle's strided copy walks the
//! source element by element (seconds for a 160M-parameter model); this copies cache-sized
//! tiles on both cores.

use candle_core::{Result, Tensor};

use super::{f32_slice, par_rows};

const TILE: usize = 32;

/// `x.t().contiguous()`, tiled for 2-D contiguous f32 on the CPU.
pub fn transposed(x: &Tensor) -> Result<Tensor> {
    if !(super::is_cpu_f32(x) && x.rank() == 2) {
        return x.t()?.contiguous();
    }
    let (rows, cols) = x.dims2()?;
    let (storage, layout) = x.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else { return x.t()?.contiguous() };
    let Some(src) = f32_slice(cpu, layout) else { return x.t()?.contiguous() };
    let dst = transpose_with(rows, cols, |k| src[k])?;
    drop(storage);
    Tensor::from_vec(dst, (cols, rows), x.device())
}

/// The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix whose element `k` is
/// `at(k)`, tile by tile on both cores.
pub fn transpose_with(rows: usize, cols: usize, at: impl Fn(usize) -> f32 + Sync) -> Result<Vec<f32>> {
    let mut dst = vec![0f32; rows * cols];
    if rows == 0 || cols == 0 {
        return Ok(dst);
    }
    // Output row j is source column j.
    par_rows(&mut dst, rows, |part, first| {
        let n = part.len() / rows;
        for j0 in (0..n).step_by(TILE) {
            for i0 in (0..rows).step_by(TILE) {
                for j in j0..(j0 + TILE).min(n) {
                    let end = (i0 + TILE).min(rows);
                    for (i, o) in part[j * rows + i0..j * rows + end].iter_mut().enumerate() {
                        *o = at((i0 + i) * cols + first + j);
                    }
                }
            }
        }
    })?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candle_for_odd_shapes() {
        for (r, c) in [(1, 1), (3, 70), (129, 33), (300, 257)] {
            let x = Tensor::randn(0f32, 1.0, (r, c), &Device::Cpu).unwrap();
            let ours = transposed(&x).unwrap();
            let theirs = x.t().unwrap().contiguous().unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert_eq!(ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(), theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }
}
