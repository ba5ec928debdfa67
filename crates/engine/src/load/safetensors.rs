//! Weights from `model.safetensors`, or from shards listed in `model.safetensors.index.json`:
//! mapped (validation, names, other dtypes), f32 read straight into place (`read_at.rs`).
//! Without safetensors, `pytorch_model.bin` (or its sharded index) is read instead
//! (`torch_weights.rs`): the same contract, dtypes and shapes known before any data is read.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::load::hub::ModelFiles;
use crate::load::torch_weights::TorchWeights;

/// What a safetensors header says of one tensor.
pub struct Header {
    /// None: a dtype candle cannot hold.
    pub dtype: Option<DType>,
    pub dtype_name: String,
    pub shape: Vec<usize>,
}

pub struct WeightFile {
    backend: Backend,
    dtype: DType,
    device: Device,
    origin: PathBuf,
}

enum Backend {
    Safetensors {
        st: MmapedSafetensors,
        #[cfg(unix)]
        shards: crate::load::read_at::Shards,
        names: HashMap<String, ()>,
    },
    Torch(TorchWeights),
}

/// The shard files an index's `weight_map` names, sorted, each a plain name in the folder.
fn shard_paths(files: &ModelFiles, index: &str) -> Result<Vec<PathBuf>> {
    let idx = files.read_json(index)?;
    let map = idx.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::corrupt(format!("{index} has no weight_map")))?;
    let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
    shards.sort();
    shards.dedup();
    shards.iter().map(|s| files.named_in_file(s, index)).collect()
}

impl WeightFile {
    /// Safetensors when the folder has them (single or sharded), else PyTorch `.bin` files.
    pub fn open(files: &ModelFiles, dtype: DType, device: &Device) -> Result<Self> {
        let (st_index, bin_index) = ("model.safetensors.index.json", "pytorch_model.bin.index.json");
        let paths: Vec<PathBuf> = if files.has("model.safetensors") {
            vec![files.path("model.safetensors")]
        } else if files.has(st_index) {
            shard_paths(files, st_index)?
        } else {
            let bins = if files.has("pytorch_model.bin") {
                vec![files.path("pytorch_model.bin")]
            } else if files.has(bin_index) {
                shard_paths(files, bin_index)?
            } else {
                return Err(Error::new(
                    ErrorCode::MissingFile,
                    format!("no model.safetensors or pytorch_model.bin (or a sharded index of either) in {}", files.dir.display()),
                ));
            };
            let backend = Backend::Torch(TorchWeights::open(&bins)?);
            return Ok(WeightFile { backend, dtype, device: device.clone(), origin: files.dir.clone() });
        };
        // SAFETY: the files are mapped read-only; a concurrent writer would be a user error.
        let st = unsafe { MmapedSafetensors::multi(&paths) }
            .map_err(|e| Error::corrupt(format!("cannot read safetensors in {}: {}", files.dir.display(), Error::from(e))))?;
        let names = st.tensors().into_iter().map(|(n, _)| (n, ())).collect();
        let backend = Backend::Safetensors {
            st,
            #[cfg(unix)]
            shards: crate::load::read_at::Shards::open(&paths)?,
            names,
        };
        Ok(WeightFile { backend, dtype, device: device.clone(), origin: files.dir.clone() })
    }

    pub fn has(&self, name: &str) -> bool {
        match &self.backend {
            Backend::Safetensors { names, .. } => names.contains_key(name),
            Backend::Torch(t) => t.has(name),
        }
    }

    /// The names of every tensor the files hold.
    pub fn names(&self) -> Vec<String> {
        match &self.backend {
            Backend::Safetensors { names, .. } => names.keys().cloned().collect(),
            Backend::Torch(t) => t.names(),
        }
    }

    /// How many tensors the files hold.
    pub fn tensor_count(&self) -> usize {
        match &self.backend {
            Backend::Safetensors { names, .. } => names.len(),
            Backend::Torch(t) => t.tensor_count(),
        }
    }

    /// A tensor's dtype and shape as its header states them (nothing is read).
    pub fn header(&self, name: &str) -> Result<Header> {
        let st = match &self.backend {
            Backend::Safetensors { st, .. } => st,
            Backend::Torch(t) => return t.header(name),
        };
        let view = st.get(name).map_err(|e| self.corrupt(name, e))?;
        Ok(Header {
            dtype: DType::try_from(view.dtype()).ok(),
            dtype_name: format!("{:?}", view.dtype()),
            shape: view.shape().to_vec(),
        })
    }

    /// Elements held by every tensor of the files, from the headers.
    pub fn total_elements(&self) -> usize {
        match &self.backend {
            Backend::Safetensors { st, .. } => {
                st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>()).fold(0usize, usize::saturating_add)
            }
            Backend::Torch(t) => t.total_elements(),
        }
    }

    fn corrupt(&self, name: &str, e: candle_core::Error) -> Error {
        Error::corrupt(format!("tensor '{name}' in {}: {}", self.origin.display(), Error::from(e)))
    }

    /// Tensor `name` in the model dtype, refused when a value is not finite. Its shape and dtype
    /// were checked against the header beforehand (`load::spec`).
    pub(crate) fn load(&self, name: &str) -> Result<Tensor> {
        self.load_as(name, self.dtype)
    }

    /// `name` in `dtype` rather than the model dtype (a weight TL keeps in another dtype).
    pub(crate) fn load_as(&self, name: &str, dtype: DType) -> Result<Tensor> {
        let st = match &self.backend {
            Backend::Safetensors { st, .. } => st,
            Backend::Torch(t) => return t.load(name, dtype, &self.device),
        };
        let view = st.get(name).map_err(|e| self.corrupt(name, e))?;
        if matches!(DType::try_from(view.dtype()), Ok(DType::F32)) && dtype == DType::F32 && self.device.is_cpu() {
            if let Some(data) = self.read_f32(name, view.data().len())? {
                return Ok(Tensor::from_vec(data, view.shape(), &self.device)?);
            }
        }
        let t = st.load(name, &self.device).map_err(|e| self.corrupt(name, e))?;
        let t = if t.dtype() == dtype { t } else { t.to_dtype(dtype)? };
        crate::load::spec::check_finite(&t, name)?;
        Ok(t)
    }

    /// A 2-D tensor `name` transposed (`[out, in]` → `[in, out]`) in the model dtype: little-endian
    /// f32 safetensors are transposed straight from the mapped file into the one fresh buffer
    /// (no intermediate copy to fault in), others loaded then transposed.
    pub(crate) fn load_transposed(&self, name: &str) -> Result<Tensor> {
        if let Backend::Safetensors { st, .. } = &self.backend {
            let view = st.get(name).map_err(|e| self.corrupt(name, e))?;
            let f32_file = matches!(DType::try_from(view.dtype()), Ok(DType::F32));
            if let (true, true, true, [rows, cols]) = (f32_file, self.dtype == DType::F32, self.device.is_cpu(), view.shape()) {
                let (rows, cols, bytes) = (*rows, *cols, view.data());
                if bytes.len() != rows * cols * 4 {
                    return Err(Error::corrupt(format!("tensor '{name}': {} bytes for shape [{rows}, {cols}]", bytes.len())));
                }
                let at = |k: usize| f32::from_le_bytes([bytes[4 * k], bytes[4 * k + 1], bytes[4 * k + 2], bytes[4 * k + 3]]);
                let data = crate::kernels::transpose::transpose_with(rows, cols, at)?;
                if !data.iter().all(|x| x.is_finite()) {
                    return Err(crate::load::spec::non_finite(name));
                }
                return Ok(Tensor::from_vec(data, (cols, rows), &self.device)?);
            }
        }
        Ok(crate::kernels::transpose::transposed(&self.load(name)?)?)
    }

    /// An f32 tensor read straight from the file (None: not on this platform; map it instead).
    fn read_f32(&self, name: &str, n_bytes: usize) -> Result<Option<Vec<f32>>> {
        #[cfg(unix)]
        if let Backend::Safetensors { shards, .. } = &self.backend {
            return shards.read_f32(name, n_bytes);
        }
        let _ = (name, n_bytes);
        Ok(None)
    }
}
