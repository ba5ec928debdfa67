/**
 * TL's weight properties of `HookedEncoderDecoder`: `W_E`, `W_U`, `b_U`, and the per-layer stacks
 * over the encoder's then the decoder's blocks (self-attention and MLP, as TL's `chain(encoder,
 * decoder)`), `QK` / `OV` from them. Read from TL's state dict; each call returns new tensors.
 */
import { TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { Tensor } from '../tensor'

/** What the properties read: TL's state dict and layer count. */
export interface WeightSource {
  stateDict(): Map<string, Tensor>
  readonly cfg: { n_layers: number }
}

/** The block-level parameters TL stacks (`attn.W_Q`, ..., `mlp.b_out`). */
export type StackedName = 'attn.W_Q' | 'attn.W_K' | 'attn.W_V' | 'attn.W_O' | 'attn.b_Q' | 'attn.b_K' | 'attn.b_V' | 'attn.b_O' | 'mlp.W_in' | 'mlp.W_out' | 'mlp.b_in' | 'mlp.b_out'

function take(sd: Map<string, Tensor>, keys: readonly string[]): Tensor[] {
  const out = keys.map((k) => {
    const t = sd.get(k)
    if (t === undefined) throw new TransformerLensError('TL_MISSING_WEIGHT', `the state dict has no '${k}'`)
    return t
  })
  for (const [k, t] of sd) if (!keys.includes(k)) t.dispose()
  return out
}

/** `[2 * n_layers, ...]`: the encoder's blocks, then the decoder's. */
export function stacked(m: WeightSource, name: StackedName): Tensor {
  const n = m.cfg.n_layers
  const keys = [...Array.from({ length: n }, (_, l) => `encoder.${l}.${name}`), ...Array.from({ length: n }, (_, l) => `decoder.${l}.${name}`)]
  const parts = take(m.stateDict(), keys)
  const out = Tensor.stack(parts, 0)
  parts.forEach((p) => p.dispose())
  return out
}

/** One state-dict entry (`embed.W_E`, `unembed.W_U`, `unembed.b_U`). */
export function single(m: WeightSource, key: string): Tensor {
  return take(m.stateDict(), [key])[0]
}

/** TL's `QK`: `FactoredMatrix(W_Q, W_K^T)`, `[2 * n_layers, n_heads, d_model, d_model]`. */
export function QK(m: WeightSource): FactoredMatrix {
  const k = stacked(m, 'attn.W_K')
  const kt = k.transpose(-2, -1)
  k.dispose()
  return new FactoredMatrix(stacked(m, 'attn.W_Q'), kt)
}

/** TL's `OV`: `FactoredMatrix(W_V, W_O)`. */
export function OV(m: WeightSource): FactoredMatrix {
  return new FactoredMatrix(stacked(m, 'attn.W_V'), stacked(m, 'attn.W_O'))
}
