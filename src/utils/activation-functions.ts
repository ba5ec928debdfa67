/**
 * TL's activation functions (`utils.gelu_new`, `gelu_fast`, `solu`, and torch's `relu`, `gelu`,
 * `silu`, `gelu(approximate="tanh")`) as Tensor → Tensor functions, and TL's table of them by
 * config name (`SUPPORTED_ACTIVATIONS`, keyed like `cfg.act_fn`).
 */
import { native } from '../errors'
import { Tensor, wrapT } from '../tensor'
import { withScope } from './scope'

export type ActivationFunction = (input: Tensor) => Tensor

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI)

/** `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`: GPT-2's GELU (TL's `gelu_new`). */
export function geluNew(input: Tensor): Tensor {
  return withScope((s) => {
    const cube = s.keep(s.keep(input.mul(input)).mul(input))
    const inner = s.keep(s.keep(s.keep(cube.mul(0.044715)).add(input)).mul(SQRT_2_OVER_PI))
    const t = s.keep(s.keep(inner.tanh()).add(1))
    return s.keep(input.mul(0.5)).mul(t)
  })
}

/** `0.5 x (1 + tanh(0.7978845608 x (1 + 0.044715 x²)))` (TL's `gelu_fast`). */
export function geluFast(input: Tensor): Tensor {
  return withScope((s) => {
    const sq = s.keep(input.mul(input))
    const poly = s.keep(s.keep(sq.mul(0.044715)).add(1))
    const inner = s.keep(s.keep(input.mul(0.7978845608)).mul(poly))
    const t = s.keep(s.keep(inner.tanh()).add(1))
    return s.keep(input.mul(0.5)).mul(t)
  })
}

/** torch's `F.gelu(x, approximate="tanh")` (TL's `gelu_pytorch_tanh`): the same formula as gelu_new. */
export function geluPytorchTanh(input: Tensor): Tensor {
  return geluNew(input)
}

/** `x * softmax(x, -1)` (TL's `solu`; the LayerNorm of solu_ln lives in the MLP). */
export function solu(input: Tensor): Tensor {
  const sm = input.softmax(-1)
  try {
    return input.mul(sm)
  } finally {
    sm.dispose()
  }
}

/** `max(x, 0)` (torch's `F.relu`). */
export function relu(input: Tensor): Tensor {
  return input.relu()
}

/** `x Φ(x)` with the exact normal CDF (torch's `F.gelu`, erf form). */
export function gelu(input: Tensor): Tensor {
  // erf cannot be composed from the Tensor ops; the engine's elementwise op is called by name.
  return wrapT(native(() => input.native.unary('geluErf')))
}

/** `x * sigmoid(x)` (torch's `F.silu`). */
export function silu(input: Tensor): Tensor {
  const sg = input.sigmoid()
  try {
    return input.mul(sg)
  } finally {
    sg.dispose()
  }
}

/** TL's `SUPPORTED_ACTIVATIONS` / `ACTIVATION_FN_DICT`: config `act_fn` name → function. */
export const SUPPORTED_ACTIVATIONS: Readonly<Record<string, ActivationFunction>> = Object.freeze({
  solu,
  solu_ln: solu,
  gelu_new: geluNew,
  gelu_fast: geluFast,
  silu,
  relu,
  gelu,
  gelu_pytorch_tanh: geluPytorchTanh,
})
