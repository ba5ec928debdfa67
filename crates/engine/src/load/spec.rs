//! What a family reads, checked against the safetensors headers before any weight buffer is
//! reserved: every tensor the config implies (name, shape, float dtype), and every size field of
//! the config bounded by what the files hold. Families declare their tensors ([`TensorSpec`]);
//! the conversion then takes them from a [`Checked`] file, which hands out only declared,
//! checked tensors, so no family can read a tensor it did not shape-check.

use std::collections::HashMap;

use candle_core::{CpuStorage, DType, Storage, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::families::Family;
use crate::load::safetensors::WeightFile;
use crate::model::config::Config;
use crate::model::validate;

/// One tensor a family reads: its name without the module prefix, the shape the config
/// implies, and whether a checkpoint may leave it out (a tied `lm_head`).
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub required: bool,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, shape: &[usize]) -> Self {
        TensorSpec { name: name.into(), shape: shape.to_vec(), required: true }
    }
    pub fn optional(name: impl Into<String>, shape: &[usize]) -> Self {
        TensorSpec { required: false, ..TensorSpec::new(name, shape) }
    }

    /// Required specs from `(name, shape)` pairs, each name passed through `full` (a block's
    /// `layers.{l}.` prefix).
    pub fn all<'a>(entries: impl IntoIterator<Item = (&'a str, Vec<usize>)>, full: impl Fn(&str) -> String) -> Vec<TensorSpec> {
        entries.into_iter().map(|(name, shape)| TensorSpec::new(full(name), &shape)).collect()
    }
}

/// Refuses a config whose sizes the weight files cannot hold: more layers than tensors, or a
/// dimension larger than every element of the files together. Run before the family lists
/// its tensors (that list has a few entries per layer) and before anything is allocated.
pub fn bound_by_files(cfg: &Config, wf: &WeightFile) -> Result<()> {
    let tensors = wf.tensor_count();
    if cfg.n_layers > tensors {
        return Err(Error::corrupt(format!("config.json: n_layers is {}, but the weight files hold only {tensors} tensors", cfg.n_layers)));
    }
    let elements = wf.total_elements();
    for (field, v) in validate::sizes(cfg) {
        if v > elements {
            return Err(Error::corrupt(format!("config.json: {field} is {v}, larger than all {elements} weights of the checkpoint together")));
        }
    }
    if cfg.n_ctx > validate::MAX_CTX {
        return Err(Error::corrupt(format!("config.json: n_ctx is {}, past the {} positions this library sizes tables for", cfg.n_ctx, validate::MAX_CTX)));
    }
    Ok(())
}

/// A weight file whose declared tensors all exist with the shapes and dtypes the config implies.
pub struct Checked<'a> {
    wf: &'a WeightFile,
    /// Declared name → name in the file (with its prefix), for tensors present.
    found: HashMap<String, String>,
}

/// The first of `prefix + name` present in the file.
fn resolve(wf: &WeightFile, prefixes: &[&str], name: &str) -> Option<String> {
    prefixes.iter().map(|p| format!("{p}{name}")).find(|n| wf.has(n))
}

/// Checks every tensor `fam` declares for `cfg` against the headers: present (unless
/// optional), a float dtype, the exact shape. Blocks are listed and checked one at a time, so
/// a config claiming more layers than the file holds stops at the first missing tensor. Nothing
/// is read or allocated from the config here.
pub fn check<'a>(wf: &'a WeightFile, fam: &Family, cfg: &Config) -> Result<Checked<'a>> {
    let groups = std::iter::once((fam.tensors)(cfg)).chain((0..cfg.n_layers).map(|layer| (fam.layer_tensors)(cfg, layer)));
    check_groups(wf, fam.prefixes, groups)
}

/// [`check`] for a model outside the decoder families (the encoder, `crate::bert`): the
/// tensors outside the blocks, then each block's, under the first of `prefixes` that has them.
pub fn check_listed<'a>(
    wf: &'a WeightFile,
    prefixes: &[&str],
    head: &[TensorSpec],
    n_layers: usize,
    layer: impl Fn(usize) -> Vec<TensorSpec>,
) -> Result<Checked<'a>> {
    check_groups(wf, prefixes, std::iter::once(head.to_vec()).chain((0..n_layers).map(layer)))
}

/// [`check`] for a model outside the family table (T5): groups of specs, listed and checked one
/// group at a time.
pub fn check_groups<'a>(wf: &'a WeightFile, prefixes: &[&str], groups: impl IntoIterator<Item = Vec<TensorSpec>>) -> Result<Checked<'a>> {
    let mut checked = Checked { wf, found: HashMap::new() };
    for group in groups {
        checked.add(prefixes, &group)?;
    }
    Ok(checked)
}

impl Checked<'_> {
    fn add(&mut self, prefixes: &[&str], specs: &[TensorSpec]) -> Result<()> {
        for spec in specs {
            let Some(stored) = resolve(self.wf, prefixes, &spec.name) else {
                if spec.required {
                    return Err(Error::missing_weight(&spec.name));
                }
                continue;
            };
            let h = self.wf.header(&stored)?;
            if !matches!(h.dtype, Some(DType::F16 | DType::BF16 | DType::F32 | DType::F64)) {
                return Err(Error::corrupt(format!("weight '{stored}' is stored as {}; weights must be a float type (F16, BF16, F32, F64)", h.dtype_name)));
            }
            if h.shape != spec.shape {
                return Err(Error::corrupt(format!("weight '{stored}' has shape {:?}, the config implies {:?}", h.shape, spec.shape)));
            }
            self.found.insert(spec.name.clone(), stored);
        }
        Ok(())
    }
}

impl Checked<'_> {
    /// Whether a declared tensor is in the file.
    pub fn has(&self, name: &str) -> bool {
        self.found.contains_key(name)
    }

    fn stored(&self, name: &str) -> Result<&str> {
        match self.found.get(name) {
            Some(stored) => Ok(stored),
            None => Err(Error::new(ErrorCode::Internal, format!("weight '{name}' was read without being declared by its family"))),
        }
    }

    /// A declared, checked tensor, read in the model dtype.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        self.wf.load(self.stored(name)?)
    }

    /// A declared, checked tensor, read in `dtype`.
    pub fn get_as(&self, name: &str, dtype: candle_core::DType) -> Result<Tensor> {
        self.wf.load_as(self.stored(name)?, dtype)
    }

    /// A declared, checked 2-D tensor, transposed (HF's `[out, in]` → the compute layout's
    /// `[in, out]`) as it is read, in its own storage.
    pub fn get_t(&self, name: &str) -> Result<Tensor> {
        self.wf.load_transposed(self.stored(name)?)
    }
}

/// Refuses a weight holding NaN or an infinity (what no trained checkpoint holds, and what
/// would make every logit NaN).
pub fn check_finite(t: &Tensor, name: &str) -> Result<()> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { return Ok(()) };
    let Some((a, b)) = layout.contiguous_offsets() else { return Ok(()) };
    let finite = match cpu {
        CpuStorage::F32(v) => v[a..b].iter().all(|x| x.is_finite()),
        CpuStorage::F64(v) => v[a..b].iter().all(|x| x.is_finite()),
        CpuStorage::F16(v) => v[a..b].iter().all(|x| x.is_finite()),
        CpuStorage::BF16(v) => v[a..b].iter().all(|x| x.is_finite()),
        _ => true,
    };
    if !finite {
        return Err(non_finite(name));
    }
    Ok(())
}

pub(crate) fn non_finite(name: &str) -> Error {
    Error::corrupt(format!("weight '{name}' holds NaN or infinite values"))
}
