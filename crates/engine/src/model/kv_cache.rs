//! TL's `HookedTransformerKeyValueCache`: per-layer past keys and values, the attention mask of
//! every position seen so far, and freezing.
//!
//! Keys and values live in preallocated `[batch, heads, capacity, d_head]` buffers that grow by
//! doubling, so a decode step writes one position instead of copying the whole past (TL
//! concatenates). Attention reads them as strided views; TL's `[batch, pos, heads, d_head]`
//! layout is produced on demand.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// One layer's past keys and values.
pub struct KvEntry {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    pub frozen: bool,
}

impl KvEntry {
    fn empty() -> Self {
        KvEntry { k: None, v: None, len: 0, frozen: false }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn view(&self, t: &Option<Tensor>) -> Result<Option<Tensor>> {
        Ok(match t {
            Some(t) => Some(t.narrow(2, 0, self.len)?),
            None => None,
        })
    }

    /// New keys/values `[batch, new, heads, d_head]` → all keys and values
    /// `[batch, heads, past + new, d_head]`. Stored unless frozen (TL's `append`).
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let kt = k.transpose(1, 2)?.contiguous()?;
        let vt = v.transpose(1, 2)?.contiguous()?;
        let (b, h, p, dh) = kt.dims4()?;
        if let Some(old) = &self.k {
            let (ob, oh, _, od) = old.dims4()?;
            if (ob, oh, od) != (b, h, dh) || old.dtype() != kt.dtype() {
                return Err(Error::shape(format!(
                    "the KV cache holds [batch {ob}, heads {oh}, d_head {od}] {:?} but this run has [batch {b}, heads {h}, d_head {dh}] {:?}",
                    old.dtype(),
                    kt.dtype()
                )));
            }
        }
        if self.frozen {
            let cat = |old: Option<Tensor>, new: Tensor| -> Result<Tensor> {
                Ok(match old {
                    Some(o) => Tensor::cat(&[&o, &new], 2)?,
                    None => new,
                })
            };
            return Ok((cat(self.view(&self.k)?, kt)?, cat(self.view(&self.v)?, vt)?));
        }
        let need = self.len + p;
        let cap = self.k.as_ref().map(|t| t.dims()[2]).unwrap_or(0);
        if need > cap {
            let new_cap = need.max(cap * 2).max(16);
            let grow = |old: &Option<Tensor>| -> Result<Tensor> {
                let buf = Tensor::zeros((b, h, new_cap, dh), kt.dtype(), kt.device())?;
                if let Some(o) = old {
                    if self.len > 0 {
                        buf.slice_set(&o.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    }
                }
                Ok(buf)
            };
            self.k = Some(grow(&self.k)?);
            self.v = Some(grow(&self.v)?);
        }
        let (Some(kb), Some(vb)) = (&self.k, &self.v) else {
            return Err(Error::invalid("the KV cache has no buffers after growing"));
        };
        kb.slice_set(&kt, 2, self.len)?;
        vb.slice_set(&vt, 2, self.len)?;
        self.len = need;
        Ok((kb.narrow(2, 0, need)?, vb.narrow(2, 0, need)?))
    }

    /// TL's `past_keys`: `[batch, pos_so_far, heads, d_head]` (a copy).
    pub fn past_keys(&self, empty: (usize, usize, usize, DType, &Device)) -> Result<Tensor> {
        Self::tl_layout(self.view(&self.k)?, empty)
    }

    /// TL's `past_values`: `[batch, pos_so_far, heads, d_head]` (a copy).
    pub fn past_values(&self, empty: (usize, usize, usize, DType, &Device)) -> Result<Tensor> {
        Self::tl_layout(self.view(&self.v)?, empty)
    }

    fn tl_layout(t: Option<Tensor>, (b, h, dh, dtype, dev): (usize, usize, usize, DType, &Device)) -> Result<Tensor> {
        match t {
            Some(t) => Ok(t.transpose(1, 2)?.contiguous()?),
            None => Ok(Tensor::zeros((b, 0, h, dh), dtype, dev)?),
        }
    }

    fn duplicate(&self) -> Result<Self> {
        let copy = |t: &Option<Tensor>| -> Result<Option<Tensor>> { Ok(match t { Some(t) => Some(t.copy()?), None => None }) };
        Ok(KvEntry { k: copy(&self.k)?, v: copy(&self.v)?, len: self.len, frozen: self.frozen })
    }
}

/// The whole cache: one entry per layer and the attention mask of all positions so far.
pub struct KvCache {
    pub entries: Vec<KvEntry>,
    /// `[batch, pos_so_far]` i64.
    mask: Tensor,
    pub frozen: bool,
    pub batch: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub dtype: DType,
    pub device: Device,
}

impl KvCache {
    /// TL's `init_cache`: empty entries for `n_layers` layers.
    pub fn new(n_layers: usize, batch: usize, n_heads: usize, d_head: usize, dtype: DType, device: &Device) -> Result<Self> {
        if batch == 0 {
            return Err(Error::invalid("a KV cache needs a batch size of at least 1"));
        }
        Ok(KvCache {
            entries: (0..n_layers).map(|_| KvEntry::empty()).collect(),
            mask: Tensor::zeros((batch, 0), DType::I64, device)?,
            frozen: false,
            batch,
            n_heads,
            d_head,
            dtype,
            device: device.clone(),
        })
    }

    /// Positions cached so far (TL's `get_pos_offset`).
    pub fn past_len(&self) -> usize {
        self.entries.first().map(|e| e.len).unwrap_or(0)
    }

    pub fn previous_attention_mask(&self) -> &Tensor {
        &self.mask
    }

    /// TL's `append_attention_mask`: the mask of past + new positions (stored unless frozen).
    pub fn append_attention_mask(&mut self, new: &Tensor) -> Result<Tensor> {
        let new = new.to_dtype(DType::I64)?;
        if new.rank() != 2 || new.dim(0)? != self.batch {
            return Err(Error::shape(format!("the KV cache has batch size {} but the attention mask is {:?}", self.batch, new.dims())));
        }
        let all = Tensor::cat(&[&self.mask, &new], 1)?;
        if !self.frozen {
            self.mask = all.clone();
        }
        Ok(all)
    }

    pub fn freeze(&mut self) {
        self.frozen = true;
        self.entries.iter_mut().for_each(|e| e.frozen = true);
    }

    pub fn unfreeze(&mut self) {
        self.frozen = false;
        self.entries.iter_mut().for_each(|e| e.frozen = false);
    }

    pub fn empty_shape(&self) -> (usize, usize, usize, DType, &Device) {
        (self.batch, self.n_heads, self.d_head, self.dtype, &self.device)
    }

    /// A deep copy (a fork that can be extended without touching this one).
    pub fn duplicate(&self) -> Result<Self> {
        Ok(KvCache {
            entries: self.entries.iter().map(|e| e.duplicate()).collect::<Result<_>>()?,
            mask: self.mask.clone(),
            frozen: self.frozen,
            batch: self.batch,
            n_heads: self.n_heads,
            d_head: self.d_head,
            dtype: self.dtype,
            device: self.device.clone(),
        })
    }

    /// Every layer must have the same number of cached positions before a forward.
    pub fn check_consistent(&self) -> Result<()> {
        let n = self.past_len();
        if self.entries.iter().any(|e| e.len != n) || self.mask.dim(1)? != n {
            return Err(Error::invalid(
                "the KV cache is inconsistent (layers hold different numbers of positions): a run that stopped early (stop_at_layer) filled only some layers",
            ));
        }
        Ok(())
    }
}
