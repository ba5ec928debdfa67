/**
 * TL's `ActivationCache.apply_ln_to_stack`: residual-stream components treated as the input to
 * one LayerNorm, scaled by the scale cached for it in the run.
 */
import { opt } from '../model/options'
import { Tensor } from '../tensor'
import { withScope } from '../utils/scope'
import { Slice } from '../utils/slice'
import type { ActivationCache } from './activation-cache'
import { resolveLayer, SliceArg } from './common'

export interface ApplyLnOptions {
  /** The layer whose input the stack is: [0, n_layers], null / -1 = n_layers (ln_final). */
  layer?: number | null
  /** Use ln2 (the MLP input) rather than ln1. TL: `mlp_input`. */
  mlpInput?: boolean
  /** The positions the stack already holds; applied to the scale only. TL: `pos_slice`. */
  posSlice?: SliceArg
  /** Batch items to take, from the stack (dim 1) and from the scale. TL: `batch_slice`. */
  batchSlice?: SliceArg
  /** Whether the stack has a batch dim (default true). TL: `has_batch_dim`. */
  hasBatchDim?: boolean
}

const LN_TYPES = ['LN', 'LNPre', 'RMS', 'RMSPre']

/**
 * Centers the stack (LayerNorm models) and divides it by the cached scale of the LayerNorm
 * before `layer` (ln1, ln2 with `mlpInput`, ln_final for n_layers). Models without LN/RMS
 * get the stack back unchanged (as a new handle).
 */
export function applyLnToStack(cache: ActivationCache, residualStack: Tensor, o?: ApplyLnOptions): Tensor {
  const cfg = cache.model.cfg
  const norm = cfg.normalization_type
  if (norm === null || !LN_TYPES.includes(norm)) return residualStack.get()
  const pos = Slice.from(opt<SliceArg>(o, 'posSlice', null))
  const batch = Slice.from(opt<SliceArg>(o, 'batchSlice', null))
  const layer = resolveLayer(opt<number | null>(o, 'layer', null), cfg.n_layers)
  const mlpInput = opt(o, 'mlpInput', false)
  return withScope((s) => {
    let stack = residualStack
    if (opt(o, 'hasBatchDim', true)) stack = s.keep(batch.apply(stack, 1))
    if (norm === 'LN' || norm === 'LNPre') stack = s.keep(stack.sub(s.keep(stack.mean(-1, { keepdim: true }))))
    const name = layer === cfg.n_layers ? 'ln_final.hook_scale' : `blocks.${layer}.ln${mlpInput ? 2 : 1}.hook_scale`
    // The scale is [batch, pos, 1] (or [pos, 1]); the stack is assumed already pos-sliced.
    let scale = s.keep(pos.apply(cache.get(name), -2))
    if (cache.hasBatchDim) scale = s.keep(batch.apply(scale, 0))
    return stack.div(scale)
  })
}

/** `applyLnToStack` when `applyLn`, disposing the unscaled stack; else the stack itself. @internal */
export function maybeApplyLn(cache: ActivationCache, stack: Tensor, applyLn: boolean, o: ApplyLnOptions): Tensor {
  if (!applyLn) return stack
  try {
    return applyLnToStack(cache, stack, o)
  } finally {
    stack.dispose()
  }
}
