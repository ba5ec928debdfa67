//! One T5 block (TL's `T5Block.forward`), firing hooks in TL's order: self-attention, then (in
//! the decoder) cross-attention on the encoder output, then the ReLU MLP; RMS norms before each.

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels::linear::linear;
use crate::model::config::Config;
use crate::model::hooks::Taps;
use crate::model::kv_cache::KvEntry;
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::weights::NormWeights;
use crate::t5::attention::{self, AttnHooks, Kv, KvSource};
use crate::t5::hooks::{mlp_norm_hooks, T5Hook, T5Hooks};
use crate::t5::weights::T5Block;

/// Which block of which stack.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub cfg: &'a Config,
    pub hooks: &'a T5Hooks,
    pub decoder: bool,
    pub layer: usize,
}

impl At<'_> {
    fn id(&self, h: T5Hook) -> Option<usize> {
        self.hooks.id(self.decoder, self.layer, h)
    }
    fn fire(&self, h: T5Hook, t: Tensor, taps: &mut Taps) -> Result<Tensor> {
        taps.fire(self.id(h), t)
    }
    fn norm(&self, w: &Tensor, [scale, normalized]: [T5Hook; 2], x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let hooks = NormHooks { scale: self.id(scale), normalized: self.id(normalized) };
        let w = NormWeights { w: Some(w.clone()), b: None };
        norm::apply(NormKind::RMS, &w, self.cfg.eps, x, hooks, taps)
    }
    fn attn_hooks(&self, cross: bool) -> AttnHooks {
        use T5Hook::*;
        let [q, k, v, scores, pattern, z] = if cross { [CrossQ, CrossK, CrossV, CrossAttnScores, CrossPattern, CrossZ] } else { [Q, K, V, AttnScores, Pattern, Z] };
        AttnHooks { q: self.id(q), k: self.id(k), v: self.id(v), scores: self.id(scores), pattern: self.id(pattern), z: self.id(z) }
    }
}

/// The decoder's cross-attention input: the encoder output, its additive padding mask
/// `[batch or 1, 1, q, enc_pos]`, and a generation's slot for the projected K/V (filled on the
/// first step, read on the later ones).
pub struct CrossIn<'a> {
    pub encoder: &'a Tensor,
    pub additive: &'a Tensor,
    pub kv: Option<&'a mut Option<Kv>>,
}

/// `additive`: the self-attention's bias and masks `[1 or batch, heads, q, k]`.
pub fn forward(at: At, w: &T5Block, resid_pre: Tensor, additive: &Tensor, kv: Option<&mut KvEntry>, cross: Option<CrossIn>, taps: &mut Taps) -> Result<Tensor> {
    let resid_pre = at.fire(T5Hook::ResidPre, resid_pre, taps)?;
    let ln1 = [T5Hook::Ln1Scale, T5Hook::Ln1Normalized];
    // TL normalises the input once per projection (ln1 on query, key and value inputs), so
    // when ln1's hooks are watched they fire three times, as TL's, and Q reads the first call.
    let x = at.norm(&w.ln1, ln1, &resid_pre, taps)?;
    if taps.active(at.id(ln1[0])) || taps.active(at.id(ln1[1])) {
        at.norm(&w.ln1, ln1, &resid_pre, taps)?;
        at.norm(&w.ln1, ln1, &resid_pre, taps)?;
    }
    let (attn_out, _) = attention::forward(at.cfg, &x, &w.attn.w_qkv, &w.attn.w_o, KvSource::Own(kv), additive, &at.attn_hooks(false), taps)?;
    let attn_out = at.fire(T5Hook::AttnOut, attn_out, taps)?;
    let resid_mid = at.fire(T5Hook::ResidMid, (resid_pre + attn_out)?, taps)?;
    let mlp_in = match (&w.cross, cross) {
        (Some((ln2, cw)), Some(c)) => {
            let x = at.norm(ln2, [T5Hook::Ln2Scale, T5Hook::Ln2Normalized], &resid_mid, taps)?;
            let w_q = cw.w_q.as_ref().unwrap_or(&cw.w_qkv);
            let slot = c.kv;
            let hooks = at.attn_hooks(true);
            let (out, fresh) = match slot.as_deref() {
                Some(Some(kv)) => attention::forward(at.cfg, &x, w_q, &cw.w_o, KvSource::Cached(kv), c.additive, &hooks, taps)?,
                _ => attention::forward(at.cfg, &x, w_q, &cw.w_o, KvSource::Encoder(c.encoder, &cw.w_qkv), c.additive, &hooks, taps)?,
            };
            if let (Some(slot), Some(kv)) = (slot, fresh) {
                *slot = Some(kv);
            }
            let out = at.fire(T5Hook::CrossAttnOut, out, taps)?;
            at.fire(T5Hook::ResidMidCross, (resid_mid + out)?, taps)?
        }
        (None, None) => resid_mid,
        _ => return Err(crate::error::Error::invalid("a decoder block needs the encoder output, an encoder block none")),
    };
    let x = at.norm(&w.ln_mlp, mlp_norm_hooks(at.decoder), &mlp_in, taps)?;
    let pre = at.fire(T5Hook::MlpPre, linear(&x, &w.w_in, None)?, taps)?;
    let post = at.fire(T5Hook::MlpPost, pre.relu()?, taps)?;
    let mlp_out = at.fire(T5Hook::MlpOut, linear(&post, &w.w_out, None)?, taps)?;
    at.fire(T5Hook::ResidPost, (mlp_in + mlp_out)?, taps)
}
