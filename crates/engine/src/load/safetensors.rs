//! Weights from `model.safetensors`, or from shards listed in `model.safetensors.index.json`:
//! mapped (validation, names, other dtypes), f32 read straight into place (`read_at.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::load::hub::ModelFiles;

/// What a safetensors header says of one tensor.
pub struct Header {
    /// None: a dtype candle cannot hold.
    pub dtype: Option<DType>,
    pub dtype_name: String,
    pub shape: Vec<usize>,
}

pub struct WeightFile {
    st: MmapedSafetensors,
    #[cfg(unix)]
    shards: crate::load::read_at::Shards,
    names: HashMap<String, ()>,
    dtype: DType,
    device: Device,
    origin: PathBuf,
}

impl WeightFile {
    pub fn open(files: &ModelFiles, dtype: DType, device: &Device) -> Result<Self> {
        let index = "model.safetensors.index.json";
        let paths: Vec<PathBuf> = if files.has("model.safetensors") {
            vec![files.path("model.safetensors")]
        } else if files.has(index) {
            let idx = files.read_json(index)?;
            let map = idx
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::corrupt(format!("{index} has no weight_map")))?;
            let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
            shards.sort();
            shards.dedup();
            shards.iter().map(|s| files.named_in_file(s, index)).collect::<Result<_>>()?
        } else if files.has("pytorch_model.bin") {
            return Err(Error::unsupported(format!(
                "{} only has pytorch_model.bin; transformer-lens reads safetensors weights (convert with `safetensors`' convert script)",
                files.dir.display()
            )));
        } else {
            return Err(Error::new(
                ErrorCode::MissingFile,
                format!("no model.safetensors (or sharded index) in {}", files.dir.display()),
            ));
        };
        // SAFETY: the files are mapped read-only; a concurrent writer would be a user error.
        let st = unsafe { MmapedSafetensors::multi(&paths) }
            .map_err(|e| Error::corrupt(format!("cannot read safetensors in {}: {}", files.dir.display(), Error::from(e))))?;
        let names = st.tensors().into_iter().map(|(n, _)| (n, ())).collect();
        Ok(WeightFile {
            st,
            #[cfg(unix)]
            shards: crate::load::read_at::Shards::open(&paths)?,
            names,
            dtype,
            device: device.clone(),
            origin: files.dir.clone(),
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// How many tensors the files hold.
    pub fn tensor_count(&self) -> usize {
        self.names.len()
    }

    /// A tensor's dtype and shape as its header states them (nothing is read).
    pub fn header(&self, name: &str) -> Result<Header> {
        let view = self.st.get(name).map_err(|e| self.corrupt(name, e))?;
        Ok(Header {
            dtype: DType::try_from(view.dtype()).ok(),
            dtype_name: format!("{:?}", view.dtype()),
            shape: view.shape().to_vec(),
        })
    }

    /// Elements held by every tensor of the files, from the headers.
    pub fn total_elements(&self) -> usize {
        self.st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>()).fold(0usize, usize::saturating_add)
    }

    fn corrupt(&self, name: &str, e: candle_core::Error) -> Error {
        Error::corrupt(format!("tensor '{name}' in {}: {}", self.origin.display(), Error::from(e)))
    }

    /// Tensor `name` in the model dtype, refused when a value is not finite. Its shape and dtype
    /// were checked against the header beforehand (`load::spec`).
    pub(crate) fn load(&self, name: &str) -> Result<Tensor> {
        let view = self.st.get(name).map_err(|e| self.corrupt(name, e))?;
        if matches!(DType::try_from(view.dtype()), Ok(DType::F32)) && self.dtype == DType::F32 && self.device.is_cpu() {
            if let Some(data) = self.read_f32(name, view.data().len())? {
                return Ok(Tensor::from_vec(data, view.shape(), &self.device)?);
            }
        }
        let t = self.st.load(name, &self.device).map_err(|e| self.corrupt(name, e))?;
        let t = if t.dtype() == self.dtype { t } else { t.to_dtype(self.dtype)? };
        crate::load::spec::check_finite(&t, name)?;
        Ok(t)
    }

    /// An f32 tensor read straight from the file (None: not on this platform; map it instead).
    fn read_f32(&self, name: &str, n_bytes: usize) -> Result<Option<Vec<f32>>> {
        #[cfg(unix)]
        return self.shards.read_f32(name, n_bytes);
        #[cfg(not(unix))]
        {
            let _ = (name, n_bytes);
            Ok(None)
        }
    }
}
