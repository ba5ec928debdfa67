/**
 * Per-head and per-neuron contributions to the residual stream, from an ActivationCache: TL's
 * `ActivationCache.compute_head_results`, `stack_head_results`, `stack_activation`,
 * `get_neuron_results` and `stack_neuron_results`, with TL's semantics.
 */
import { TransformerLensError } from '../errors'
import { opt } from '../model/options'
import { layerParam } from '../model/weights'
import { Tensor } from '../tensor'
import { withScope } from '../utils/scope'
import { Slice } from '../utils/slice'
import type { ActivationCache } from './activation-cache'
import { maybeApplyLn } from './apply-ln'
import { labelled, moveDimToFront, resolveLayer, SliceArg, stackParts, WithLabels } from './common'

export interface StackHeadResultsOptions {
  /** Heads of layers `0..layer-1`; null / -1 = all layers (default). */
  layer?: number | null
  /** Return `[stack, ['L0H0', ...]]`. TL: `return_labels`. */
  returnLabels?: boolean
  /** Add a last component: `resid_post` of layer-1 minus the sum of the others. TL: `incl_remainder`. */
  inclRemainder?: boolean
  posSlice?: SliceArg
  applyLn?: boolean
}

export interface StackActivationOptions {
  /** Layers `0..layer-1`; null / -1 = all (default). */
  layer?: number | null
  /** Passed to getActName (normally inferred). TL: `sublayer_type`. */
  sublayerType?: string | null
}

export interface NeuronResultsOptions {
  /** Neurons to keep (TL's Slice rules). TL: `neuron_slice`. */
  neuronSlice?: SliceArg
  posSlice?: SliceArg
}

export interface StackNeuronResultsOptions extends NeuronResultsOptions {
  returnLabels?: boolean
  inclRemainder?: boolean
  applyLn?: boolean
}

const RESULT0 = 'blocks.0.attn.hook_result'

/**
 * Adds `blocks.{l}.attn.hook_result` (`[..., head, d_model]`: z times W_O per head, without b_O)
 * for every layer. As TL, does nothing (with a warning) when layer 0's results are cached.
 */
export function computeHeadResults(cache: ActivationCache): void {
  if (cache.has(RESULT0)) {
    console.warn('Tried to compute head results when they were already cached')
    return
  }
  for (let l = 0; l < cache.model.cfg.n_layers; l++) {
    const result = withScope((s) => {
      const z = cache.get('z', l, 'attn') // [..., head, d_head]
      const wO = s.keep(layerParam(cache.model, l, 'attn.W_O')) // [head, d_head, d_model]
      const lead = z.shape.slice(0, -2)
      const [nHeads, dHead] = z.shape.slice(-2)
      const n = lead.reduce((a, b) => a * b, 1)
      // TL: (z[..., None] * W_O).sum(-2); here one batched matmul per head: [head, N, d_head] @ W_O.
      const perHead = s.keep(s.keep(z.reshape([n, nHeads, dHead])).permute(1, 0, 2))
      const out = s.keep(perHead.matmul(wO)) // [head, N, d_model]
      return s.keep(out.permute(1, 0, 2)).reshape([...lead, nHeads, wO.shape[2]])
    })
    cache._store(`blocks.${l}.attn.hook_result`, result)
  }
}

/** `[stack, labels]`: `[layer * n_heads, ...batch_and_pos, d_model]`, labels `L{l}H{h}`. */
export function stackHeadResults<O extends StackHeadResultsOptions>(cache: ActivationCache, o?: O): WithLabels<O> {
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  const cfg = cache.model.cfg
  const layer = resolveLayer(opt<number | null>(o, 'layer', -1), cfg.n_layers)
  // TL prints a note and computes them; this computes them quietly.
  if (!cache.has(RESULT0)) computeHeadResults(cache)
  const labels: string[] = []
  const stack = withScope((s) => {
    const parts: Tensor[] = []
    for (let l = 0; l < layer; l++) {
      parts.push(s.keep(pos.apply(cache.get('result', l, 'attn'), -3))) // [..., head, d_model]
      for (let h = 0; h < cfg.n_heads; h++) labels.push(`L${l}H${h}`)
    }
    return stackWithRemainder(cache, parts, layer, pos, opt(o, 'inclRemainder', false), labels)
  })
  const out = maybeApplyLn(cache, stack, opt(o, 'applyLn', false), { layer, posSlice: pos })
  return labelled<O>(out, labels, opt(o, 'returnLabels', false))
}

/**
 * The shared tail of the head and neuron stacks: `parts` (each `[..., k, d_model]`) joined along
 * the component dim and moved to the front, with the remainder term if asked for, or an empty
 * `[0, ...]` stack shaped like the (pos-sliced) embedding when there is nothing to stack.
 */
function stackWithRemainder(cache: ActivationCache, parts: Tensor[], layer: number, pos: Slice, inclRemainder: boolean, labels: string[]): Tensor {
  return withScope((s) => {
    // TL takes resid_post of `layer - 1`: with layer 0 that is -1, i.e. the *last* layer's
    // resid_post (the cache counts negative layers from the end). Kept as TL does.
    const residPost = () => s.keep(pos.apply(cache.get('resid_post', layer - 1), -2))
    if (parts.length > 0) {
      const joined = s.keep(Tensor.cat(parts, -2))
      const components = moveDimToFront(joined, -2)
      if (!inclRemainder) return components
      s.keep(components)
      const remainder = s.keep(residPost().sub(s.keep(components.sum(0))))
      labels.push('remainder')
      return Tensor.cat([components, s.keep(remainder.unsqueeze(0))], 0)
    }
    if (inclRemainder) {
      labels.push('remainder')
      return residPost().unsqueeze(0)
    }
    const shape = s.keep(pos.apply(cache.get('hook_embed'), -2)).shape
    return Tensor.zeros([0, ...shape])
  })
}

/** `[layers_covered, ...]`: `activationName` of each layer `0..layer-1`, stacked. */
export function stackActivation(cache: ActivationCache, activationName: string, o?: StackActivationOptions): Tensor {
  const layer = resolveLayer(opt<number | null>(o, 'layer', -1), cache.model.cfg.n_layers)
  const sublayerType = opt<string | null>(o, 'sublayerType', null)
  const parts: Tensor[] = []
  for (let l = 0; l < layer; l++) parts.push(cache.get(activationName, l, sublayerType))
  return stackParts(parts, 0, 'stackActivation')
}

/**
 * `[...batch_and_pos, n_neurons, d_model]`: each neuron's activation times its row of W_out
 * (without b_out). Not cached (cheap to compute, large to keep).
 */
export function getNeuronResults(cache: ActivationCache, layer: number, o?: NeuronResultsOptions): Tensor {
  const neuron = Slice.from(opt<SliceArg>(o, 'neuronSlice', null))
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  return withScope((s) => {
    const post = cache.get('post', layer, 'mlp')
    const wOut = s.keep(layerParam(cache.model, layer, 'mlp.W_out')) // [d_mlp, d_model]
    // Position first: an int slice may remove a dim, and positions are at -2 only before that.
    const acts = s.keep(neuron.apply(s.keep(pos.apply(post, -2)), -1))
    const w = s.keep(neuron.apply(wOut, 0))
    return s.keep(acts.unsqueeze(-1)).mul(w)
  })
}

/** `[stack, labels]`: every neuron's result in layers `0..layer-1`, labels `L{l}N{n}`. */
export function stackNeuronResults<O extends StackNeuronResultsOptions>(cache: ActivationCache, layer: number | null, o?: O): WithLabels<O> {
  const cfg = cache.model.cfg
  const l0 = resolveLayer(layer, cfg.n_layers)
  let neuron = Slice.from(opt<SliceArg>(o, 'neuronSlice', null))
  // TL iterates over `neuron_slice.apply(arange(d_mlp))` for labels, which raises for an int
  // slice (a 0-d tensor), and an int would remove the neuron dim the stack joins along. Here an
  // int means that one neuron, kept as a dim (TL's `Slice.unwrap` rule).
  if (neuron.mode === 'int') neuron = Slice.unwrap(neuron.slice as number)
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  const dMlp = requireDMlp(cache)
  const neuronIds = neuron.indices(dMlp)
  const labels: string[] = []
  const stack = withScope((s) => {
    const parts: Tensor[] = []
    for (let l = 0; l < l0; l++) {
      parts.push(s.keep(getNeuronResults(cache, l, { posSlice: pos, neuronSlice: neuron })))
      for (const n of neuronIds) labels.push(`L${l}N${n}`)
    }
    return stackWithRemainder(cache, parts, l0, pos, opt(o, 'inclRemainder', false), labels)
  })
  const out = maybeApplyLn(cache, stack, opt(o, 'applyLn', false), { layer: l0, posSlice: pos })
  return labelled<O>(out, labels, opt(o, 'returnLabels', false))
}

/** The model's d_mlp, or a clear error for a model without MLPs. */
function requireDMlp(cache: ActivationCache): number {
  const d = cache.model.cfg.d_mlp
  if (typeof d !== 'number') throw new TransformerLensError('TL_UNSUPPORTED', 'this model has no MLP (d_mlp is not set)')
  return d
}
