//! TL-style indexing over leading dims: `All` (`:`), `At(i)` (an int: the dim is collapsed),
//! `Range(start, end)` (kept). Negative positions count from the end, as in Python.

use candle_core::Tensor;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexItem {
    All,
    At(i64),
    Range(Option<i64>, Option<i64>),
}

/// Resolves one item against a dim of size `n` into `(start, len, collapse)`.
fn resolve(item: IndexItem, n: usize, dim: usize) -> Result<(usize, usize, bool)> {
    let ni = n as i64;
    match item {
        IndexItem::All => Ok((0, n, false)),
        IndexItem::At(i) => {
            let j = if i < 0 { i + ni } else { i };
            if j < 0 || j >= ni {
                return Err(Error::shape(format!("index {i} is out of range for dim {dim} of size {n}")));
            }
            Ok((j as usize, 1, true))
        }
        IndexItem::Range(s, e) => {
            let clamp = |v: i64| (if v < 0 { v + ni } else { v }).clamp(0, ni);
            let s = s.map(clamp).unwrap_or(0);
            let e = e.map(clamp).unwrap_or(ni);
            Ok((s as usize, (e - s).max(0) as usize, false))
        }
    }
}

fn check_rank(t: &Tensor, items: &[IndexItem]) -> Result<()> {
    if items.len() > t.rank() {
        return Err(Error::shape(format!(
            "{} indices given for a tensor of rank {} (shape {:?})",
            items.len(),
            t.rank(),
            t.dims()
        )));
    }
    Ok(())
}

/// `t[items]`: a view where possible.
pub fn index(t: &Tensor, items: &[IndexItem]) -> Result<Tensor> {
    check_rank(t, items)?;
    let mut out = t.clone();
    let mut collapse = Vec::new();
    for (d, &it) in items.iter().enumerate() {
        let (s, len, c) = resolve(it, t.dim(d)?, d)?;
        if s != 0 || len != t.dim(d)? {
            out = out.narrow(d, s, len)?;
        }
        if c {
            collapse.push(d);
        }
    }
    for d in collapse.into_iter().rev() {
        out = out.squeeze(d)?;
    }
    Ok(out)
}

/// A copy of `t` with `t[items] = value`; `value` broadcasts to the indexed region.
pub fn slice_assign(t: &Tensor, items: &[IndexItem], value: &Tensor) -> Result<Tensor> {
    check_rank(t, items)?;
    let mut ranges = Vec::with_capacity(t.rank());
    let mut region = Vec::with_capacity(t.rank());
    let mut collapsed = Vec::with_capacity(t.rank());
    for d in 0..t.rank() {
        let n = t.dim(d)?;
        let (s, len, c) = resolve(items.get(d).copied().unwrap_or(IndexItem::All), n, d)?;
        if len == 0 {
            return Ok(t.clone());
        }
        ranges.push(s..s + len);
        region.push(len);
        if !c {
            collapsed.push(len);
        }
    }
    let value = value.to_dtype(t.dtype())?;
    // The value is shaped like `t[items]` (collapsed dims removed) or broadcastable to it.
    let v = value
        .broadcast_as(collapsed.as_slice())
        .map_err(|_| Error::shape(format!("cannot assign a value of shape {:?} to a slice of shape {:?}", value.dims(), collapsed)))?;
    let v = v.reshape(region.as_slice())?.contiguous()?;
    Ok(t.slice_assign(&ranges, &v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn index_collapses_ints_and_keeps_ranges() {
        let t = Tensor::arange(0f32, 24., &Device::Cpu).unwrap().reshape((2, 3, 4)).unwrap();
        let a = index(&t, &[IndexItem::At(-1), IndexItem::Range(Some(1), None)]).unwrap();
        assert_eq!(a.dims(), &[2, 4]);
        assert_eq!(a.to_vec2::<f32>().unwrap()[0], vec![16., 17., 18., 19.]);
    }

    #[test]
    fn slice_assign_scalar_and_tensor() {
        let t = Tensor::zeros((2, 3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let one = Tensor::new(1f32, &Device::Cpu).unwrap();
        let r = slice_assign(&t, &[IndexItem::All, IndexItem::All, IndexItem::At(3)], &one).unwrap();
        assert_eq!(r.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
        let v = Tensor::new(&[5f32, 6., 7., 8.], &Device::Cpu).unwrap();
        let r = slice_assign(&t, &[IndexItem::At(1), IndexItem::At(0)], &v).unwrap();
        assert_eq!(r.to_vec3::<f32>().unwrap()[1][0], vec![5., 6., 7., 8.]);
        assert!(slice_assign(&t, &[IndexItem::At(5)], &one).is_err());
    }
}
