/** TL's small tensor helpers: `utils.get_corner`, `utils.remove_batch_dim`. */
import { Tensor } from '../tensor'

/** The top-left `n × n × ...` corner: `tensor[:n, :n, ...]` over every dim (TL's `get_corner`). */
export function getCorner(tensor: Tensor, n = 3): Tensor {
  return tensor.get(...tensor.shape.map((): [number | null, number | null] => [null, n]))
}

/** Drops the first dim if it has size 1, else the tensor unchanged (as a new handle). TL's `remove_batch_dim`. */
export function removeBatchDim(tensor: Tensor): Tensor {
  return tensor.shape[0] === 1 ? tensor.squeeze(0) : tensor.get()
}
