//! One T5 block (TL's `T5Block.forward`), firing hooks in TL's order: self-attention, then (in
//! the decoder) cross-attention on the encoder output, then the ReLU MLP; RMS norms before each.

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels::linear::linear;
use crate::model::attention::AttnInput;
use crate::model::attn_heads::repeat_along_heads;
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
        let [q, k, v, scores, pattern, z, result] =
            if cross { [CrossQ, CrossK, CrossV, CrossAttnScores, CrossPattern, CrossZ, CrossResult] } else { [Q, K, V, AttnScores, Pattern, Z, Result] };
        let id = |h| self.id(h);
        AttnHooks { q: id(q), k: id(k), v: id(v), scores: id(scores), pattern: id(pattern), z: id(z), result: id(result) }
    }

    /// The self-attention's input: ln1 of the residual stream, or with TL's flags of the
    /// per-head streams `hook_attn_in` / `hook_{q,k,v}_input` see (`[batch, pos, n_heads,
    /// d_model]`). TL normalises once per projection, so ln1's hooks fire three times (the cache
    /// keeps the last); when nothing watches them the one norm is shared.
    fn self_attn_input(&self, w: &T5Block, resid_pre: &Tensor, taps: &mut Taps) -> Result<AttnInput> {
        let ln1 = [T5Hook::Ln1Scale, T5Hook::Ln1Normalized];
        let watched = taps.active(self.id(ln1[0])) || taps.active(self.id(ln1[1]));
        let h = self.cfg.n_heads;
        let (q, k, v) = if self.cfg.use_split_qkv_input {
            let q = self.fire(T5Hook::QInput, repeat_along_heads(resid_pre, h)?, taps)?;
            let k = self.fire(T5Hook::KInput, repeat_along_heads(resid_pre, h)?, taps)?;
            let v = self.fire(T5Hook::VInput, repeat_along_heads(resid_pre, h)?, taps)?;
            (q, k, v)
        } else if self.cfg.use_attn_in {
            let x = self.fire(T5Hook::AttnIn, repeat_along_heads(resid_pre, h)?, taps)?;
            (x.clone(), x.clone(), x)
        } else {
            let x = resid_pre.clone();
            (x.clone(), x.clone(), x)
        };
        let per_head = self.cfg.use_split_qkv_input || self.cfg.use_attn_in;
        if !self.cfg.use_split_qkv_input && !watched {
            let x = self.norm(&w.ln1, ln1, &q, taps)?;
            return Ok(if per_head { AttnInput::PerHead { q: x.clone(), k: x.clone(), v: x } } else { AttnInput::Shared(x) });
        }
        let (q, k, v) = (self.norm(&w.ln1, ln1, &q, taps)?, self.norm(&w.ln1, ln1, &k, taps)?, self.norm(&w.ln1, ln1, &v, taps)?);
        Ok(if per_head { AttnInput::PerHead { q, k, v } } else { AttnInput::Separate { q, k, v } })
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
    let input = at.self_attn_input(w, &resid_pre, taps)?;
    let (attn_out, _) = attention::forward(at.cfg, &input, &w.attn.w_qkv, &w.attn.w_o, KvSource::Own(kv), additive, &at.attn_hooks(false), taps)?;
    let attn_out = at.fire(T5Hook::AttnOut, attn_out, taps)?;
    let resid_mid = at.fire(T5Hook::ResidMid, (resid_pre + attn_out)?, taps)?;
    let mlp_in = match (&w.cross, cross) {
        (Some((ln2, cw)), Some(c)) => {
            // TL fires hook_cross_attn_in under use_attn_in; its cross-attention then fails on the
            // 3-D input (and under use_split_qkv_input too). Here it runs as without the flags.
            let cross_in = if at.cfg.use_attn_in { at.fire(T5Hook::CrossAttnIn, resid_mid.clone(), taps)? } else { resid_mid.clone() };
            let x = AttnInput::Shared(at.norm(ln2, [T5Hook::Ln2Scale, T5Hook::Ln2Normalized], &cross_in, taps)?);
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
    let mlp_in = if at.cfg.use_hook_mlp_in { at.fire(T5Hook::MlpIn, mlp_in.clone(), taps)? } else { mlp_in };
    let x = at.norm(&w.ln_mlp, mlp_norm_hooks(at.decoder), &mlp_in, taps)?;
    let pre = at.fire(T5Hook::MlpPre, linear(&x, &w.w_in, None)?, taps)?;
    // TL's MLP with the config's act_fn (feed_forward_proj, checked when the config was read).
    let act = crate::model::activation::Activation::from_name(at.cfg.act_fn.as_deref().unwrap_or("relu"))?;
    let post = at.fire(T5Hook::MlpPost, act.apply(&pre)?, taps)?;
    let mlp_out = at.fire(T5Hook::MlpOut, linear(&post, &w.w_out, None)?, taps)?;
    at.fire(T5Hook::ResidPost, (mlp_in + mlp_out)?, taps)
}
