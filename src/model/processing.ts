/**
 * TL's weight processing on a loaded model: `process_weights_`, `load_and_process_state_dict`
 * and the single steps (`fold_layer_norm`, `center_writing_weights`, `center_unembed`,
 * `fold_value_biases`, `refactor_factored_attn_matrices`). The numbers are computed in Rust
 * (crates/engine/src/process/steps.rs); this module checks arguments and picks TL's defaults.
 */
import { TransformerLensError } from '../errors'
import type * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { boolArg } from '../utils/args'
import { LoadOptions, opt } from './options'

/** A TL state dict: TL keys (`blocks.0.attn.W_Q`, ...) → tensors in TL's layouts. */
export type StateDictInput = Map<string, Tensor> | Record<string, Tensor>

export interface ProcessWeightsOptions {
  /** Fold the norms' weights (and LayerNorm's biases) into the matrices that read them (default true). TL: `fold_ln`. */
  foldLn?: boolean
  /** Make the weights writing to the residual stream mean-zero (LayerNorm models only; default true). TL: `center_writing_weights`. */
  centerWritingWeights?: boolean
  /** Make W_U's rows and b_U mean-zero (default true). TL: `center_unembed`. */
  centerUnembed?: boolean
  /** Re-factor each head's QK and OV circuits through their SVDs (default false). TL: `refactor_factored_attn_matrices`. */
  refactorFactoredAttnMatrices?: boolean
}

export interface LoadAndProcessOptions extends ProcessWeightsOptions {
  /** Fold the value biases into the output bias (default true). TL: `fold_value_biases`. */
  foldValueBiases?: boolean
}

export interface FoldLayerNormOptions {
  /** Fold the norms' biases (default true; false for RMSNorm). TL: `fold_biases`. */
  foldBiases?: boolean
  /** Make the reading weights mean-zero over d_model (default true; false for RMSNorm). TL: `center_weights`. */
  centerWeights?: boolean
}

/** `fromPretrained`'s options: loading, TL's processing switches, and TL's `refactor_factored_attn_matrices` (default false). */
export type PretrainedOptions = LoadOptions & { refactorFactoredAttnMatrices?: boolean }

export type StepName = 'fold_layer_norm' | 'center_writing_weights' | 'center_unembed' | 'fold_value_biases' | 'refactor_factored_attn_matrices'

/** What the model does with a request (`NativeModel.processWeights`, then refreshing itself). */
export interface ProcessingHost {
  apply(names: string[], tensors: binding.NativeTensor[], args: binding.ProcessArgs): binding.NamedTensor[]
}

/** A state dict as parallel name and tensor lists, every value checked to be a Tensor. */
function entries(sd: unknown): [string[], binding.NativeTensor[]] {
  let pairs: [unknown, unknown][]
  if (sd instanceof Map) pairs = [...sd.entries()]
  else if (sd !== null && typeof sd === 'object' && !Array.isArray(sd) && !(sd instanceof Tensor)) pairs = Object.entries(sd)
  else throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a state dict must be a Map or a plain object of TL key → Tensor')
  const names: string[] = []
  const tensors: binding.NativeTensor[] = []
  for (const [k, v] of pairs) {
    if (typeof k !== 'string') throw new TransformerLensError('TL_INVALID_ARGUMENT', `a state dict key must be a string, got ${typeof k}`)
    if (!(v instanceof Tensor)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `state dict entry '${k}' is not a Tensor`)
    names.push(k)
    tensors.push(v.native)
  }
  return [names, tensors]
}

const NONE: binding.ProcessArgs = {
  step: 'model',
  foldLn: false,
  centerWritingWeights: false,
  centerUnembed: false,
  foldValueBiases: false,
  refactorFactoredAttnMatrices: false,
  foldBiases: false,
  centerWeights: false,
}

function flags(o: LoadAndProcessOptions, foldValueBiases: boolean): binding.ProcessArgs {
  const flag = (name: string, fallback: boolean) => boolArg(name, opt(o, name, fallback))
  return {
    ...NONE,
    foldLn: flag('foldLn', true),
    centerWritingWeights: flag('centerWritingWeights', true),
    centerUnembed: flag('centerUnembed', true),
    foldValueBiases,
    refactorFactoredAttnMatrices: flag('refactorFactoredAttnMatrices', false),
  }
}

/**
 * TL's `process_weights_`: processes the model's own weights in place (value biases are always
 * folded, as TL's). Folding turns `normalization_type` LN / RMS into LNPre / RMSPre. On weights
 * already folded it is `TL_MISSING_WEIGHT` naming the norm weight (TL's KeyError).
 */
export function processWeights(host: ProcessingHost, o: ProcessWeightsOptions = {}): void {
  host.apply([], [], flags(o, true))
}

/**
 * TL's `load_and_process_state_dict`: loads a TL-layout state dict (keys it lacks keep the
 * model's weights, as TL's `fill_missing_keys`; buffers and unknown keys are ignored) and
 * processes it with TL's switches and skips.
 */
export function loadAndProcessStateDict(host: ProcessingHost, stateDict: StateDictInput, o: LoadAndProcessOptions = {}): void {
  const [names, tensors] = entries(stateDict)
  const args = flags(o, boolArg('foldValueBiases', opt(o, 'foldValueBiases', true)))
  host.apply(names, tensors, args)
}

/**
 * One of TL's processing methods. With a state dict: TL's method on it, returned as a new Map
 * (the model is unchanged). Without: the step applied to the model in place, as
 * `load_and_process_state_dict` applies it (with its skips; folding follows the model's norm).
 */
export function step(host: ProcessingHost, name: StepName, stateDict: StateDictInput | undefined, o: FoldLayerNormOptions = {}): Map<string, Tensor> | undefined {
  if (stateDict === undefined || stateDict === null) {
    if (Object.keys(o ?? {}).length > 0) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `${name} on the model folds as processWeights does; pass a state dict to choose foldBiases / centerWeights`)
    }
    host.apply([], [], {
      ...NONE,
      foldLn: name === 'fold_layer_norm',
      centerWritingWeights: name === 'center_writing_weights',
      centerUnembed: name === 'center_unembed',
      foldValueBiases: name === 'fold_value_biases',
      refactorFactoredAttnMatrices: name === 'refactor_factored_attn_matrices',
    })
    return undefined
  }
  const [names, tensors] = entries(stateDict)
  const args = {
    ...NONE,
    step: name,
    foldBiases: boolArg('foldBiases', opt(o, 'foldBiases', true)),
    centerWeights: boolArg('centerWeights', opt(o, 'centerWeights', true)),
  }
  return new Map(host.apply(names, tensors, args).map((e) => [e.name, wrapT(e.tensor)]))
}
