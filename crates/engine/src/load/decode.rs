//! Safetensors' little-endian f32 bytes (mapped) to an owned `Vec<f32>` in one copy, on two
//! threads. Writing the fresh buffer (page faults) is most of the cost of reading weights, and
//! the faults of the two halves proceed in parallel.

use crate::error::{Error, Result};
use crate::kernels::split::par_rows_mut;

fn decode_into(dst: &mut [f32], src: &[u8]) {
    let (chunks, _) = src.as_chunks::<4>();
    for (d, c) in dst.iter_mut().zip(chunks) {
        *d = f32::from_le_bytes(*c);
    }
}

/// `bytes` as f32s; `name` for the error when the length is not a whole number of them.
pub fn f32s_from_le(bytes: &[u8], name: &str) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::corrupt(format!("tensor '{name}': {} bytes is not a whole number of f32s", bytes.len())));
    }
    // calloc: a fresh mapping is not written before the copy touches it.
    let mut out = vec![0f32; bytes.len() / 4];
    par_rows_mut(&mut out, 1, |part, first| {
        decode_into(part, bytes.get(first * 4..(first + part.len()) * 4).unwrap_or_default())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_aligned_and_unaligned_bytes() {
        let vals: Vec<f32> = (0..200_001).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut bytes = vec![0u8];
        bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(f32s_from_le(&bytes[1..], "x").unwrap(), vals);
        let copy = bytes[1..].to_vec();
        assert_eq!(f32s_from_le(&copy, "x").unwrap(), vals);
        assert!(f32s_from_le(&bytes[..7], "x").is_err());
    }
}
