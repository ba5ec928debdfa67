/**
 * Options of `HookedEncoderDecoder` (TL's keyword arguments, camelCase or snake_case), and their
 * checks, kept apart from the class.
 */
import { TransformerLensError } from '../errors'
import type { FwdHook } from '../hooks/hook-point'
import type { GenerateOptions, NamesFilter } from '../model/generate'
import { DtypeOptions, opt } from '../model/options'
import type { Device } from '../utils/devices'
import { Tensor } from '../tensor'
import { boolArg, enumArg, intArg, invalidArg, tokenIdArg, tokenIdsArg, U32_MAX } from '../utils/args'
import { sampleArgs } from '../utils/sample-logits'
import type * as binding from '../native/binding'

/** TL's `HookedEncoderDecoder.from_pretrained` options. */
export interface EncoderDecoderPretrainedOptions extends DtypeOptions {
  device?: Device | string
  /** HF cache options, as `HookedTransformer.fromPretrained`. */
  cacheDir?: string
  revision?: string
  localFilesOnly?: boolean
  endpoint?: string
  token?: string
  signal?: AbortSignal
}

/** TL's `forward` keyword arguments. */
export interface EncoderDecoderForwardOptions {
  /**
   * `[batch, decoder_pos]` decoder tokens. Required for token input; for strings TL starts the
   * decoder with the pad token (`[batch, 1]`). TL: `decoder_input`.
   */
  decoderInput?: Tensor
  /** 'logits' (default) or null. TL: `return_type`. */
  returnType?: 'logits' | null
  /**
   * `[batch, pos]` 1 for tokens to attend to, 0 for padding (the encoder's, also read by the
   * cross-attention). From the tokenizer for strings. TL: `one_zero_attention_mask`.
   */
  oneZeroAttentionMask?: Tensor
  signal?: AbortSignal
}

export interface EncoderDecoderRunWithCacheOptions extends EncoderDecoderForwardOptions {
  namesFilter?: NamesFilter
  removeBatchDim?: boolean
}

export interface EncoderDecoderRunWithHooksOptions extends EncoderDecoderForwardOptions {
  fwdHooks?: FwdHook[]
  resetHooksEnd?: boolean
  clearContexts?: boolean
}

/** TL's `HookedEncoderDecoder.generate` keyword arguments (sampling ones as `generate`'s). */
export interface EncoderDecoderGenerateOptions
  extends Pick<GenerateOptions, 'maxNewTokens' | 'stopAtEos' | 'eosTokenId' | 'doSample' | 'topK' | 'topP' | 'temperature' | 'freqPenalty' | 'seed' | 'signal' | 'verbose'> {
  oneZeroAttentionMask?: Tensor
  /** 'input' (default: 'str' for a string, 'tensor' for tokens), 'str' or 'tensor'. */
  returnType?: 'input' | 'str' | 'tensor' | 'tokens'
}

export function maskArg(name: string, v: unknown): Tensor | undefined {
  if (v === undefined || v === null) return undefined
  if (!(v instanceof Tensor)) throw invalidArg(name, 'a Tensor', v)
  return v
}

/** The generation arguments for the native loop, checked before anything runs. */
export function generateArgs(o: EncoderDecoderGenerateOptions, ids: { pad: number; eos: number }): binding.T5GenerateArgs {
  const maxNewTokens = intArg('maxNewTokens', opt<unknown>(o, 'maxNewTokens', 10), { min: 0, max: U32_MAX })
  const stopAtEos = boolArg('stopAtEos', opt(o, 'stopAtEos', true))
  const eos = opt<unknown>(o, 'eosTokenId', undefined)
  let stopTokens: number[] = []
  let eosPad = 0
  if (stopAtEos) {
    if (eos === undefined || eos === null) {
      if (ids.eos < 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'stopAtEos needs an eosTokenId: the tokenizer has no EOS')
      stopTokens = [ids.eos]
      eosPad = ids.eos
    } else if (Array.isArray(eos)) {
      stopTokens = tokenIdsArg('eosTokenId', eos)
      if (stopTokens.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'eosTokenId must not be an empty list')
      eosPad = ids.eos >= 0 ? ids.eos : stopTokens[0]
    } else {
      eosPad = tokenIdArg('eosTokenId', eos)
      stopTokens = [eosPad]
    }
  }
  const sample = sampleArgs(o, boolArg('doSample', opt(o, 'doSample', true)))
  return { maxNewTokens, stopTokens, eosPad, startToken: ids.pad, sample }
}

export function generateReturnType(o: EncoderDecoderGenerateOptions, inputIsString: boolean): 'str' | 'tensor' {
  const rt = enumArg('returnType', opt<string>(o, 'returnType', 'input'), ['input', 'str', 'tensor', 'tokens'])
  if (rt === 'input') return inputIsString ? 'str' : 'tensor'
  return rt === 'str' ? 'str' : 'tensor'
}
