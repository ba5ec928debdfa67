/** TL's `utils.composition_scores` (its `get_corner` is in ./tensor-utils). */
import { TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { Tensor } from '../tensor'

/**
 * Composition score of `left` (writing, e.g. an OV circuit) into `right` (reading, e.g. a QK or
 * OV circuit): `‖Lᶜ Rᶜ‖_F / (‖Lᶜ‖_F ‖Rᶜ‖_F)` with `Lᶜ = left.collapseL()`, `Rᶜ = right.collapseR()`
 * (Elhage et al. 2021). Needs `left.rdim == right.ldim`.
 *
 * With `broadcastDims` (default) the leading dims of both are crossed: the result is
 * `[...left leading, ...right leading]`; without it they broadcast against each other.
 */
export function compositionScores(left: FactoredMatrix, right: FactoredMatrix, options: { broadcastDims?: boolean } = {}): Tensor {
  if (left.rdim !== right.ldim) {
    throw new TransformerLensError(
      'TL_SHAPE_MISMATCH',
      `Composition scores require left.rdim==right.ldim, shapes were left: [${left.shape}], right: [${right.shape}]`,
    )
  }
  const crossed = options.broadcastDims ?? true
  const owned: Tensor[] = []
  const own = (t: Tensor) => (owned.push(t), t)
  try {
    const newLeft = own(left.collapseL()) // [...Lb, kL, d]
    const newRight = own(right.collapseR()) // [...Rb, d, kR]
    const lNorms = own(newLeft.norm({ dim: [-2, -1] }))
    const rNorms = own(newRight.norm({ dim: [-2, -1] }))
    let compNorms: Tensor
    if (crossed) {
      // Every left matrix times every right one as ONE product [nL·kL, d] @ [d, nR·kR], instead
      // of TL's unsqueeze-and-broadcast, which materialises both sides at [...Lb, ...Rb, k, d].
      const lb = left.shape.slice(0, -2)
      const rb = right.shape.slice(0, -2)
      const [kL, d] = newLeft.shape.slice(-2)
      const kR = newRight.size(-1) as number
      const nL = lb.reduce((a, b) => a * b, 1)
      const nR = rb.reduce((a, b) => a * b, 1)
      const l2 = own(newLeft.reshape(nL * kL, d))
      const r3 = own(own(newRight.reshape(nR, d, kR)).permute(1, 0, 2))
      const prod = own(l2.matmul(own(r3.reshape(d, nR * kR))))
      const norms = own(own(prod.reshape(nL, kL, nR, kR)).norm({ dim: [1, 3] }))
      compNorms = own(norms.reshape([...lb, ...rb]))
      const lShaped = own(lNorms.reshape([...lb, ...rb.map(() => 1)]))
      const rShaped = own(rNorms.reshape([...lb.map(() => 1), ...rb]))
      return own(compNorms.div(rShaped)).div(lShaped)
    }
    compNorms = own(own(newLeft.matmul(newRight)).norm({ dim: [-2, -1] }))
    return own(compNorms.div(rNorms)).div(lNorms)
  } finally {
    for (const t of owned) t.dispose()
  }
}
