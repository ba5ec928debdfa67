import { native, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { opt } from '../model/options'
import { seedArg } from './random'

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
 * The native sampling arguments from TL-style options (camelCase or snake_case): temperature,
 * top-k, top-p, frequency penalty and a seed (checked: a non-negative integer).
 */
export function sampleArgs(o: object, doSample: boolean): binding.SampleArgs {
  const seed = seedArg(opt<unknown>(o, 'seed', undefined))
  return {
    doSample,
    temperature: opt(o, 'temperature', 1.0),
    topK: opt<number | undefined>(o, 'topK', undefined) ?? undefined,
    topP: opt<number | undefined>(o, 'topP', undefined) ?? undefined,
    freqPenalty: opt(o, 'freqPenalty', 0.0),
    seed,
  }
}

/**
 * TL's `utils.sample_logits`: `finalLogits [batch, d_vocab]` → `[batch]` int64 token ids, after
 * temperature, frequency penalty and top-k (or else top-p) filtering, as TL orders them.
 */
export function sampleLogits(finalLogits: Tensor, options: SampleLogitsOptions = {}): Tensor {
  const args = sampleArgs(options, true)
  const tokens = opt<Tensor | undefined>(options, 'tokens', undefined)
  if (args.freqPenalty > 0 && !tokens) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Must provide input_tokens (tokens) if applying a frequency penalty')
  return wrapT(native(() => binding.sampleLogitsNative(finalLogits.native, tokens?.native, args)))
}
