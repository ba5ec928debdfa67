//! TL's `MoE` MLP (Mixtral): a router picks `experts_per_token` experts per token, each expert
//! (a gated MLP without biases, TL's `MoEGatedMLP`) runs once over only the tokens routed to it,
//! and its outputs, weighted by the renormalised router probabilities, are added back at their
//! tokens. Hooks fire as in TL: `mlp.hook_expert_weights`, `mlp.hook_expert_indices`, then each
//! expert's `hook_gate`, `hook_pre`, `hook_post` over its rows, in TL's row order (the tokens
//! that chose it first, then those that chose it second, ...: `torch.where` on the one-hot mask).

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::kernels::gated::silu_mul_add;
use crate::kernels::linear::linear;
use crate::model::activation::Activation;
use crate::model::hooks::{BlockHook, ExpertHook, Taps};
use crate::model::weights::MlpWeights;

/// The `k` largest entries of `row` (indices, largest first; ties to the lower index).
fn top_k(row: &[f32], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..row.len() as u32).collect();
    order.sort_by(|&a, &b| row[b as usize].partial_cmp(&row[a as usize]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// Softmax over the last axis in f32 (TL: `F.softmax(gate_logits, dim=1, dtype=torch.float)`).
fn softmax_f32(logits: &Tensor) -> Result<Tensor> {
    let l = logits.to_dtype(DType::F32)?;
    let m = l.max_keepdim(1)?.detach();
    let e = l.broadcast_sub(&m)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(1)?)?)
}

pub fn forward(layer: usize, w: &MlpWeights, router: &Tensor, act: Activation, k: usize, x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let d = *dims.last().ok_or_else(|| Error::shape("MoE input has no dimensions"))?;
    let flat = x.reshape(((), d))?;
    let n = flat.dim(0)?;
    let n_experts = router.dim(1)?;
    let Some(w_gate) = &w.w_gate else { return Err(Error::invalid("MoE experts need W_gate")) };
    let d_mlp = w.w_in.dim(2)?;

    let probs = softmax_f32(&linear(&flat, router, None)?)?;
    let probs = taps.block(layer, BlockHook::MoeExpertWeights, probs)?;
    let rows: Vec<Vec<f32>> = probs.detach().to_dtype(DType::F32)?.to_vec2()?;
    let chosen: Vec<u32> = rows.iter().flat_map(|r| top_k(r, k)).collect();
    let chosen_t = Tensor::from_vec(chosen, (n, k), probs.device())?;
    // TL: topk of the softmax, renormalised over the chosen experts (= a softmax over their logits).
    let top = probs.gather(&chosen_t, 1)?;
    let weights = top.broadcast_div(&top.sum_keepdim(1)?)?.to_dtype(x.dtype())?.flatten_all()?;
    // A hook may replace the indices: TL routes by the hooked ones, weighting by the original.
    let indices = taps.block(layer, BlockHook::MoeExpertIndices, chosen_t.to_dtype(DType::I64)?)?;
    let routed: Vec<i64> = indices.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;

    let mut out = Tensor::zeros((n, d), x.dtype(), x.device())?;
    let fire = |taps: &mut Taps, e: usize, h: ExpertHook, t: Tensor| {
        let id = taps.table.expert(layer, e, h);
        taps.fire(id, t)
    };
    for e in 0..n_experts {
        // (slot, token) pairs in torch.where's order over the [k, n] mask.
        let (mut tokens, mut picks) = (Vec::new(), Vec::new());
        for slot in 0..k {
            for t in 0..n {
                if routed[t * k + slot] == e as i64 {
                    tokens.push(t as u32);
                    picks.push((t * k + slot) as u32);
                }
            }
        }
        if tokens.is_empty() {
            if let Some(zero) = empty_expert(layer, e, w, act, &flat, d_mlp, taps)? {
                out = out.broadcast_add(&zero)?;
            }
            continue;
        }
        let m = tokens.len();
        let tokens = Tensor::from_vec(tokens, m, x.device())?;
        let picks = Tensor::from_vec(picks, m, x.device())?;
        let xe = flat.index_select(&tokens, 0)?;
        let gate = fire(taps, e, ExpertHook::Gate, linear(&xe, &w_gate.get(e)?, None)?)?;
        let pre = fire(taps, e, ExpertHook::Pre, linear(&xe, &w.w_in.get(e)?, None)?)?;
        let b_in = w.b_in.get(e)?;
        let fused = if act == Activation::Silu { silu_mul_add(&gate, &pre, &b_in)? } else { None };
        let post = match fused {
            Some(y) => y,
            None => (act.apply(&gate)? * pre)?.broadcast_add(&b_in)?,
        };
        let post = fire(taps, e, ExpertHook::Post, post)?;
        let y = linear(&post, &w.w_out.get(e)?, None)?;
        let we = weights.index_select(&picks, 0)?.unsqueeze(1)?;
        out = out.index_add(&tokens, &y.broadcast_mul(&we)?, 0)?;
    }
    Ok(out.broadcast_add(&w.b_out)?.reshape(dims)?)
}

/// Expert `e` of a run where no token chose it. TL runs it on no rows: its hooks see empty
/// activations, and in a gradient run its backward hooks fire too (empty gradients, in the
/// experts' order), so there the empty activations hang off the input and join the output
/// through a zero term, returned to add (autograd reaches only what depends on the input;
/// candle's ops return an empty operand untracked, but a broadcast keeps its source, and its
/// backprop prunes a product by 0 through `affine` but not through a tensor product).
fn empty_expert(layer: usize, e: usize, w: &MlpWeights, act: Activation, flat: &Tensor, d_mlp: usize, taps: &mut Taps) -> Result<Option<Tensor>> {
    let fire = |taps: &mut Taps, h: ExpertHook, t: Tensor| {
        let id = taps.table.expert(layer, e, h);
        taps.fire(id, t)
    };
    let grad = taps.grad_mode() && flat.dim(0)? > 0;
    let nought = Tensor::zeros((), flat.dtype(), flat.device())?;
    let times_zero = |t: Tensor| t.broadcast_mul(&nought);
    // One input element (a sum could overflow, and inf · 0 is NaN).
    let anchor = if grad { Some(times_zero(flat.narrow(0, 0, 1)?.narrow(1, 0, 1)?)?) } else { None };
    let empty = || -> Result<Tensor> {
        Ok(match &anchor {
            Some(a) => a.broadcast_as((0, d_mlp))?,
            None => Tensor::zeros((0, d_mlp), flat.dtype(), flat.device())?,
        })
    };
    let gate = fire(taps, ExpertHook::Gate, empty()?)?;
    let pre = fire(taps, ExpertHook::Pre, empty()?)?;
    let post = fire(taps, ExpertHook::Post, (act.apply(&gate)? * &pre)?.broadcast_add(&w.b_in.get(e)?)?)?;
    if !grad {
        return Ok(None);
    }
    Ok(Some(times_zero((gate.sum_all()? + pre.sum_all()?)?.add(&post.sum_all()?)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Config;
    use crate::model::hooks::{HookTable, NoHooks};
    use candle_core::Device;

    #[test]
    fn top_k_picks_the_largest_first() {
        assert_eq!(top_k(&[0.1, 0.5, 0.2, 0.5], 3), vec![1, 3, 2]);
    }

    /// Routing equals the dense reference: every expert on every token, weighted by the
    /// renormalised top-k probabilities (zero for the experts a token did not choose).
    #[test]
    fn routed_experts_equal_the_dense_reference() {
        let dev = Device::Cpu;
        let (n_e, k, d, dm, n) = (4usize, 2usize, 6usize, 5usize, 7usize);
        let r = |s: &[usize]| Tensor::randn(0f32, 1.0, s, &dev).unwrap();
        let w = MlpWeights {
            ln: None,
            w_in: r(&[n_e, d, dm]),
            w_gate: Some(r(&[n_e, d, dm])),
            b_in: Tensor::zeros((n_e, dm), DType::F32, &dev).unwrap(),
            w_out: r(&[n_e, dm, d]),
            b_out: Tensor::zeros(d, DType::F32, &dev).unwrap(),
            router: Some(r(&[d, n_e])),
        };
        let x = r(&[1, n, d]);
        let cfg = Config { n_layers: 1, d_model: d, n_heads: 1, d_head: d, d_mlp: Some(dm), num_experts: Some(n_e), experts_per_token: Some(k), ..Config::default() };
        let table = HookTable::new(&cfg);
        let mut sink = NoHooks;
        let mut taps = Taps::new(&table, &mut sink);
        let got = forward(0, &w, w.router.as_ref().unwrap(), Activation::Silu, k, &x, &mut taps).unwrap().squeeze(0).unwrap();

        let flat = x.squeeze(0).unwrap();
        let probs: Vec<Vec<f32>> = candle_nn_free_softmax(&flat.matmul(w.router.as_ref().unwrap()).unwrap());
        let mut want = Tensor::zeros((n, d), DType::F32, &dev).unwrap();
        for e in 0..n_e {
            let g = flat.matmul(&w.w_gate.as_ref().unwrap().get(e).unwrap()).unwrap().silu().unwrap();
            let y = (g * flat.matmul(&w.w_in.get(e).unwrap()).unwrap()).unwrap().matmul(&w.w_out.get(e).unwrap()).unwrap();
            let scale: Vec<f32> = probs
                .iter()
                .map(|p| {
                    let top = top_k(p, k);
                    let sum: f32 = top.iter().map(|&i| p[i as usize]).sum();
                    if top.contains(&(e as u32)) { p[e] / sum } else { 0.0 }
                })
                .collect();
            let s = Tensor::from_vec(scale, (n, 1), &dev).unwrap();
            want = (want + y.broadcast_mul(&s).unwrap()).unwrap();
        }
        let gap = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(gap < 1e-5, "{gap}");
    }

    fn candle_nn_free_softmax(l: &Tensor) -> Vec<Vec<f32>> {
        softmax_f32(l).unwrap().to_vec2().unwrap()
    }
}
