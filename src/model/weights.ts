/**
 * TL's weight properties of `HookedTransformer` (`W_Q`, ..., `W_U`, `accumulated_bias`,
 * `tokens_to_residual_directions`), as functions over a model. Layer weights are stacked over
 * layers, as TL does: `W_Q(model)` is `[n_layers, n_heads, d_model, d_head]`.
 *
 * Every tensor is read through `param()`, the one accessor. Each returned Tensor is new and owned
 * by the caller (disposing it never affects the model).
 */
import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'
import type { HookedTransformer } from './hooked-transformer'
import { opt } from './options'

// ---- the accessor ----

/** The state dict read once per model, freed by `releaseWeights` (called from `dispose()`). */
const stateDicts = new WeakMap<object, Map<string, Tensor>>()

/**
 * THE accessor: one tensor of the model's TL state dict by key (`blocks.0.attn.W_Q`), as a new
 * handle the caller owns (it shares storage with the model, no copy), or null if the model has
 * no such weight. Today it reads `model.stateDict()` once and keeps the map; a per-key native
 * getter can replace the body without touching anything else here.
 * @internal
 */
export function param(model: HookedTransformer, key: string): Tensor | null {
  let sd = stateDicts.get(model)
  if (sd === undefined) {
    sd = model.stateDict()
    stateDicts.set(model, sd)
  }
  const t = sd.get(key)
  return t === undefined ? null : t.get()
}

/**
 * Frees the state-dict map `param()` keeps for this model. `HookedTransformer.dispose()` calls
 * it; anything that replaces a model's weights in place must call it too.
 * @internal
 */
export function releaseWeights(model: HookedTransformer): void {
  const sd = stateDicts.get(model)
  if (sd === undefined) return
  for (const t of sd.values()) t.dispose()
  stateDicts.delete(model)
}

function required(model: HookedTransformer, key: string): Tensor {
  const t = param(model, key)
  if (t === null) throw new TransformerLensError('TL_MISSING_WEIGHT', `this model has no weight '${key}'`)
  return t
}

/** One layer's weight, e.g. `layerParam(model, 0, 'attn.W_K')`; grouped-query K/V are expanded as TL. @internal */
export function layerParam(model: HookedTransformer, layer: number, name: string): Tensor {
  const nLayers = model.cfg.n_layers
  const l = layer < 0 ? layer + nLayers : layer
  if (!Number.isInteger(l) || l < 0 || l >= nLayers) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `layer ${layer} is out of range for a model with ${nLayers} layers`)
  }
  const key = `blocks.${l}.${name}`
  const t = param(model, key)
  if (t !== null) return t
  // TL's GroupedQueryAttention keeps `_W_K` / `_b_K` ... with n_key_value_heads heads and
  // exposes W_K as `repeat_interleave(_W_K, n_heads / n_key_value_heads, dim=0)`.
  const m = /^attn\.([Wb]_[KV])$/.exec(name)
  const grouped = m ? param(model, `blocks.${l}.attn._${m[1]}`) : null
  if (grouped === null) throw new TransformerLensError('TL_MISSING_WEIGHT', `this model has no weight '${key}'`)
  const kv = grouped.shape[0]
  const repeats = model.cfg.n_heads / kv
  const idx = Tensor.from(BigInt64Array.from({ length: kv * repeats }, (_, i) => BigInt(Math.floor(i / repeats))))
  const out = grouped.indexSelect(0, idx)
  idx.dispose()
  grouped.dispose()
  return out
}

/** `torch.stack([block.<name> for block in blocks])`. */
function stackLayers(model: HookedTransformer, name: string): Tensor {
  const parts: Tensor[] = []
  try {
    for (let l = 0; l < model.cfg.n_layers; l++) parts.push(layerParam(model, l, name))
    return Tensor.stack(parts, 0)
  } finally {
    for (const p of parts) p.dispose()
  }
}

// ---- the properties ----

/** `[d_model, d_vocab]` */
export const W_U = (m: HookedTransformer): Tensor => required(m, 'unembed.W_U')
/** `[d_vocab]` */
export const b_U = (m: HookedTransformer): Tensor => required(m, 'unembed.b_U')
/** `[d_vocab, d_model]` */
export const W_E = (m: HookedTransformer): Tensor => required(m, 'embed.W_E')
/** `[n_ctx, d_model]`; only models with absolute positional embeddings have it. */
export const W_pos = (m: HookedTransformer): Tensor => required(m, 'pos_embed.W_pos')

/** `[d_vocab + n_ctx, d_model]`: W_E and W_pos concatenated, as TL. */
export function W_E_pos(m: HookedTransformer): Tensor {
  const e = W_E(m)
  const p = W_pos(m)
  try {
    return Tensor.cat([e, p], 0)
  } finally {
    e.dispose()
    p.dispose()
  }
}

/** `[n_layers, n_heads, d_model, d_head]` */
export const W_Q = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.W_Q')
/** `[n_layers, n_heads, d_model, d_head]` */
export const W_K = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.W_K')
/** `[n_layers, n_heads, d_model, d_head]` */
export const W_V = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.W_V')
/** `[n_layers, n_heads, d_head, d_model]` */
export const W_O = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.W_O')
/** `[n_layers, n_heads, d_head]` */
export const b_Q = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.b_Q')
/** `[n_layers, n_heads, d_head]` */
export const b_K = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.b_K')
/** `[n_layers, n_heads, d_head]` */
export const b_V = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.b_V')
/** `[n_layers, d_model]` */
export const b_O = (m: HookedTransformer): Tensor => stackLayers(m, 'attn.b_O')
/** `[n_layers, d_model, d_mlp]` */
export const W_in = (m: HookedTransformer): Tensor => stackLayers(m, 'mlp.W_in')
/** `[n_layers, d_mlp, d_model]` */
export const W_out = (m: HookedTransformer): Tensor => stackLayers(m, 'mlp.W_out')
/** `[n_layers, d_mlp]` */
export const b_in = (m: HookedTransformer): Tensor => stackLayers(m, 'mlp.b_in')
/** `[n_layers, d_model]` */
export const b_out = (m: HookedTransformer): Tensor => stackLayers(m, 'mlp.b_out')

/** `[n_layers, d_model, d_mlp]` for gated MLPs, else null (as TL's None). */
export function W_gate(m: HookedTransformer): Tensor | null {
  return m.cfg.gated_mlp ? stackLayers(m, 'mlp.W_gate') : null
}

/** `['L0H0', 'L0H1', ...]` for every head. */
export function allHeadLabels(m: HookedTransformer): string[] {
  const out: string[] = []
  for (let l = 0; l < m.cfg.n_layers; l++) for (let h = 0; h < m.cfg.n_heads; h++) out.push(`L${l}H${h}`)
  return out
}

export interface AccumulatedBiasOptions {
  /** Also add the attention output bias of `layer` itself (the input to its MLP). TL: `mlp_input`. */
  mlpInput?: boolean
  /** Add the MLP output biases (default true). TL: `include_mlp_biases`. */
  includeMlpBiases?: boolean
}

/**
 * TL's `accumulated_bias`: the sum of `b_O` (and `b_out`) of layers `0..layer-1`, plus `b_O` of
 * `layer` with `mlpInput`. `[d_model]`.
 */
export function accumulatedBias(m: HookedTransformer, layer: number, options: AccumulatedBiasOptions = {}): Tensor {
  const mlpInput = opt(options, 'mlpInput', false)
  const includeMlp = opt(options, 'includeMlpBiases', true)
  const nLayers = m.cfg.n_layers
  let acc = Tensor.zeros([m.cfg.d_model])
  const add = (name: string, l: number) => {
    const b = layerParam(m, l, name)
    const next = acc.add(b)
    b.dispose()
    acc.dispose()
    acc = next
  }
  // As TL, in float32 and in this order: b_O then b_out for each layer.
  for (let i = 0; i < layer; i++) {
    add('attn.b_O', i)
    if (includeMlp) add('mlp.b_out', i)
  }
  if (mlpInput) {
    if (layer >= nLayers) {
      acc.dispose()
      throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Cannot include attn_bias from beyond the final layer')
    }
    add('attn.b_O', layer)
  }
  return acc
}

/** Tokens as TL's methods take them: a string of one token, an id, or a Tensor (or array) of ids. */
export type TokensArg = string | number | Tensor | readonly number[]

/** TL's `to_single_token`: the id of a string that is exactly one token (no BOS). */
export function toSingleToken(m: HookedTransformer, s: string): number {
  const t = m.toTokens(s, { prependBos: false })
  try {
    if (t.numel() !== 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `Input string: ${s} is not a single token!`)
    return t.item()
  } finally {
    t.dispose()
  }
}

/** @internal A tokens argument as a Tensor of ids (strings and numbers become 0-d). */
export function tokensTensor(m: HookedTransformer, tokens: TokensArg): Tensor {
  if (tokens instanceof Tensor) return tokens.get()
  if (typeof tokens === 'string') return Tensor.full([], toSingleToken(m, tokens), 'int64')
  if (typeof tokens === 'number') return Tensor.full([], tokens, 'int64')
  if (Array.isArray(tokens)) return Tensor.from(BigInt64Array.from(tokens, (v) => BigInt(v)), [tokens.length])
  throw new TransformerLensError('TL_INVALID_ARGUMENT', 'tokens must be a string, a token id, an array of ids or a Tensor')
}

/**
 * TL's `tokens_to_residual_directions`: the unembedding vector of each token. One token (a
 * string, an id, a one-element Tensor of any shape) gives `[d_model]`; a Tensor of more gives
 * `[...tokens.shape, d_model]`.
 */
export function tokensToResidualDirections(m: HookedTransformer, tokens: TokensArg): Tensor {
  const wu = W_U(m)
  const ids = tokensTensor(m, tokens)
  try {
    if (ids.numel() === 1) {
      // TL: W_U[:, token.item()], whatever the tensor's shape.
      return wu.get(null, ids.item())
    }
    const cols = wu.indexSelect(1, ids) // [d_model, ...tokens.shape]
    try {
      const r = cols.ndim
      return cols.permute([...Array.from({ length: r - 1 }, (_, i) => i + 1), 0])
    } finally {
      cols.dispose()
    }
  } finally {
    ids.dispose()
    wu.dispose()
  }
}
