//! Weights from `pytorch_model.bin`, or from the shards `pytorch_model.bin.index.json` lists:
//! the `WeightFile` backend for checkpoints without safetensors (older repos, Pythia's
//! `step{N}` revisions). A name in several shards is read from the last, as HF loads them.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::load::safetensors::Header;
use crate::load::torch_bin::{candle_dtype, TorchFile};

pub struct TorchWeights {
    files: Vec<TorchFile>,
    /// Tensor name → the shard that holds it.
    at: HashMap<String, usize>,
}

impl TorchWeights {
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let files = paths.iter().map(|p| TorchFile::open(p)).collect::<Result<Vec<_>>>()?;
        let mut at = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            for (name, _) in f.tensors() {
                at.insert(name.clone(), i);
            }
        }
        Ok(TorchWeights { files, at })
    }

    fn file(&self, name: &str) -> Result<&TorchFile> {
        self.at.get(name).map(|&i| &self.files[i]).ok_or_else(|| Error::missing_weight(name))
    }

    pub fn has(&self, name: &str) -> bool {
        self.at.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.at.keys().cloned().collect()
    }

    pub fn tensor_count(&self) -> usize {
        self.at.len()
    }

    pub fn header(&self, name: &str) -> Result<Header> {
        let t = self.file(name)?.get(name).ok_or_else(|| Error::missing_weight(name))?;
        let shape = t.shape.iter().map(|&d| usize::try_from(d)).collect::<std::result::Result<Vec<_>, _>>();
        let shape = shape.map_err(|_| Error::corrupt(format!("tensor '{name}' has a dimension past this platform's address space")))?;
        Ok(Header { dtype: candle_dtype(t.dtype), dtype_name: t.dtype.name().to_string(), shape })
    }

    pub fn total_elements(&self) -> usize {
        self.at
            .iter()
            .filter_map(|(n, &i)| self.files[i].get(n))
            .map(|t| usize::try_from(t.numel()).unwrap_or(usize::MAX))
            .fold(0usize, usize::saturating_add)
    }

    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        self.file(name)?.load(name, dtype, device)
    }
}
