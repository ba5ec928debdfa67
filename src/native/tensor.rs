//! `NativeTensor`: a candle tensor held by a JS object. Its bytes are reported to V8 as
//! external memory; `dispose()` frees them early.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::{DType, Device, Tensor};
use tl_engine::tensor::{index, linalg, ops};
use tl_engine::{Error, ErrorCode};

use crate::errors::{guard, invalid, to_napi, IntoNapi};

#[napi(custom_finalize)]
pub struct NativeTensor {
    t: Option<Tensor>,
    bytes: i64,
}

impl ObjectFinalize for NativeTensor {
    fn finalize(self, env: Env) -> Result<()> {
        if self.t.is_some() && self.bytes > 0 {
            let _ = env.adjust_external_memory(-self.bytes);
        }
        Ok(())
    }
}

pub fn nbytes(t: &Tensor) -> i64 {
    (t.elem_count() * t.dtype().size_in_bytes()) as i64
}

/// Wraps an engine tensor for JS, reporting its memory to V8.
pub fn wrap(env: &Env, t: Tensor) -> Result<NativeTensor> {
    let bytes = nbytes(&t);
    if bytes > 0 {
        env.adjust_external_memory(bytes)?;
    }
    Ok(NativeTensor { t: Some(t), bytes })
}

impl NativeTensor {
    pub fn tensor(&self) -> Result<&Tensor> {
        self.t.as_ref().ok_or_else(|| to_napi(Error::new(ErrorCode::Disposed, "this tensor was disposed")))
    }
}

/// One TL-style index entry from JS: `null` (all), an int, or `[start, end]` (either may be null).
#[napi(object)]
pub struct IndexSpec {
    pub kind: String,
    pub at: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

fn items(spec: &[IndexSpec]) -> Result<Vec<index::IndexItem>> {
    spec.iter()
        .map(|s| match s.kind.as_str() {
            "all" => Ok(index::IndexItem::All),
            "at" => Ok(index::IndexItem::At(s.at.unwrap_or(0))),
            "range" => Ok(index::IndexItem::Range(s.start, s.end)),
            k => Err(invalid(format!("unknown index kind '{k}'"))),
        })
        .collect()
}

/// A shape from JS: non-negative dims whose element count does not overflow.
fn dims_of(shape: &[i64]) -> Result<Vec<usize>> {
    if shape.iter().any(|&d| d < 0) {
        return Err(invalid(format!("shape {shape:?} has a negative dim")));
    }
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    if dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none() {
        return Err(invalid(format!("shape {shape:?} has more elements than can be addressed")));
    }
    Ok(dims)
}

/// [`dims_of`] for `len` values.
fn shape_of(shape: &[i64], len: usize) -> Result<Vec<usize>> {
    let dims = dims_of(shape)?;
    if dims.iter().product::<usize>() != len {
        return Err(to_napi(Error::shape(format!("{len} values do not fill shape {shape:?}"))));
    }
    Ok(dims)
}

macro_rules! from_typed {
    ($name:ident, $arr:ty, $ty:ty) => {
        #[napi]
        pub fn $name(env: Env, data: $arr, shape: Vec<i64>) -> Result<NativeTensor> {
            guard(|| {
                let dims = shape_of(&shape, data.len())?;
                let slice: &[$ty] = &data;
                let t = Tensor::from_slice(slice, dims, &Device::Cpu).napi()?;
                wrap(&env, t)
            })
        }
    };
}
from_typed!(tensor_from_f32, Float32Array, f32);
from_typed!(tensor_from_f64, Float64Array, f64);
from_typed!(tensor_from_i64, BigInt64Array, i64);
from_typed!(tensor_from_u8, Uint8Array, u8);

#[napi]
pub fn tensor_from_i32(env: Env, data: Int32Array, shape: Vec<i64>) -> Result<NativeTensor> {
    guard(|| {
        let dims = shape_of(&shape, data.len())?;
        let v: Vec<i64> = data.iter().map(|&x| x as i64).collect();
        wrap(&env, Tensor::from_vec(v, dims, &Device::Cpu).napi()?)
    })
}

#[napi]
pub fn tensor_full(env: Env, shape: Vec<i64>, value: f64, dtype: String) -> Result<NativeTensor> {
    guard(|| {
        let dims = dims_of(&shape)?;
        let dt = ops::parse_dtype(&dtype).napi()?;
        let t = Tensor::full(value, dims, &Device::Cpu).napi()?.to_dtype(dt).napi()?;
        wrap(&env, t)
    })
}

#[napi]
pub fn tensor_arange(env: Env, start: f64, end: f64, step: f64, dtype: String) -> Result<NativeTensor> {
    guard(|| {
        if step == 0.0 {
            return Err(invalid("arange: step must not be 0"));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
        let dt = ops::parse_dtype(&dtype).napi()?;
        wrap(&env, Tensor::from_vec(v, n, &Device::Cpu).napi()?.to_dtype(dt).napi()?)
    })
}

#[napi]
pub fn tensor_cat(env: Env, parts: Vec<&NativeTensor>, dim: i64, stack: bool) -> Result<NativeTensor> {
    guard(|| {
        let ts: Vec<Tensor> = parts.iter().map(|p| p.tensor().cloned()).collect::<Result<_>>()?;
        if ts.is_empty() {
            return Err(invalid("cat/stack needs at least one tensor"));
        }
        let ts = tl_engine::device::align_all(&ts.iter().collect::<Vec<_>>()).napi()?;
        let rank = ts[0].rank() as i64 + stack as i64;
        let d = if dim < 0 { dim + rank } else { dim };
        if d < 0 || d >= rank.max(1) {
            return Err(to_napi(Error::shape(format!("dim {dim} is out of range"))));
        }
        let t = if stack { Tensor::stack(&ts, d as usize) } else { Tensor::cat(&ts, d as usize) }.napi()?;
        wrap(&env, t)
    })
}

#[napi]
impl NativeTensor {
    #[napi(getter)]
    pub fn shape(&self) -> Result<Vec<u32>> {
        Ok(self.tensor()?.dims().iter().map(|&d| d as u32).collect())
    }

    #[napi(getter)]
    pub fn dtype(&self) -> Result<String> {
        Ok(ops::dtype_name(self.tensor()?.dtype()).to_string())
    }

    #[napi(getter)]
    pub fn device(&self) -> Result<String> {
        Ok(tl_engine::device::name(self.tensor()?.device()))
    }

    /// This tensor on `device` (`cpu`, `cuda`, `cuda:N`): itself (shared) when already there.
    #[napi]
    pub fn to_device(&self, env: Env, device: String) -> Result<NativeTensor> {
        guard(|| {
            let dev = tl_engine::device::parse(&device).napi()?;
            wrap(&env, tl_engine::device::to(self.tensor()?, &dev).napi()?)
        })
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.t.is_none()
    }

    #[napi(getter)]
    pub fn nbytes(&self) -> Result<f64> {
        Ok(nbytes(self.tensor()?) as f64)
    }

    #[napi]
    pub fn dispose(&mut self, env: Env) -> Result<()> {
        if self.t.take().is_some() && self.bytes > 0 {
            env.adjust_external_memory(-self.bytes)?;
        }
        Ok(())
    }

    /// Flat row-major copy: Float32Array (f32/f16/bf16), Float64Array, BigInt64Array (int64),
    /// Int32Array (int32/uint32), Uint8Array (uint8/bool).
    #[napi(ts_return_type = "Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array")]
    pub fn to_array(&self) -> Result<Either5<Float32Array, Float64Array, BigInt64Array, Int32Array, Uint8Array>> {
        enum Flat {
            F32(Vec<f32>),
            F64(Vec<f64>),
            I64(Vec<i64>),
            I32(Vec<i32>),
            U8(Vec<u8>),
        }
        let flat = guard(|| {
            let t = self.tensor()?.flatten_all().napi()?;
            Ok(match t.dtype() {
                DType::F64 => Flat::F64(t.to_vec1::<f64>().napi()?),
                DType::I64 => Flat::I64(t.to_vec1::<i64>().napi()?),
                DType::I32 | DType::U32 => {
                    Flat::I32(t.to_dtype(DType::I64).napi()?.to_vec1::<i64>().napi()?.into_iter().map(|x| x as i32).collect())
                }
                DType::U8 => Flat::U8(t.to_vec1::<u8>().napi()?),
                _ => Flat::F32(t.to_dtype(DType::F32).napi()?.to_vec1::<f32>().napi()?),
            })
        })?;
        match flat {
            Flat::F32(v) => Ok(Either5::A(Float32Array::new(v))),
            Flat::F64(v) => Ok(Either5::B(Float64Array::new(v))),
            Flat::I64(v) => Ok(Either5::C(BigInt64Array::new(v))),
            Flat::I32(v) => Ok(Either5::D(Int32Array::new(v))),
            Flat::U8(v) => Ok(Either5::E(Uint8Array::new(v))),
        }
    }

    #[napi]
    pub fn binary(&self, env: Env, op: String, other: &NativeTensor) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::binary(&op, self.tensor()?, other.tensor()?).napi()?))
    }

    #[napi]
    pub fn scalar(&self, env: Env, op: String, value: f64) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::scalar(&op, self.tensor()?, value).napi()?))
    }

    #[napi]
    pub fn unary(&self, env: Env, op: String) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::unary(&op, self.tensor()?).napi()?))
    }

    #[napi]
    pub fn reduce(&self, env: Env, op: String, dims: Vec<i64>, keepdim: bool) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::reduce(&op, self.tensor()?, &dims, keepdim).napi()?))
    }

    #[napi]
    pub fn softmax(&self, env: Env, dim: i64, log: bool) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::softmax(self.tensor()?, dim, log).napi()?))
    }

    #[napi]
    pub fn norm(&self, env: Env, p: f64, dims: Vec<i64>, keepdim: bool) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::norm(self.tensor()?, p, &dims, keepdim).napi()?))
    }

    #[napi]
    pub fn topk(&self, env: Env, k: u32, dim: i64, largest: bool) -> Result<Vec<NativeTensor>> {
        guard(|| {
            let (v, i) = ops::topk(self.tensor()?, k as usize, dim, largest).napi()?;
            Ok(vec![wrap(&env, v)?, wrap(&env, i)?])
        })
    }

    #[napi]
    pub fn reshape(&self, env: Env, shape: Vec<i64>) -> Result<NativeTensor> {
        guard(|| wrap(&env, ops::reshape(self.tensor()?, &shape).napi()?))
    }

    #[napi]
    pub fn permute(&self, env: Env, dims: Vec<i64>) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tensor()?;
            if dims.len() != t.rank() {
                return Err(to_napi(Error::shape(format!("permute needs {} dims, got {}", t.rank(), dims.len()))));
            }
            let ds: Vec<usize> = dims.iter().map(|&d| ops::dim(t, d)).collect::<tl_engine::Result<_>>().napi()?;
            wrap(&env, t.permute(ds).napi()?.contiguous().napi()?)
        })
    }

    #[napi]
    pub fn transpose(&self, env: Env, a: i64, b: i64) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tensor()?;
            let (a, b) = (ops::dim(t, a).napi()?, ops::dim(t, b).napi()?);
            wrap(&env, t.transpose(a, b).napi()?.contiguous().napi()?)
        })
    }

    #[napi]
    pub fn unsqueeze(&self, env: Env, dim: i64) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tensor()?;
            let r = t.rank() as i64 + 1;
            let d = if dim < 0 { dim + r } else { dim };
            if d < 0 || d >= r {
                return Err(to_napi(Error::shape(format!("unsqueeze: dim {dim} out of range"))));
            }
            wrap(&env, t.unsqueeze(d as usize).napi()?)
        })
    }

    #[napi]
    pub fn squeeze(&self, env: Env, dim: Option<i64>) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tensor()?;
            let out = match dim {
                Some(d) => {
                    let d = ops::dim(t, d).napi()?;
                    if t.dim(d).napi()? == 1 { t.squeeze(d).napi()? } else { t.clone() }
                }
                None => {
                    let dims: Vec<usize> = t.dims().iter().copied().filter(|&d| d != 1).collect();
                    t.reshape(dims).napi()?
                }
            };
            wrap(&env, out)
        })
    }

    #[napi]
    pub fn index(&self, env: Env, spec: Vec<IndexSpec>) -> Result<NativeTensor> {
        guard(|| wrap(&env, index::index(self.tensor()?, &items(&spec)?).napi()?.contiguous().napi()?))
    }

    #[napi]
    pub fn slice_assign(&self, env: Env, spec: Vec<IndexSpec>, value: &NativeTensor) -> Result<NativeTensor> {
        guard(|| {
            let [t, v] = tl_engine::device::align([self.tensor()?, value.tensor()?]).napi()?;
            wrap(&env, index::slice_assign(&t, &items(&spec)?, &v).napi()?)
        })
    }

    #[napi]
    pub fn index_select(&self, env: Env, dim: i64, indices: &NativeTensor) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tensor()?;
            let d = ops::dim(t, dim).napi()?;
            let idx = indices.tensor()?.to_dtype(DType::I64).napi()?;
            let flat = tl_engine::device::to(&idx.flatten_all().napi()?, t.device()).napi()?;
            let out = t.index_select(&flat, d).napi()?;
            let mut shape: Vec<usize> = t.dims()[..d].to_vec();
            shape.extend_from_slice(idx.dims());
            shape.extend_from_slice(&t.dims()[d + 1..]);
            wrap(&env, out.reshape(shape).napi()?)
        })
    }

    #[napi]
    pub fn gather(&self, env: Env, dim: i64, indices: &NativeTensor) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tensor()?;
            let d = ops::dim(t, dim).napi()?;
            let idx = indices.tensor()?.to_dtype(DType::I64).napi()?.contiguous().napi()?;
            let idx = tl_engine::device::to(&idx, t.device()).napi()?;
            wrap(&env, t.contiguous().napi()?.gather(&idx, d).napi()?)
        })
    }

    /// torch's `broadcast_to`: a view with size-1 (or missing leading) dims expanded.
    #[napi]
    pub fn broadcast_to(&self, env: Env, shape: Vec<i64>) -> Result<NativeTensor> {
        guard(|| {
            let dims = dims_of(&shape)?;
            wrap(&env, self.tensor()?.broadcast_as(dims).napi()?)
        })
    }

    /// Thin SVD `[U, S, V]` (V, not Vh) of a batch of matrices; see `tl_engine::tensor::linalg`.
    #[napi]
    pub fn svd(&self, env: Env) -> Result<Vec<NativeTensor>> {
        guard(|| {
            let d = linalg::svd(self.tensor()?).napi()?;
            Ok(vec![wrap(&env, d.u)?, wrap(&env, d.s)?, wrap(&env, d.v)?])
        })
    }

    /// Eigenvalues `[real, imag]` of a batch of square matrices.
    #[napi]
    pub fn eigenvalues(&self, env: Env) -> Result<Vec<NativeTensor>> {
        guard(|| {
            let e = linalg::eigenvalues(self.tensor()?).napi()?;
            Ok(vec![wrap(&env, e.real)?, wrap(&env, e.imag)?])
        })
    }

    #[napi]
    pub fn to_dtype(&self, env: Env, dtype: String) -> Result<NativeTensor> {
        guard(|| wrap(&env, self.tensor()?.to_dtype(ops::parse_dtype(&dtype).napi()?).napi()?))
    }

    #[napi]
    pub fn clone_tensor(&self, env: Env) -> Result<NativeTensor> {
        guard(|| wrap(&env, self.tensor()?.copy().napi()?))
    }

    #[napi]
    pub fn where_cond(&self, env: Env, on_true: &NativeTensor, on_false: &NativeTensor) -> Result<NativeTensor> {
        guard(|| {
            let [t, a, b] = tl_engine::device::align([self.tensor()?, on_true.tensor()?, on_false.tensor()?]).napi()?;
            let c = t.ne(&t.zeros_like().napi()?).napi()?;
            let (a, b) = (&a, &b);
            let shape = c.shape().broadcast_shape_binary_op(a.shape(), "where").napi()?;
            let shape = shape.broadcast_shape_binary_op(b.shape(), "where").napi()?;
            let out = c.broadcast_as(&shape).napi()?.where_cond(&a.broadcast_as(&shape).napi()?, &b.broadcast_as(&shape).napi()?.to_dtype(a.dtype()).napi()?).napi()?;
            wrap(&env, out)
        })
    }
}

// ---- seeded random tensors (tl_engine::tensor::random) ----

fn random_dims(shape: &[i64]) -> Result<Vec<usize>> {
    dims_of(shape)
}

fn random_seed(seed: String) -> Result<u64> {
    crate::generate::parse_seed(&Some(seed))?.ok_or_else(|| invalid("a seed is required"))
}

/// Uniform on `[low, high)`; `seed` is a u64 as a decimal string.
#[napi]
pub fn tensor_rand(env: Env, shape: Vec<i64>, seed: String, low: f64, high: f64, dtype: String) -> Result<NativeTensor> {
    guard(|| {
        let (dims, seed, dt) = (random_dims(&shape)?, random_seed(seed)?, ops::parse_dtype(&dtype).napi()?);
        wrap(&env, tl_engine::tensor::random::uniform(&dims, seed, low, high, dt, &Device::Cpu).napi()?)
    })
}

/// Normal with `mean` and `std`; `seed` is a u64 as a decimal string.
#[napi]
pub fn tensor_randn(env: Env, shape: Vec<i64>, seed: String, mean: f64, std: f64, dtype: String) -> Result<NativeTensor> {
    guard(|| {
        let (dims, seed, dt) = (random_dims(&shape)?, random_seed(seed)?, ops::parse_dtype(&dtype).napi()?);
        wrap(&env, tl_engine::tensor::random::normal(&dims, seed, mean, std, dt, &Device::Cpu).napi()?)
    })
}
