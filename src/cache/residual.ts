/**
 * The residual stream, from an ActivationCache: accumulated (logit lens), decomposed into
 * components, projected on token directions. TL's `ActivationCache.accumulated_resid`,
 * `decompose_resid`, `logit_attrs` and `get_full_resid_decomposition`, with TL's semantics
 * (quirks noted where they are kept).
 */
import { TransformerLensError } from '../errors'
import { accumulatedBias, tokensTensor, tokensToResidualDirections, TokensArg } from '../model/weights'
import { opt } from '../model/options'
import { Tensor } from '../tensor'
import { withScope } from '../utils/scope'
import { Slice } from '../utils/slice'
import type { ActivationCache } from './activation-cache'
import { applyLnToStack, maybeApplyLn } from './apply-ln'
import { labelled, resolveLayer, SliceArg, stackParts, WithLabels } from './common'
import { stackHeadResults, stackNeuronResults } from './components'

export interface AccumulatedResidOptions {
  /** Stack the streams up to the input of this layer; null / -1 / n_layers = all, incl. the final one. */
  layer?: number | null
  /** Also each earlier layer's `resid_mid`. TL: `incl_mid`. */
  inclMid?: boolean
  /** Scale by the cached LayerNorm of `layer` (ln_final for n_layers). TL: `apply_ln`. */
  applyLn?: boolean
  /** Positions to keep (TL's Slice rules). TL: `pos_slice`. */
  posSlice?: SliceArg
  /** Include `resid_mid` of `layer` itself (the MLP input). TL: `mlp_input`. */
  mlpInput?: boolean
  /** Return `[stack, labels]`. TL: `return_labels`. */
  returnLabels?: boolean
}

export interface DecomposeResidOptions {
  layer?: number | null
  mlpInput?: boolean
  /** 'all' (default), 'mlp' or 'attn': which layer outputs to include. */
  mode?: 'all' | 'mlp' | 'attn'
  applyLn?: boolean
  posSlice?: SliceArg
  /** Include `embed` and `pos_embed` (default true). TL: `incl_embeds`. */
  inclEmbeds?: boolean
  returnLabels?: boolean
}

export interface LogitAttrsOptions {
  /** Attribute the logit difference `tokens - incorrectTokens` (same shape). TL: `incorrect_tokens`. */
  incorrectTokens?: TokensArg | null
  posSlice?: SliceArg
  batchSlice?: SliceArg
  hasBatchDim?: boolean
}

export interface FullResidOptions {
  layer?: number | null
  mlpInput?: boolean
  /** One component per MLP neuron (default) rather than one per MLP layer. TL: `expand_neurons`. */
  expandNeurons?: boolean
  applyLn?: boolean
  posSlice?: SliceArg
  returnLabels?: boolean
}

/** Stacks `parts` (cached tensors) after slicing their position dim (-2). */
function stackPositions(parts: Tensor[], pos: Slice, what: string): Tensor {
  return withScope((s) => stackParts(s.keepAll(parts.map((c) => pos.apply(c, -2))), 0, what))
}

export function accumulatedResid<O extends AccumulatedResidOptions>(cache: ActivationCache, o?: O): WithLabels<O> {
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  const nLayers = cache.model.cfg.n_layers
  const layer = resolveLayer(opt<number | null>(o, 'layer', null), nLayers)
  const inclMid = opt(o, 'inclMid', false)
  const mlpInput = opt(o, 'mlpInput', false)
  const labels: string[] = []
  const parts: Tensor[] = []
  for (let l = 0; l < layer + 1; l++) {
    if (l === nLayers) {
      parts.push(cache.get('resid_post', nLayers - 1))
      labels.push('final_post')
      continue
    }
    parts.push(cache.get('resid_pre', l))
    labels.push(`${l}_pre`)
    if ((inclMid && l < layer) || (mlpInput && l === layer)) {
      parts.push(cache.get('resid_mid', l))
      labels.push(`${l}_mid`)
    }
  }
  const stack = stackPositions(parts, pos, 'accumulatedResid')
  // As TL, every stream in the stack is scaled by the one LayerNorm scale of `layer`'s input.
  const out = maybeApplyLn(cache, stack, opt(o, 'applyLn', false), { layer, posSlice: pos, mlpInput })
  return labelled<O>(out, labels, opt(o, 'returnLabels', false))
}

export function decomposeResid<O extends DecomposeResidOptions>(cache: ActivationCache, o?: O): WithLabels<O> {
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  const cfg = cache.model.cfg
  const layer = resolveLayer(opt<number | null>(o, 'layer', null), cfg.n_layers)
  const mode = opt<string>(o, 'mode', 'all')
  // TL does not check: any other mode behaves as 'all'. Here it is an error.
  if (!['all', 'mlp', 'attn'].includes(mode)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `mode must be 'all', 'mlp' or 'attn', not '${mode}'`)
  const mlpInput = opt(o, 'mlpInput', false)
  const inclAttn = mode !== 'mlp'
  const inclMlp = mode !== 'attn' && !cfg.attn_only
  const parts: Tensor[] = []
  const labels: string[] = []
  if (opt(o, 'inclEmbeds', true)) {
    if (cache.hasEmbed) {
      parts.push(cache.get('hook_embed'))
      labels.push('embed')
    }
    if (cache.hasPosEmbed) {
      parts.push(cache.get('hook_pos_embed'))
      labels.push('pos_embed')
    }
  }
  for (let l = 0; l < layer; l++) {
    if (inclAttn) {
      parts.push(cache.get('attn_out', l))
      labels.push(`${l}_attn_out`)
    }
    if (inclMlp) {
      parts.push(cache.get('mlp_out', l))
      labels.push(`${l}_mlp_out`)
    }
  }
  if (mlpInput && inclAttn) {
    parts.push(cache.get('attn_out', layer))
    labels.push(`${layer}_attn_out`)
  }
  const stack = stackPositions(parts, pos, 'decomposeResid')
  const out = maybeApplyLn(cache, stack, opt(o, 'applyLn', false), { layer, posSlice: pos, mlpInput })
  return labelled<O>(out, labels, opt(o, 'returnLabels', false))
}

export function logitAttrs(cache: ActivationCache, residualStack: Tensor, tokens: TokensArg, o?: LogitAttrsOptions): Tensor {
  const model = cache.model
  const incorrect = opt<TokensArg | null>(o, 'incorrectTokens', null)
  return withScope((s) => {
    let directions = s.keep(tokensToResidualDirections(model, tokens))
    if (incorrect !== null) {
      const a = s.keep(tokensTensor(model, tokens))
      const b = s.keep(tokensTensor(model, incorrect))
      if (a.shape.join() !== b.shape.join()) {
        throw new TransformerLensError('TL_SHAPE_MISMATCH', `tokens and incorrect_tokens must have the same shape! (tokens.shape=[${a.shape}], incorrect_tokens.shape=[${b.shape}])`)
      }
      directions = s.keep(directions.sub(s.keep(tokensToResidualDirections(model, incorrect))))
    }
    const scaled = s.keep(
      applyLnToStack(cache, residualStack, {
        layer: -1,
        posSlice: opt<SliceArg>(o, 'posSlice', null),
        batchSlice: opt<SliceArg>(o, 'batchSlice', null),
        hasBatchDim: opt(o, 'hasBatchDim', true),
      }),
    )
    return s.keep(scaled.mul(directions)).sum(-1)
  })
}

export function getFullResidDecomposition<O extends FullResidOptions>(cache: ActivationCache, o?: O): WithLabels<O> {
  const cfg = cache.model.cfg
  const layer = resolveLayer(opt<number | null>(o, 'layer', null), cfg.n_layers)
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  const mlpInput = opt(o, 'mlpInput', false)
  const expandNeurons = opt(o, 'expandNeurons', true)
  const stack = withScope((s) => {
    const [headStack, headLabels] = stackHeadResults(cache, { layer: layer + (mlpInput ? 1 : 0), posSlice: pos, returnLabels: true })
    s.keep(headStack)
    const labels = [...headLabels]
    const parts: Tensor[] = [headStack]
    if (!cfg.attn_only && layer > 0) {
      const [mlpStack, mlpLabels] = expandNeurons
        ? stackNeuronResults(cache, layer, { posSlice: pos, returnLabels: true })
        : decomposeResid(cache, { layer, mlpInput, posSlice: pos, inclEmbeds: false, mode: 'mlp', returnLabels: true })
      parts.push(s.keep(mlpStack))
      labels.push(...mlpLabels)
    }
    if (cache.hasEmbed) {
      labels.push('embed')
      parts.push(s.keep(s.keep(pos.apply(cache.get('embed'), -2)).unsqueeze(0)))
    }
    if (cache.hasPosEmbed) {
      labels.push('pos_embed')
      parts.push(s.keep(s.keep(pos.apply(cache.get('pos_embed'), -2)).unsqueeze(0)))
    }
    // Without expanded neurons the MLP biases are already inside the MLP outputs.
    const bias = s.keep(accumulatedBias(cache.model, layer, { mlpInput, includeMlpBiases: expandNeurons }))
    parts.push(s.keep(s.keep(Tensor.zeros([1, ...headStack.shape.slice(1)], bias.dtype)).add(bias)))
    labels.push('bias')
    return { t: Tensor.cat(parts, 0), labels }
  })
  const out = maybeApplyLn(cache, stack.t, opt(o, 'applyLn', false), { layer, posSlice: pos, mlpInput })
  return labelled<O>(out, stack.labels, opt(o, 'returnLabels', false))
}
