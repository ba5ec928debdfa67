//! LayerNorm / RMSNorm and their folded (`Pre`) variants, with TL's two hook points.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::kernels::layer_norm::{center_and_scale, layer_norm_fused};
use crate::kernels::norm_affine::norm_affine;
use crate::model::hooks::Taps;
use crate::model::weights::NormWeights;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    LN,
    LNPre,
    RMS,
    RMSPre,
    None,
}

impl NormKind {
    pub fn from_cfg(name: Option<&str>) -> Result<Self> {
        Ok(match name {
            Some("LN") => NormKind::LN,
            Some("LNPre") => NormKind::LNPre,
            Some("RMS") => NormKind::RMS,
            Some("RMSPre") => NormKind::RMSPre,
            None => NormKind::None,
            Some(other) => return Err(Error::unsupported(format!("normalization_type '{other}'"))),
        })
    }
    pub fn has_weight(self) -> bool {
        matches!(self, NormKind::LN | NormKind::RMS)
    }
    pub fn has_bias(self) -> bool {
        self == NormKind::LN
    }
}

/// Hook ids of one norm instance.
#[derive(Debug, Clone, Copy)]
pub struct NormHooks {
    pub scale: Option<usize>,
    pub normalized: Option<usize>,
}

/// Applies the norm over the last dim. As TL, half-precision input is computed in f32 and the
/// result is cast back.
pub fn apply(
    kind: NormKind,
    w: &NormWeights,
    eps: f64,
    x: &Tensor,
    hooks: NormHooks,
    taps: &mut Taps,
) -> Result<Tensor> {
    if kind == NormKind::None {
        return Ok(x.clone());
    }
    let watched = taps.active(hooks.scale) || taps.active(hooks.normalized);
    if (kind == NormKind::LN || kind == NormKind::LNPre) && !watched {
        let (wt, b) = if kind == NormKind::LN { (w.w.as_ref(), w.b.as_ref()) } else { (None, None) };
        if let Some(y) = layer_norm_fused(x, eps, wt, b)? {
            return Ok(y);
        }
    }
    let in_dtype = x.dtype();
    let x = if matches!(in_dtype, DType::F32 | DType::F64) { x.clone() } else { x.to_dtype(DType::F32)? };
    let ln = matches!(kind, NormKind::LN | NormKind::LNPre);
    let (centered, scale) = match if ln { center_and_scale(&x, eps)? } else { None } {
        Some(cs) => cs,
        None => {
            let centered = if ln { x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)? } else { x };
            let scale = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
            (centered, scale)
        }
    };
    let scale = taps.fire(hooks.scale, scale)?;
    let wt = if kind.has_weight() { w.w.as_ref() } else { None };
    let bt = if kind.has_bias() { w.b.as_ref() } else { None };
    let y = match norm_affine(&centered, &scale, wt, bt)? {
        Some(y) => y,
        None => {
            let mut y = centered.broadcast_div(&scale)?;
            if let Some(wt) = wt {
                y = y.broadcast_mul(&wt.to_dtype(y.dtype())?)?;
            }
            if let Some(b) = bt {
                y = y.broadcast_add(&b.to_dtype(y.dtype())?)?;
            }
            y
        }
    };
    let y = taps.fire(hooks.normalized, y)?;
    Ok(if y.dtype() != in_dtype { y.to_dtype(in_dtype)? } else { y })
}
