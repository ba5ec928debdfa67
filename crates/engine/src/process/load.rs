//! TL-layout state dict → compute-layout weights: the inverse of `model/state_dict.rs`, for
//! `load_and_process_state_dict` and the processing methods that take a state dict.
//!
//! Every key is checked against the shape the config implies (`TL_SHAPE_MISMATCH` naming the
//! key) and cast to the model's dtype and device, as torch's `load_state_dict` copies into the
//! existing parameters. Buffers (`attn.mask`, `attn.IGNORE`, `attn.rotary_sin/cos`) and keys
//! the model has no parameter for are ignored (TL loads with `strict=False`). Norm weights are
//! read whenever the dict holds them, whatever the model's norm kind: folding may consume them
//! (TL's `from_pretrained` folds an unprocessed dict into an `LNPre` model).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights, PostNorms, QkNorm};

/// A TL state dict by key.
pub type StateDict = HashMap<String, Tensor>;

/// Looks keys up, checking shapes and converting to the model's dtype and device.
struct Reader<'a> {
    sd: &'a StateDict,
    dtype: DType,
    device: &'a Device,
}

impl Reader<'_> {
    fn check(&self, key: &str, t: &Tensor, shape: &[usize]) -> Result<Tensor> {
        if t.dims() != shape {
            return Err(Error::shape(format!(
                "size mismatch for {key}: copying a param with shape {:?} from the state dict, the shape in the current model is {shape:?}",
                t.dims()
            )));
        }
        let t = if t.dtype() == self.dtype { t.clone() } else { t.to_dtype(self.dtype)? };
        crate::device::to(&t, self.device)
    }

    fn get(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        match self.sd.get(key) {
            Some(t) => self.check(key, t, shape),
            None => Err(Error::new(ErrorCode::MissingWeight, format!("'{key}' is in neither the state dict nor the model"))),
        }
    }

    fn opt(&self, key: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        self.sd.get(key).map(|t| self.check(key, t, shape)).transpose()
    }

    fn norm(&self, prefix: &str, d: usize) -> Result<NormWeights> {
        Ok(NormWeights { w: self.opt(&format!("{prefix}.w"), &[d])?, b: self.opt(&format!("{prefix}.b"), &[d])? })
    }
}

/// `[heads, d_model, d_head]` → `[d_model, heads * d_head]` columns (each head a run of d_head).
pub fn heads_to_columns(w: &Tensor) -> Result<Tensor> {
    let (h, d, dh) = w.dims3()?;
    Ok(w.permute((1, 0, 2))?.contiguous()?.reshape((d, h * dh))?)
}

/// `[d_model, heads * d_head]` columns `start..` → `[heads, d_model, d_head]`.
pub fn columns_to_heads(w: &Tensor, start: usize, heads: usize, dh: usize) -> Result<Tensor> {
    let d = w.dim(0)?;
    Ok(w.narrow(1, start, heads * dh)?.contiguous()?.reshape((d, heads, dh))?.permute((1, 0, 2))?.contiguous()?)
}

/// Builds the weights of a model shaped as `cfg` (and, for what the config does not pin down,
/// as `like`: whether there are position embeddings, MLPs, a gate, q/k norms) from a TL state
/// dict on `device` in `dtype`.
pub fn weights_from_state_dict(cfg: &Config, like: &ModelWeights, sd: &StateDict, dtype: DType, device: &Device) -> Result<ModelWeights> {
    let r = Reader { sd, dtype, device };
    let (d, h, dh, kv) = (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.kv_heads());
    let gqa = if cfg.n_key_value_heads.is_some() { "_" } else { "" };
    let d_vocab_out = if cfg.d_vocab_out > 0 { cfg.d_vocab_out as usize } else { cfg.d_vocab };
    if like.blocks.len() != cfg.n_layers {
        return Err(Error::invalid(format!("{} blocks for a config of {} layers", like.blocks.len(), cfg.n_layers)));
    }
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for (l, shape) in like.blocks.iter().enumerate() {
        let p = format!("blocks.{l}");
        let a = |name: &str| format!("{p}.attn.{name}");
        let w_q = r.get(&a("W_Q"), &[h, d, dh])?;
        let w_k = r.get(&a(&format!("{gqa}W_K")), &[kv, d, dh])?;
        let w_v = r.get(&a(&format!("{gqa}W_V")), &[kv, d, dh])?;
        let w_qkv = Tensor::cat(&[heads_to_columns(&w_q)?, heads_to_columns(&w_k)?, heads_to_columns(&w_v)?], 1)?;
        let b_q = r.get(&a("b_Q"), &[h, dh])?.flatten_all()?;
        let b_k = r.get(&a(&format!("{gqa}b_K")), &[kv, dh])?.flatten_all()?;
        let b_v = r.get(&a(&format!("{gqa}b_V")), &[kv, dh])?.flatten_all()?;
        let b_qkv = Tensor::cat(&[b_q, b_k, b_v], 0)?;
        let w_o = r.get(&a("W_O"), &[h, dh, d])?.reshape((h * dh, d))?;
        let b_o = r.get(&a("b_O"), &[d])?;
        let qk_norm = match &shape.qk_norm {
            Some(_) => Some(QkNorm { q: r.get(&a("q_norm.w"), &[dh])?, k: r.get(&a("k_norm.w"), &[dh])? }),
            None => None,
        };
        let mlp = match &shape.mlp {
            Some(m) if m.router.is_some() => {
                // TL's MoE: nn.Linear weights `[out, in]` per expert, then the router.
                let (n, dm) = (m.w_in.dim(0)?, m.w_in.dim(2)?);
                let lin = |name: &str, s: &[usize]| -> Result<Tensor> { Ok(r.get(&format!("{p}.mlp.{name}.weight"), s)?.t()?.contiguous()?) };
                let stack = |name: &str, s: &[usize]| -> Result<Tensor> {
                    let parts = (0..n).map(|e| lin(&format!("experts.{e}.{name}"), s)).collect::<Result<Vec<_>>>()?;
                    Ok(Tensor::stack(&parts, 0)?)
                };
                Some(MlpWeights {
                    ln: None,
                    w_in: stack("W_in", &[dm, d])?,
                    w_gate: Some(stack("W_gate", &[dm, d])?),
                    b_in: m.b_in.zeros_like()?.to_dtype(dtype)?.to_device(device)?,
                    w_out: stack("W_out", &[d, dm])?,
                    b_out: Tensor::zeros(d, dtype, device)?,
                    router: Some(lin("W_gate", &[n, d])?),
                })
            }
            Some(m) => {
                let dm = m.w_in.dim(1)?;
                let g = |name: &str, s: &[usize]| r.get(&format!("{p}.mlp.{name}"), s);
                // A layer-norm activation's `mlp.ln` has weights while the model's norms are
                // unfolded LayerNorms (TL's `LayerNorm(cfg, d_mlp)`; a LayerNormPre otherwise):
                // required then, read whenever present (folding consumes them).
                let ln = if cfg.act_fn.as_deref().is_some_and(|a| a.ends_with("_ln")) {
                    let n = if cfg.normalization_type.as_deref() == Some("LN") {
                        NormWeights { w: Some(g("ln.w", &[dm])?), b: Some(g("ln.b", &[dm])?) }
                    } else {
                        r.norm(&format!("{p}.mlp.ln"), dm)?
                    };
                    (n.w.is_some() || n.b.is_some()).then_some(n)
                } else {
                    None
                };
                Some(MlpWeights {
                    ln,
                    w_in: g("W_in", &[d, dm])?,
                    w_gate: if m.w_gate.is_some() { Some(g("W_gate", &[d, dm])?) } else { None },
                    b_in: g("b_in", &[dm])?,
                    w_out: g("W_out", &[dm, d])?,
                    b_out: g("b_out", &[d])?,
                    router: None,
                })
            }
            None => None,
        };
        let ln2 = if mlp.is_some() { r.norm(&format!("{p}.ln2"), d)? } else { NormWeights::default() };
        // TL's ln1_post / ln2_post: RMSNorms that keep their weights.
        let post_norms = match &shape.post_norms {
            Some(_) => Some(PostNorms { attn: r.norm(&format!("{p}.ln1_post"), d)?, mlp: r.norm(&format!("{p}.ln2_post"), d)? }),
            None => None,
        };
        blocks.push(BlockWeights { ln1: r.norm(&format!("{p}.ln1"), d)?, w_qkv, b_qkv, w_o, b_o, ln2, mlp, qk_norm, post_norms });
    }
    let w_pos = match &like.w_pos {
        Some(p) => Some(r.get("pos_embed.W_pos", p.dims())?),
        None => None,
    };
    Ok(ModelWeights {
        w_e: r.get("embed.W_E", &[cfg.d_vocab, d])?,
        embed_ln: match &like.embed_ln {
            Some(_) => Some(r.norm("embed.ln", d)?),
            None => None,
        },
        w_pos,
        blocks,
        ln_final: r.norm("ln_final", d)?,
        w_u: r.get("unembed.W_U", &[d, d_vocab_out])?,
        b_u: r.get("unembed.b_U", &[d_vocab_out])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_through_columns() {
        let w = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((2, 3, 4)).unwrap();
        let cols = heads_to_columns(&w).unwrap();
        assert_eq!(cols.dims(), &[3, 8]);
        // Column 4..8 is head 1: cols[i, 4 + j] = w[1, i, j].
        let c: Vec<Vec<f32>> = cols.to_vec2().unwrap();
        assert_eq!(c[2][5], 12.0 + 2.0 * 4.0 + 1.0);
        let back = columns_to_heads(&cols, 0, 2, 4).unwrap();
        let diff = (back - &w).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
    }
}
