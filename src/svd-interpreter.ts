/**
 * TL's `SVDInterpreter`: the top right-singular vectors of a head's OV circuit or of an MLP's
 * `W_in` / `W_out`, read out through the unembedding as token-space directions.
 */
import { TransformerLensError } from './errors'
import { FactoredMatrix } from './factored-matrix'
import type { HookedTransformer } from './model/hooked-transformer'
import { param } from './model/weights'
import { Tensor } from './tensor'

export type SingularVectorType = 'OV' | 'w_in' | 'w_out'

export interface GetSingularVectorsOptions {
  /** How many singular vectors, largest singular value first (TL's default 10). */
  numVectors?: number
  /** The head, required for `'OV'`. */
  headIndex?: number
}

const OUTPUT_EMBEDDING = 'unembed.W_U'

function invalid(message: string): TransformerLensError {
  return new TransformerLensError('TL_INVALID_ARGUMENT', message)
}

export class SVDInterpreter {
  readonly model: HookedTransformer
  readonly cfg: HookedTransformer['cfg']

  constructor(model: HookedTransformer) {
    this.model = model
    this.cfg = model.cfg
  }

  /**
   * TL's `get_singular_vectors`: for `'OV'` (layer, head) the right singular vectors of
   * `W_V[h] W_O[h]`; for `'w_in'` those of `W_inᵀ` (times `ln2.w` when LayerNorm was not folded);
   * for `'w_out'` those of `W_out`. The top `numVectors` of them (d_model-dim directions, by
   * decreasing singular value) are multiplied by `W_U`, giving `[d_vocab, 1, numVectors]`:
   * each column scores every token along one direction.
   *
   * Each singular vector, and so each column, is defined only up to sign (TL's too, and its
   * sign varies across devices). `numVectors` may not exceed the number of singular values.
   * Call as `(type, layer, { numVectors, headIndex })` or TL-positionally `(type, layer, n, head)`.
   */
  getSingularVectors(
    vectorType: SingularVectorType,
    layerIndex: number,
    numVectors: number | GetSingularVectorsOptions = {},
    headIndex?: number,
  ): Tensor {
    const o = typeof numVectors === 'number' ? { numVectors, headIndex } : numVectors
    const n = o.numVectors ?? 10
    const head = o.headIndex
    if (!['OV', 'w_in', 'w_out'].includes(vectorType)) {
      throw invalid(`Vector type must be in ['OV', 'w_in', 'w_out'], instead got ${String(vectorType)}`)
    }
    if (head == null && vectorType === 'OV') throw invalid(`Head index optional only for w_in and w_out, got ${vectorType}`)
    if (!Number.isInteger(layerIndex) || layerIndex < 0 || layerIndex >= this.cfg.n_layers) {
      throw invalid(`Layer index must be between 0 and ${this.cfg.n_layers - 1} but got ${layerIndex}`)
    }
    if (!Number.isInteger(n) || n < 1) throw invalid(`numVectors must be a positive integer, got ${n}`)

    const temps: Tensor[] = []
    const keep = (t: Tensor) => (temps.push(t), t)
    const optional = (key: string): Tensor | null => {
      const t = param(this.model, key)
      return t === null ? null : keep(t)
    }
    const weight = (key: string): Tensor => {
      const t = optional(key)
      if (t === null) throw new TransformerLensError('TL_MISSING_WEIGHT', `weight '${key}' is not in the model's state dict`)
      return t
    }
    try {
      // V: [d_model, k], right singular vectors as columns.
      let V: Tensor
      if (vectorType === 'OV') {
        if (!Number.isInteger(head) || head! < 0 || head! >= this.cfg.n_heads) {
          throw invalid(`Head index must be between 0 and ${this.cfg.n_heads - 1} but got ${head}`)
        }
        const wv = keep(weight(`blocks.${layerIndex}.attn.W_V`).get(head!))
        const wo = keep(weight(`blocks.${layerIndex}.attn.W_O`).get(head!))
        const ov = new FactoredMatrix(wv, wo)
        V = keep(ov.Vh.clone())
        ov.dispose()
      } else {
        let matrix: Tensor
        if (vectorType === 'w_in') {
          matrix = keep(weight(`blocks.${layerIndex}.mlp.W_in`).T)
          const ln2 = optional(`blocks.${layerIndex}.ln2.w`)
          if (ln2) matrix = keep(matrix.mul(ln2)) // LayerNorm not folded: scale its input dims
        } else {
          matrix = weight(`blocks.${layerIndex}.mlp.W_out`)
        }
        const { U, S, V: v } = matrix.svd()
        U.dispose()
        S.dispose()
        V = keep(v)
      }
      const k = V.size(-1) as number
      if (n > k) throw invalid(`numVectors ${n} is more than the ${k} singular vectors of this ${vectorType} matrix`)
      // Rows i < n of Vᵀ, each read out through W_U: [n, d_vocab] → [d_vocab, 1, n].
      const rows = keep(keep(V.T).get([0, n]))
      const top = keep(rows.float())
      const logits = keep(top.matmul(weight(OUTPUT_EMBEDDING)))
      return keep(logits.T).unsqueeze(1)
    } finally {
      for (const t of temps) t.dispose()
    }
  }
}
