//! Elementwise, reduction and shape ops behind the JS `Tensor`, by name. Broadcasting follows
//! numpy/torch rules. Names are the JS method names.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};

fn same_dtype(a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    if a.dtype() == b.dtype() {
        return Ok((a.clone(), b.clone()));
    }
    // Float beats int; wider float beats narrower (torch's promotion, simplified).
    let rank = |d: DType| match d {
        DType::F64 => 5,
        DType::F32 => 4,
        DType::BF16 | DType::F16 => 3,
        DType::I64 => 2,
        DType::I32 | DType::I16 => 1,
        _ => 0,
    };
    let target = if rank(a.dtype()) >= rank(b.dtype()) { a.dtype() } else { b.dtype() };
    Ok((a.to_dtype(target)?, b.to_dtype(target)?))
}

pub fn binary(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let [a, b] = crate::device::align([a, b])?;
    let (a, b) = same_dtype(&a, &b)?;
    Ok(match op {
        "add" => a.broadcast_add(&b)?,
        "sub" => a.broadcast_sub(&b)?,
        "mul" => a.broadcast_mul(&b)?,
        "div" => a.broadcast_div(&b)?,
        "maximum" => a.broadcast_maximum(&b)?,
        "minimum" => a.broadcast_minimum(&b)?,
        "pow" => a.broadcast_pow(&b)?,
        "eq" => a.broadcast_eq(&b)?,
        "ne" => a.broadcast_ne(&b)?,
        "lt" => a.broadcast_lt(&b)?,
        "le" => a.broadcast_le(&b)?,
        "gt" => a.broadcast_gt(&b)?,
        "ge" => a.broadcast_ge(&b)?,
        "matmul" => matmul(&a, &b)?,
        other => return Err(Error::invalid(format!("unknown binary op '{other}'"))),
    })
}

/// torch.matmul semantics for rank >= 1 (1-D operands are promoted and the dim removed).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a1, b1) = (a.rank() == 1, b.rank() == 1);
    let a2 = if a1 { a.unsqueeze(0)? } else { a.clone() };
    let b2 = if b1 { b.unsqueeze(1)? } else { b.clone() };
    if a2.rank() < 2 || b2.rank() < 2 {
        return Err(Error::shape("matmul needs tensors of rank >= 1"));
    }
    let (k1, k2) = (a2.dim(D::Minus1)?, b2.dim(D::Minus2)?);
    if k1 != k2 {
        return Err(Error::shape(format!("matmul: shapes {:?} and {:?} cannot be multiplied", a.dims(), b.dims())));
    }
    let mut out = if a2.rank() == 2 && b2.rank() == 2 {
        a2.contiguous()?.matmul(&b2.contiguous()?)?
    } else if a2.rank().max(b2.rank()) <= 4 {
        a2.contiguous()?.broadcast_matmul(&b2.contiguous()?)?
    } else {
        many_batch_dims_matmul(&a2, &b2)?
    };
    if b1 {
        out = out.squeeze(D::Minus1)?;
    }
    if a1 {
        out = out.squeeze(out.rank() - if b1 { 1 } else { 2 })?;
    }
    Ok(out)
}

/// candle's CPU matmul takes at most two batch dims: broadcast the batch dims, fold them into
/// one, multiply, and unfold.
fn many_batch_dims_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let batch = candle_core::Shape::from(&a.dims()[..ra - 2]).broadcast_shape_binary_op(&candle_core::Shape::from(&b.dims()[..rb - 2]), "matmul")?;
    let n_batch = batch.elem_count();
    let (m, k, n) = (a.dim(ra - 2)?, a.dim(ra - 1)?, b.dim(rb - 1)?);
    let with = |tail: &[usize]| -> Vec<usize> { batch.dims().iter().chain(tail).copied().collect() };
    let a3 = a.broadcast_as(with(&[m, k]))?.contiguous()?.reshape((n_batch, m, k))?;
    let b3 = b.broadcast_as(with(&[k, n]))?.contiguous()?.reshape((n_batch, k, n))?;
    Ok(a3.matmul(&b3)?.reshape(with(&[m, n]))?)
}

pub fn scalar(op: &str, a: &Tensor, v: f64) -> Result<Tensor> {
    let s = Tensor::new(v, a.device())?.to_dtype(if a.dtype().is_float() { a.dtype() } else { DType::F32 })?;
    let a = if a.dtype().is_float() { a.clone() } else { a.to_dtype(DType::F32)? };
    Ok(match op {
        "add" => (a + v)?,
        "sub" => (a - v)?,
        "mul" => (a * v)?,
        "div" => (a / v)?,
        "rsub" => a.neg()?.affine(1.0, v)?,
        "pow" => a.powf(v)?,
        _ => binary(op, &a, &s)?,
    })
}

pub fn unary(op: &str, a: &Tensor) -> Result<Tensor> {
    let f = |a: &Tensor| -> Result<Tensor> { Ok(if a.dtype().is_float() { a.clone() } else { a.to_dtype(DType::F32)? }) };
    Ok(match op {
        "neg" => a.neg()?,
        "abs" => a.abs()?,
        "exp" => f(a)?.exp()?,
        "log" => f(a)?.log()?,
        "sqrt" => f(a)?.sqrt()?,
        "square" => a.sqr()?,
        "tanh" => f(a)?.tanh()?,
        "sin" => f(a)?.sin()?,
        "cos" => f(a)?.cos()?,
        "relu" => a.relu()?,
        "gelu" => f(a)?.gelu()?,
        "geluErf" => f(a)?.gelu_erf()?,
        "silu" => f(a)?.silu()?,
        "sigmoid" => candle_nn::ops::sigmoid(&f(a)?)?,
        "recip" => f(a)?.recip()?,
        "floor" => f(a)?.floor()?,
        "ceil" => f(a)?.ceil()?,
        "round" => f(a)?.round()?,
        "isnan" => f(a)?.ne(&f(a)?)?,
        other => return Err(Error::invalid(format!("unknown unary op '{other}'"))),
    })
}

/// Normalises a possibly negative dim.
pub fn dim(t: &Tensor, d: i64) -> Result<usize> {
    let r = t.rank() as i64;
    let x = if d < 0 { d + r } else { d };
    if x < 0 || x >= r.max(1) {
        return Err(Error::shape(format!("dim {d} is out of range for a tensor of rank {r}")));
    }
    Ok(x as usize)
}

/// Reductions over `dims` (all dims when empty).
pub fn reduce(op: &str, a: &Tensor, dims: &[i64], keepdim: bool) -> Result<Tensor> {
    let mut ds: Vec<usize> = if dims.is_empty() { (0..a.rank()).collect() } else { dims.iter().map(|&d| dim(a, d)).collect::<Result<_>>()? };
    ds.sort_unstable();
    ds.dedup();
    if a.rank() == 0 {
        return Ok(a.clone());
    }
    let fa = if a.dtype().is_float() { a.clone() } else { a.to_dtype(DType::F32)? };
    let mut out = match op {
        "sum" => a.sum_keepdim(ds.as_slice())?,
        "mean" => fa.mean_keepdim(ds.as_slice())?,
        "max" | "min" | "argmax" | "argmin" => {
            if ds.len() != 1 && !(op.starts_with("arg") && dims.is_empty()) && ds.len() != a.rank() {
                return Err(Error::invalid(format!("{op} reduces over one dim (or all)")));
            }
            let (t, d) = if ds.len() == 1 { (a.clone(), ds[0]) } else { (a.flatten_all()?, 0) };
            let r = match op {
                "max" => t.max_keepdim(d)?,
                "min" => t.min_keepdim(d)?,
                "argmax" => t.argmax_keepdim(d)?.to_dtype(DType::I64)?,
                _ => t.argmin_keepdim(d)?.to_dtype(DType::I64)?,
            };
            if ds.len() != 1 {
                return Ok(if keepdim { r.reshape(vec![1; a.rank()])? } else { r.squeeze(0)? });
            }
            r
        }
        "var" | "std" => {
            let n: usize = ds.iter().map(|&d| a.dim(d).unwrap_or(1)).product();
            let mean = fa.mean_keepdim(ds.as_slice())?;
            let ss = fa.broadcast_sub(&mean)?.sqr()?.sum_keepdim(ds.as_slice())?;
            let var = (ss / ((n.max(2) - 1) as f64))?;
            if op == "std" { var.sqrt()? } else { var }
        }
        other => return Err(Error::invalid(format!("unknown reduction '{other}'"))),
    };
    if !keepdim {
        for &d in ds.iter().rev() {
            out = out.squeeze(d)?;
        }
    }
    Ok(out)
}

pub fn softmax(a: &Tensor, d: i64, log: bool) -> Result<Tensor> {
    let d = dim(a, d)?;
    let a = if a.dtype().is_float() { a.clone() } else { a.to_dtype(DType::F32)? };
    Ok(if log { candle_nn::ops::log_softmax(&a, d)? } else { candle_nn::ops::softmax(&a, d)? })
}

/// p-norm along `dims` (Frobenius / L2 by default).
pub fn norm(a: &Tensor, p: f64, dims: &[i64], keepdim: bool) -> Result<Tensor> {
    let fa = if a.dtype().is_float() { a.clone() } else { a.to_dtype(DType::F32)? };
    let powed = if p == 2.0 { fa.sqr()? } else { fa.abs()?.powf(p)? };
    let s = reduce("sum", &powed, dims, keepdim)?;
    Ok(if p == 2.0 { s.sqrt()? } else { s.powf(1.0 / p)? })
}

/// Values and int64 indices of the `k` largest (or smallest) entries along `d`.
pub fn topk(a: &Tensor, k: usize, d: i64, largest: bool) -> Result<(Tensor, Tensor)> {
    let d = dim(a, d)?;
    let n = a.dim(d)?;
    if k > n {
        return Err(Error::shape(format!("topk: k={k} is larger than dim {d} of size {n}")));
    }
    let last = a.rank() - 1;
    let t = a.transpose(d, last)?.contiguous()?;
    let idx = t.arg_sort_last_dim(!largest)?.narrow(last, 0, k)?.contiguous()?;
    let vals = t.gather(&idx, last)?;
    Ok((vals.transpose(d, last)?.contiguous()?, idx.to_dtype(DType::I64)?.transpose(d, last)?.contiguous()?))
}

/// Reshape with one optional `-1`.
pub fn reshape(a: &Tensor, shape: &[i64]) -> Result<Tensor> {
    let n = a.elem_count();
    let known: i64 = shape.iter().filter(|&&s| s >= 0).product();
    let holes = shape.iter().filter(|&&s| s == -1).count();
    if holes > 1 || shape.iter().any(|&s| s < -1) {
        return Err(Error::shape(format!("invalid shape {shape:?}")));
    }
    let dims: Vec<usize> = shape
        .iter()
        .map(|&s| if s == -1 { if known == 0 { 0 } else { n / known as usize } } else { s as usize })
        .collect();
    if dims.iter().product::<usize>() != n {
        return Err(Error::shape(format!("cannot reshape a tensor of shape {:?} to {shape:?}", a.dims())));
    }
    Ok(a.reshape(dims)?)
}

pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "float32" | "f32" => DType::F32,
        "float16" | "f16" => DType::F16,
        "bfloat16" | "bf16" => DType::BF16,
        "float64" | "f64" => DType::F64,
        "int64" | "i64" => DType::I64,
        "int32" | "i32" => DType::I32,
        "uint32" | "u32" => DType::U32,
        "uint8" | "u8" | "bool" => DType::U8,
        other => return Err(Error::dtype(format!("unknown dtype '{other}'"))),
    })
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::U32 => "uint32",
        DType::U8 => "uint8",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matmul_with_more_than_two_batch_dims_broadcasts() {
        let a = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((2, 1, 3, 1, 2, 2)).unwrap();
        let b = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((1, 2, 1, 3, 2, 1)).unwrap();
        let out = matmul(&a, &b).unwrap();
        assert_eq!(out.dims(), &[2, 2, 3, 3, 2, 1]);
        // Element [1, 1, 2, 0] = a[1, 0, 2, 0] @ b[0, 1, 0, 0].
        let want = a.get(1).unwrap().get(0).unwrap().get(2).unwrap().get(0).unwrap().matmul(&b.get(0).unwrap().get(1).unwrap().get(0).unwrap().get(0).unwrap()).unwrap();
        let got = out.get(1).unwrap().get(1).unwrap().get(2).unwrap().get(0).unwrap();
        assert_eq!(got.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
    }
}
