/** TL's `utils.get_corner` and `utils.composition_scores`. */
import { TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { IndexEntry, Tensor } from '../tensor'

/**
 * The top-left corner, `n` long in every dim: `t[:n, :n, ..., :n]` for a Tensor, and that
 * corner of the product (`AB`) for a FactoredMatrix.
 */
export function getCorner(x: Tensor | FactoredMatrix, n = 3): Tensor {
  const idx = new Array<IndexEntry>(x.ndim).fill([0, n])
  if (x instanceof FactoredMatrix) {
    const corner = x.get(...idx)
    const out = corner.AB
    corner.dispose()
    return out
  }
  return x.get(...idx)
}

/**
 * Composition score of `left` (writing, e.g. an OV circuit) into `right` (reading, e.g. a QK or
 * OV circuit): `‖Lᶜ Rᶜ‖_F / (‖Lᶜ‖_F ‖Rᶜ‖_F)` with `Lᶜ = left.collapseL()`, `Rᶜ = right.collapseR()`
 * (Elhage et al. 2021). Needs `left.rdim == right.ldim`.
 *
 * With `broadcastDims` (default) the leading dims of both are crossed: the result is
 * `[...left leading, ...right leading]`; without it they broadcast against each other.
 */
export function compositionScores(left: FactoredMatrix, right: FactoredMatrix, options: { broadcastDims?: boolean } = {}): Tensor {
  const temps: FactoredMatrix[] = []
  let l = left
  let r = right
  if (options.broadcastDims ?? true) {
    const lLead = left.ndim - 2
    const rLead = right.ndim - 2
    for (let i = 0; i < lLead; i++) temps.push((r = r.unsqueeze(i)))
    for (let i = 0; i < rLead; i++) temps.push((l = l.unsqueeze(i + lLead)))
  }
  try {
    if (l.rdim !== r.ldim) {
      throw new TransformerLensError(
        'TL_SHAPE_MISMATCH',
        `Composition scores require left.rdim==right.ldim, shapes were left: [${left.shape}], right: [${right.shape}]`,
      )
    }
    const newRight = r.collapseR()
    const newLeft = l.collapseL()
    const rNorms = newRight.norm({ dim: [-2, -1] })
    const lNorms = newLeft.norm({ dim: [-2, -1] })
    const comp = newLeft.matmul(newRight)
    const compNorms = comp.norm({ dim: [-2, -1] })
    const q = compNorms.div(rNorms)
    const out = q.div(lNorms)
    for (const t of [newRight, newLeft, rNorms, lNorms, comp, compNorms, q]) t.dispose()
    return out
  } finally {
    for (const t of temps) t.dispose()
  }
}
