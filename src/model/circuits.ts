/**
 * Model-level circuits, as TL's `HookedTransformer.QK` / `.OV` / `.all_composition_scores`:
 * FactoredMatrices over the attention weights of every layer and head, stacked over layers by
 * ./weights (`W_Q: [n_layers, n_heads, d_model, d_head]`, `W_O: [n_layers, n_heads, d_head, d_model]`).
 */
import { TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { Tensor } from '../tensor'
import { compositionScores } from '../utils/matrix'
import type { HookedTransformer } from './hooked-transformer'
import * as weights from './weights'

function factored(model: HookedTransformer, left: (m: HookedTransformer) => Tensor, right: (m: HookedTransformer) => Tensor, transposeRight: boolean): FactoredMatrix {
  const a = left(model)
  const b = right(model)
  const bb = transposeRight ? b.T : b
  try {
    return new FactoredMatrix(a, bb)
  } finally {
    for (const t of new Set([a, b, bb])) t.dispose()
  }
}

/** TL's `model.QK`: `W_Q W_Kᵀ` per head, `[n_layers, n_heads, d_model, d_model]` (factored, inner dim d_head). */
export function QK(model: HookedTransformer): FactoredMatrix {
  return factored(model, weights.W_Q, weights.W_K, true)
}

/** TL's `model.OV`: `W_V W_O` per head, `[n_layers, n_heads, d_model, d_model]` (factored, inner dim d_head). */
export function OV(model: HookedTransformer): FactoredMatrix {
  return factored(model, weights.W_V, weights.W_O, false)
}

export type CompositionMode = 'Q' | 'K' | 'V'

/**
 * TL's `all_composition_scores(mode)`: the composition score of every head's OV circuit into
 * every head's Q (`QK`), K (`QKᵀ`) or V (`OV`) input, `[n_layers, n_heads, n_layers, n_heads]`,
 * zero unless the second head sits in a strictly later layer than the first.
 */
export function allCompositionScores(model: HookedTransformer, mode: CompositionMode): Tensor {
  if (mode !== 'Q' && mode !== 'K' && mode !== 'V') {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `mode must be one of ['Q', 'K', 'V'] not ${String(mode)}`)
  }
  const left = OV(model)
  const reader = mode === 'V' ? left : QK(model)
  const right = mode === 'K' ? reader.T : reader
  const n = model.cfg.n_layers
  const temps: Tensor[] = []
  const keep = (t: Tensor) => (temps.push(t), t)
  try {
    const scores = keep(compositionScores(left, right, { broadcastDims: true }))
    // Only a head in a later layer can read what an earlier head wrote.
    const first = keep(keep(Tensor.arange(n)).reshape(n, 1, 1, 1))
    const second = keep(keep(Tensor.arange(n)).reshape(1, 1, n, 1))
    return keep(first.lt(second)).where(scores, 0)
  } finally {
    for (const t of temps) t.dispose()
    for (const f of new Set([left, reader, right])) f.dispose()
  }
}
