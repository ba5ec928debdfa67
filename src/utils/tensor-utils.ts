/** TL's small tensor helpers: `utils.get_corner`, `utils.remove_batch_dim`. */
import { FactoredMatrix } from '../factored-matrix'
import { Tensor } from '../tensor'

/**
 * The top-left `n × n × ...` corner: `tensor[:n, :n, ...]` over every dim (TL's `get_corner`).
 * For a FactoredMatrix, that corner of its product (`AB`), computed from the corner factors only.
 */
export function getCorner(tensor: Tensor | FactoredMatrix, n = 3): Tensor {
  const idx = tensor.shape.map((): [number | null, number | null] => [null, n])
  if (tensor instanceof FactoredMatrix) {
    const corner = tensor.get(...idx)
    try {
      return corner.AB
    } finally {
      corner.dispose()
    }
  }
  return tensor.get(...idx)
}

/** Drops the first dim if it has size 1, else the tensor unchanged (as a new handle). TL's `remove_batch_dim`. */
export function removeBatchDim(tensor: Tensor): Tensor {
  return tensor.shape[0] === 1 ? tensor.squeeze(0) : tensor.get()
}
