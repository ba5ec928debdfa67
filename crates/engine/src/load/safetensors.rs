//! Weights from `model.safetensors`, or from shards listed in `model.safetensors.index.json`:
//! mapped (validation, names, other dtypes), f32 read straight into place (`read_at.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::load::hub::ModelFiles;

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
            shards.iter().map(|s| files.require(s)).collect::<Result<_>>()?
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

    /// The first of `names` present, converted to the model dtype.
    pub fn get_any(&self, names: &[&str]) -> Result<Tensor> {
        for n in names {
            if self.has(n) {
                let corrupt = |e: candle_core::Error| Error::corrupt(format!("tensor '{n}' in {}: {}", self.origin.display(), Error::from(e)));
                let view = self.st.get(n).map_err(corrupt)?;
                if matches!(DType::try_from(view.dtype()), Ok(DType::F32)) && self.dtype == DType::F32 && self.device.is_cpu() {
                    if let Some(data) = self.read_f32(n, view.data().len())? {
                        return Ok(Tensor::from_vec(data, view.shape(), &self.device)?);
                    }
                }
                let t = self.st.load(n, &self.device).map_err(corrupt)?;
                return Ok(if t.dtype() == self.dtype { t } else { t.to_dtype(self.dtype)? });
            }
        }
        Err(Error::new(
            ErrorCode::MissingWeight,
            format!("weight '{}' is missing from the checkpoint in {}", names[0], self.origin.display()),
        ))
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

    /// With and without a module prefix (`transformer.h.0...` or `h.0...`).
    pub fn get_prefixed(&self, prefix: &str, name: &str) -> Result<Tensor> {
        self.get_any(&[&format!("{prefix}{name}"), name])
    }

    /// Checks a tensor's shape, naming it in the error.
    pub fn expect_shape(t: &Tensor, name: &str, shape: &[usize]) -> Result<()> {
        if t.dims() != shape {
            return Err(Error::new(
                ErrorCode::CorruptFile,
                format!("weight '{name}' has shape {:?}, the config implies {:?}", t.dims(), shape),
            ));
        }
        Ok(())
    }
}
