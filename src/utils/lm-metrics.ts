/**
 * TL's next-token metrics (`utils.lm_cross_entropy_loss`, `utils.lm_accuracy`): logits at
 * position i are scored against the token at i + 1.
 */
import { TransformerLensError } from '../errors'
import { opt } from '../model/options'
import { IndexEntry, Tensor } from '../tensor'
import { withScope } from './scope'

export interface LmCrossEntropyOptions {
  /** `[batch, pos]` 1/0: positions whose token (or next token) is 0 do not count. TL: `attention_mask`. */
  attentionMask?: Tensor | null
  /** Per-position losses `[batch, pos - 1]` instead of the mean. TL: `per_token`. */
  perToken?: boolean
}

/** `[..., range, ...]` indexing the dim `d` of a tensor (the dims before it taken whole). */
function along(d: number, range: [number | null, number | null]): IndexEntry[] {
  return [...new Array<null>(d).fill(null), range]
}

/**
 * Cross-entropy of predicting each next token: the mean over all predicted positions (or over
 * the unmasked ones), or `[batch, pos - 1]` per token. As TL, masked positions are 0 in the
 * per-token result, and the mean divides by the number of unmasked positions.
 */
export function lmCrossEntropyLoss(logits: Tensor, tokens: Tensor, options: LmCrossEntropyOptions = {}): Tensor {
  const mask = opt<Tensor | null>(options, 'attentionMask', null)
  const perToken = opt(options, 'perToken', false)
  const posDim = logits.ndim - 2
  if (posDim < 0 || tokens.ndim !== logits.ndim - 1) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `logits [${logits.shape}] and tokens [${tokens.shape}] do not fit: want [..., pos, d_vocab] and [..., pos]`)
  }
  return withScope((s) => {
    const logProbs = s.keep(logits.logSoftmax(-1))
    const head = s.keep(logProbs.get(...along(posDim, [null, -1]))) // [..., pos - 1, d_vocab]
    const next = s.keep(s.keep(tokens.get(...along(posDim, [1, null]))).unsqueeze(-1)) // [..., pos - 1, 1]
    let predicted = s.keep(s.keep(head.gather(-1, next)).squeeze(-1)) // [..., pos - 1]
    let nTokens = predicted.numel()
    if (mask !== null) {
      // Both a position and the next one must be unmasked (TL: logical_and of the shifted masks).
      const m = s.keep(mask.to('float32'))
      const both = s.keep(s.keep(m.get(null, [null, -1])).mul(s.keep(m.get(null, [1, null]))))
      const nextMask = s.keep(both.ne(0))
      predicted = s.keep(predicted.mul(s.keep(nextMask.to(predicted.dtype))))
      nTokens = s.keep(s.keep(nextMask.to('float32')).sum()).item()
    }
    if (perToken) return predicted.neg()
    return s.keep(s.keep(predicted.sum()).neg()).div(nTokens)
  })
}

/**
 * Top-1 next-token accuracy: the fraction of positions whose argmax is the next token, or the
 * per-position matches `[batch, pos - 1]` (uint8 0/1, TL's bool) with `perToken`.
 */
export function lmAccuracy(logits: Tensor, tokens: Tensor, options: { perToken?: boolean } = {}): Tensor {
  return withScope((s) => {
    const top = s.keep(logits.argmax(-1)) // [batch, pos]
    const pred = s.keep(top.get(null, [null, -1]))
    const next = s.keep(tokens.get(null, [1, null]))
    const matches = pred.eq(next)
    if (opt(options, 'perToken', false)) return matches
    s.keep(matches)
    return s.keep(s.keep(matches.to('float32')).sum()).div(matches.numel())
  })
}
