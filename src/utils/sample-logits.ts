import { native, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { opt } from '../model/options'

export interface SampleLogitsOptions {
  topK?: number
  topP?: number
  /** Default 1; 0 is greedy (argmax). */
  temperature?: number
  freqPenalty?: number
  /** `[batch, pos]` tokens seen so far, for the frequency penalty. */
  tokens?: Tensor
  /** Seeds the draw (same seed, same tokens). */
  seed?: number | bigint
}

/**
 * TL's `utils.sample_logits`: `finalLogits [batch, d_vocab]` → `[batch]` int64 token ids, after
 * temperature, frequency penalty and top-k (or else top-p) filtering, as TL orders them.
 */
export function sampleLogits(finalLogits: Tensor, options: SampleLogitsOptions = {}): Tensor {
  const seed = opt<number | bigint | undefined>(options, 'seed', undefined)
  const freqPenalty = opt(options, 'freqPenalty', 0)
  const tokens = opt<Tensor | undefined>(options, 'tokens', undefined)
  if (freqPenalty > 0 && !tokens) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Must provide input_tokens (tokens) if applying a frequency penalty')
  const args: binding.GenerateArgs = {
    maxNewTokens: 0,
    stopTokens: [],
    eosPad: 0,
    doSample: true,
    temperature: opt(options, 'temperature', 1.0),
    topK: opt<number | undefined>(options, 'topK', undefined) ?? undefined,
    topP: opt<number | undefined>(options, 'topP', undefined) ?? undefined,
    freqPenalty,
    useKvCache: false,
    seed: seed === undefined ? undefined : String(seed),
  }
  return wrapT(native(() => binding.sampleLogitsNative(finalLogits.native, tokens?.native, args)))
}
