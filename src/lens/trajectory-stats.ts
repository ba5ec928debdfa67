/**
 * The numbers of the trajectory statistics, as native Tensor ops over log-probs
 * `[N, layers, positions, vocab]` (N: the flattened batch). Each returns `[N, layers, positions]`
 * (one layer fewer for the delta of `logProbDiff`), new and owned by the caller; `batchMean`
 * averages over N (when the trajectory has batch axes) and reads the `[layers][positions]`
 * numbers into JS. Written as tuned-lens computes them (float32).
 * @internal
 */
import { Tensor } from '../tensor'
import { TensorScope, withScope } from '../utils/scope'

/** `[N, layers, positions]` → `[layers][positions]`: mean over N, or N's only entry. */
export function batchMean(t: Tensor, hasBatch: boolean): number[][] {
  return withScope((s) => {
    const m = s.keep(hasBatch ? t.mean(0) : t.get(0))
    const flat = s.keep(m.to('float32')).toArray() as Float32Array
    const [rows, cols] = m.shape
    return Array.from({ length: rows }, (_, r) => Array.from(flat.subarray(r * cols, (r + 1) * cols)))
  })
}

/** Σ_v exp(a)·(a − b) over the vocabulary: KL(exp(a) ‖ exp(b)). */
function klOf(s: TensorScope, a: Tensor, b: Tensor): Tensor {
  return s.keep(s.keep(s.keep(a.exp()).mul(s.keep(a.sub(b)))).sum(-1))
}

/** −Σ p·log p */
export function entropy(lp: Tensor): Tensor {
  return withScope((s) => s.keep(s.keep(s.keep(lp.exp()).mul(lp)).sum(-1)).neg())
}

/** KL(model ‖ layer): the last layer (the model's output) against every layer. */
export function forwardKl(lp: Tensor): Tensor {
  return withScope((s) => {
    const model = s.keep(lp.get(null, [-1, null]))
    return klOf(s, model, lp).clone()
  })
}

/** The log-probs of `ids` `[N, positions]` at every layer: `[N, layers, positions]`. */
function select(s: TensorScope, lp: Tensor, ids: Tensor): Tensor {
  const [n, layers, positions] = lp.shape
  const idx = s.keep(s.keep(s.keep(ids.reshape([n, 1, positions, 1])).broadcastTo([n, layers, positions, 1])).clone())
  return s.keep(s.keep(lp.gather(-1, idx)).squeeze(-1))
}

/** −log p(target) */
export function crossEntropy(lp: Tensor, targets: Tensor): Tensor {
  return withScope((s) => select(s, lp, targets).neg())
}

/** 1 + the number of tokens more probable than the target. */
export function rank(lp: Tensor, targets: Tensor): Tensor {
  return withScope((s) => {
    const t = s.keep(select(s, lp, targets).unsqueeze(-1))
    const above = s.keep(s.keep(lp.gt(t)).to('float32'))
    return s.keep(above.sum(-1)).add(1)
  })
}

/** exp(max log p) */
export function maxProbability(lp: Tensor): Tensor {
  return withScope((s) => s.keep(lp.max(-1)).exp())
}

/** log p(target) − log p(antiTarget); with `delta`, its change from each layer to the next. */
export function logProbDiff(lp: Tensor, targets: Tensor, antiTargets: Tensor, delta: boolean): Tensor {
  return withScope((s) => {
    const diff = s.keep(select(s, lp, targets).sub(select(s, lp, antiTargets)))
    if (!delta) return diff.clone()
    return s.keep(diff.get(null, [1, null])).sub(s.keep(diff.get(null, [null, -1])))
  })
}

/** KL(p ‖ q) */
export function kl(p: Tensor, q: Tensor): Tensor {
  return withScope((s) => klOf(s, p, q).clone())
}

/** tuned-lens's "JS divergence": ½·KL(p‖q) + ½·KL(q‖p). */
export function symmetrisedKl(p: Tensor, q: Tensor): Tensor {
  return withScope((s) => s.keep(s.keep(klOf(s, p, q).mul(0.5))).add(s.keep(klOf(s, q, p).mul(0.5))))
}

/** The Jensen–Shannon divergence ½·KL(p‖m) + ½·KL(q‖m), m = (p + q)/2; 0·log 0 terms are 0. */
export function jensenShannon(lp: Tensor, lq: Tensor): Tensor {
  return withScope((s) => {
    const p = s.keep(lp.exp())
    const q = s.keep(lq.exp())
    const m = s.keep(s.keep(p.add(q)).mul(0.5))
    const lm = s.keep(m.log())
    const term = (x: Tensor, lx: Tensor) => {
      const t = s.keep(x.mul(s.keep(lx.sub(lm))))
      return s.keep(s.keep(x.gt(0)).where(t, 0))
    }
    return s.keep(s.keep(term(p, lp).add(term(q, lq))).sum(-1)).mul(0.5)
  })
}

/** tuned-lens's "total variation" max_v |p − q|, or (`textbook`) ½·Σ_v |p − q|. */
export function totalVariation(lp: Tensor, lq: Tensor, textbook: boolean): Tensor {
  return withScope((s) => {
    const d = s.keep(s.keep(s.keep(lp.exp()).sub(s.keep(lq.exp()))).abs())
    return textbook ? s.keep(d.sum(-1)).mul(0.5) : d.max(-1)
  })
}
