//! LayerNorm / RMSNorm and their folded (`Pre`) variants, with TL's two hook points.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::kernels::layer_norm::{center_and_scale, layer_norm_fused, rms_scale};
use crate::kernels::norm_affine::norm_affine;
use crate::kernels::row_ops;
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
    let ln = matches!(kind, NormKind::LN | NormKind::LNPre);
    let wt = if kind.has_weight() { w.w.as_ref() } else { None };
    let bt = if kind.has_bias() { w.b.as_ref() } else { None };
    // Trainable weights (variables): the fused kernels treat weights as constants, so the
    // normalisation runs fused and the weight and bias join the graph as ops of their own.
    let trainable = wt.is_some_and(|t| t.track_op()) || bt.is_some_and(|t| t.track_op());
    if !watched && trainable {
        let plain = if ln { NormKind::LNPre } else { NormKind::RMSPre };
        let y = apply(plain, &NormWeights::default(), eps, x, hooks, taps)?;
        let y = match wt {
            Some(wt) => row_ops::mul_row(&y, &wt.to_dtype(y.dtype())?)?,
            None => y,
        };
        return Ok(match bt {
            Some(b) => row_ops::add_row(&y, &b.to_dtype(y.dtype())?)?,
            None => y,
        });
    }
    if !watched {
        if let Some(y) = layer_norm_fused(x, eps, ln, wt, bt)? {
            return Ok(y);
        }
    }
    let in_dtype = x.dtype();
    let x = if matches!(in_dtype, DType::F32 | DType::F64) { x.clone() } else { x.to_dtype(DType::F32)? };
    let fused = if ln { center_and_scale(&x, eps)? } else { rms_scale(&x, eps)?.map(|s| (x.clone(), s)) };
    let (centered, scale) = match fused {
        Some(cs) => cs,
        None => {
            let centered = if ln { x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)? } else { x };
            let scale = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
            (centered, scale)
        }
    };
    let scale = taps.fire(hooks.scale, scale)?;
    if !ln {
        // TL's RMSNorm hooks `x / scale` and multiplies by its weight after (in the model dtype).
        // One autograd node for the division (the same bits as candle's broadcast_div).
        let normalized = match norm_affine(&centered, &scale, None, None)? {
            Some(y) => y,
            None => centered.broadcast_div(&scale)?,
        };
        let y = taps.fire(hooks.normalized, normalized)?;
        let y = if y.dtype() != in_dtype { y.to_dtype(in_dtype)? } else { y };
        return Ok(match wt {
            Some(wt) => row_ops::mul_row(&y, &wt.to_dtype(in_dtype)?)?,
            None => y,
        });
    }
    let fused = if trainable { None } else { norm_affine(&centered, &scale, wt, bt)? };
    let y = match fused {
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
