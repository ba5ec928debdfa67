/**
 * Model-level circuits, as TL's `HookedTransformer.QK` / `.OV` / `.all_composition_scores`:
 * FactoredMatrices over the attention weights of every layer and head, read from the model's
 * TL state dict (`blocks.{l}.attn.W_Q: [n_heads, d_model, d_head]`, ...).
 */
import { TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { Tensor } from '../tensor'
import { compositionScores } from '../utils/matrix'

/** What the circuits need from a model (HookedTransformer satisfies it). */
export interface CircuitsModel {
  readonly cfg: { n_layers: number; n_heads: number }
  stateDict(): Map<string, Tensor>
}

/**
 * The TL state-dict entries named by `keys` (each a function of the layer), stacked over layers:
 * `[n_layers, ...]`, as TL's `model.W_Q` etc. Everything else read from the state dict is freed.
 */
export function stackedWeights(model: CircuitsModel, ...keys: ((layer: number) => string)[]): Tensor[] {
  const sd = model.stateDict()
  try {
    return keys.map((key) => {
      const parts: Tensor[] = []
      for (let l = 0; l < model.cfg.n_layers; l++) {
        const t = sd.get(key(l))
        if (!t) throw new TransformerLensError('TL_MISSING_WEIGHT', `weight '${key(l)}' is not in the model's state dict`)
        parts.push(t)
      }
      return Tensor.stack(parts, 0)
    })
  } finally {
    for (const t of sd.values()) t.dispose()
  }
}

function fromStacked(model: CircuitsModel, left: string, right: string, transposeRight: boolean): FactoredMatrix {
  const [a, b] = stackedWeights(model, (l) => `blocks.${l}.attn.${left}`, (l) => `blocks.${l}.attn.${right}`)
  const bb = transposeRight ? b.T : b
  try {
    return new FactoredMatrix(a, bb)
  } finally {
    a.dispose()
    b.dispose()
    bb.dispose()
  }
}

/** TL's `model.QK`: `W_Q W_Kᵀ` per head, `[n_layers, n_heads, d_model, d_model]` (factored, inner dim d_head). */
export function QK(model: CircuitsModel): FactoredMatrix {
  return fromStacked(model, 'W_Q', 'W_K', true)
}

/** TL's `model.OV`: `W_V W_O` per head, `[n_layers, n_heads, d_model, d_model]` (factored, inner dim d_head). */
export function OV(model: CircuitsModel): FactoredMatrix {
  return fromStacked(model, 'W_V', 'W_O', false)
}

export type CompositionMode = 'Q' | 'K' | 'V'

/**
 * TL's `all_composition_scores(mode)`: the composition score of every head's OV circuit into
 * every head's Q (`QK`), K (`QKᵀ`) or V (`OV`) input, `[n_layers, n_heads, n_layers, n_heads]`,
 * zero unless the second head sits in a strictly later layer than the first.
 */
export function allCompositionScores(model: CircuitsModel, mode: CompositionMode): Tensor {
  if (mode !== 'Q' && mode !== 'K' && mode !== 'V') {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `mode must be one of ['Q', 'K', 'V'] not ${String(mode)}`)
  }
  const left = OV(model)
  const reader = mode === 'V' ? OV(model) : QK(model)
  const right = mode === 'K' ? reader.T : reader
  const n = model.cfg.n_layers
  const first = Tensor.arange(n).reshape(n, 1, 1, 1)
  const second = Tensor.arange(n).reshape(1, 1, n, 1)
  const mask = first.lt(second)
  const scores = compositionScores(left, right, { broadcastDims: true })
  try {
    return mask.where(scores, 0)
  } finally {
    for (const x of [first, second, mask, scores]) x.dispose()
    for (const f of new Set([left, reader, right])) f.dispose()
  }
}

/** TL's `all_head_labels()`: `L{layer}H{head}` for every head, layer-major. */
export function allHeadLabels(model: CircuitsModel): string[] {
  const out: string[] = []
  for (let l = 0; l < model.cfg.n_layers; l++) for (let h = 0; h < model.cfg.n_heads; h++) out.push(`L${l}H${h}`)
  return out
}
