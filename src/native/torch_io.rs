//! Tensor files: PyTorch checkpoints (`torch.save` zip pickles, read by the engine's reader that
//! accepts only tensor rebuilds and plain containers) and safetensors, read and written off the
//! JS thread. Tuned-lens artifacts (`params.pt`) go through here.

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::{Device, Tensor};
use tl_engine::load::torch_bin::{candle_dtype, TorchFile};
use tl_engine::load::torch_write;
use tl_engine::Error;

use crate::errors::{guard, invalid, IntoNapi};
use crate::model::NamedTensor;
use crate::tensor::{wrap, NativeTensor};

pub struct ReadTorchTask {
    path: PathBuf,
}

impl Task for ReadTorchTask {
    type Output = Vec<(String, Tensor)>;
    type JsValue = Vec<NamedTensor>;

    fn compute(&mut self) -> Result<Self::Output> {
        guard(|| {
            let f = TorchFile::open(&self.path).napi()?;
            let mut out = Vec::with_capacity(f.tensors().len());
            for (name, t) in f.tensors() {
                let dtype = candle_dtype(t.dtype).filter(|d| d.is_float()).ok_or_else(|| {
                    crate::errors::to_napi(Error::dtype(format!("tensor '{name}' in {} is stored as {}; only float tensors are read", self.path.display(), t.dtype.name())))
                })?;
                out.push((name.clone(), f.load(name, dtype, &Device::Cpu).napi()?));
            }
            Ok(out)
        })
    }

    fn resolve(&mut self, env: Env, out: Self::Output) -> Result<Vec<NamedTensor>> {
        out.into_iter().map(|(name, t)| Ok(NamedTensor { name, tensor: wrap(&env, t)? })).collect()
    }
}

/// The float tensors of a `torch.save` state dict (zip or legacy format), in the file's order,
/// each in its stored dtype. A pickle that does anything but rebuild tensors in plain
/// containers is `TL_CORRUPT_FILE`; it never runs.
#[napi(ts_return_type = "Promise<NamedTensor[]>")]
pub fn read_torch_file(path: String) -> AsyncTask<ReadTorchTask> {
    AsyncTask::new(ReadTorchTask { path: PathBuf::from(path) })
}

pub struct WriteTask {
    path: PathBuf,
    tensors: Vec<(String, Tensor)>,
    safetensors: bool,
}

impl Task for WriteTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        guard(|| {
            if self.safetensors {
                let map: std::collections::HashMap<String, Tensor> = self.tensors.iter().map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?))).collect::<tl_engine::candle_core::Result<_>>().napi()?;
                tl_engine::candle_core::safetensors::save(&map, &self.path).map_err(|e| Error::from(e).context(self.path.display())).napi()
            } else {
                torch_write::save(&self.path, &self.tensors).napi()
            }
        })
    }

    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}

fn named(names: Vec<String>, tensors: Vec<&NativeTensor>) -> Result<Vec<(String, Tensor)>> {
    if names.len() != tensors.len() {
        return Err(invalid(format!("{} names for {} tensors", names.len(), tensors.len())));
    }
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .zip(tensors)
        .map(|(n, t)| {
            if !seen.insert(n.clone()) {
                return Err(invalid(format!("tensor name '{n}' is given twice")));
            }
            Ok((n, t.tensor()?.clone()))
        })
        .collect()
}

/// Writes `torch.save(OrderedDict(zip(names, tensors)), path)`: a zip pickle `torch.load` reads
/// (also with `weights_only=True`), one contiguous storage per tensor.
#[napi(ts_return_type = "Promise<void>")]
pub fn write_torch_file(path: String, names: Vec<String>, tensors: Vec<&NativeTensor>) -> Result<AsyncTask<WriteTask>> {
    guard(|| Ok(AsyncTask::new(WriteTask { path: PathBuf::from(path), tensors: named(names, tensors)?, safetensors: false })))
}

/// Writes the tensors as a safetensors file (`safetensors.torch.save_file`).
#[napi(ts_return_type = "Promise<void>")]
pub fn write_safetensors_file(path: String, names: Vec<String>, tensors: Vec<&NativeTensor>) -> Result<AsyncTask<WriteTask>> {
    guard(|| Ok(AsyncTask::new(WriteTask { path: PathBuf::from(path), tensors: named(names, tensors)?, safetensors: true })))
}
