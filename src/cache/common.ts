/** Small pieces shared by the ActivationCache's analysis modules. @internal */
import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'
import type { Slice, SliceInput } from '../utils/slice'

/** A `Slice` or anything `new Slice(...)` takes. */
export type SliceArg = Slice | SliceInput

/** `[tensor, labels]` when the options ask for labels (TL's `return_labels=True`), else the tensor. */
export type WithLabels<O> = O extends { returnLabels: true } ? [Tensor, string[]] : O extends { returnLabels: boolean } ? Tensor | [Tensor, string[]] : Tensor

/** TL's `if layer is None or layer == -1: layer = n_layers` (other negatives are left as they are). */
export function resolveLayer(layer: number | null | undefined, nLayers: number): number {
  if (layer === null || layer === undefined || layer === -1) return nLayers
  if (!Number.isInteger(layer)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `layer must be an integer, got ${layer}`)
  return layer
}

/** `torch.stack(parts, dim)`, with a clear error where torch would fail on an empty list. */
export function stackParts(parts: readonly Tensor[], dim: number, what: string): Tensor {
  if (parts.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', `${what}: no components to stack (check the layer argument)`)
  return Tensor.stack(parts, dim)
}

/** `einops.rearrange(t, '... c d -> c ... d')` for `dim = -2`, generally: `dim` moved to the front. */
export function moveDimToFront(t: Tensor, dim: number): Tensor {
  const r = t.ndim
  const d = dim < 0 ? dim + r : dim
  const order = [d, ...Array.from({ length: r }, (_, i) => i).filter((i) => i !== d)]
  return t.permute(order)
}

/** Returns `[t, labels]` or `t`, as TL's `return_labels`. */
export function labelled<O>(t: Tensor, labels: string[], returnLabels: boolean): WithLabels<O> {
  return (returnLabels ? [t, labels] : t) as WithLabels<O>
}
