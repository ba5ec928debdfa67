import { native, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { opt } from '../model/options'
import { seedArg } from './random'
import { boolArg, invalidArg, numberArg, optIntArg, U32_MAX } from './args'

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
  const topP = opt<unknown>(o, 'topP', undefined)
  return {
    doSample: boolArg('doSample', doSample),
    // Ranges (temperature >= 0, top_p in (0, 1]) are TL's and checked natively.
    temperature: numberArg('temperature', opt<unknown>(o, 'temperature', 1.0)),
    topK: optIntArg('topK', opt<unknown>(o, 'topK', undefined), { min: 1, max: U32_MAX }),
    topP: topP === undefined || topP === null ? undefined : numberArg('topP', topP),
    freqPenalty: numberArg('freqPenalty', opt<unknown>(o, 'freqPenalty', 0.0), { finite: true }),
    seed,
  }
}

/**
 * TL's `utils.sample_logits`: `finalLogits [batch, d_vocab]` → `[batch]` int64 token ids, after
 * temperature, frequency penalty and top-k (or else top-p) filtering, as TL orders them.
 */
export function sampleLogits(finalLogits: Tensor, options: SampleLogitsOptions = {}): Tensor {
  if (!(finalLogits instanceof Tensor)) throw invalidArg('finalLogits', 'a Tensor', finalLogits)
  const args = sampleArgs(options ?? {}, true)
  const tokens = opt<Tensor | undefined>(options, 'tokens', undefined) ?? undefined
  if (tokens !== undefined && !(tokens instanceof Tensor)) throw invalidArg('tokens', 'a Tensor', tokens)
  if (args.freqPenalty > 0 && !tokens) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Must provide input_tokens (tokens) if applying a frequency penalty')
  return wrapT(native(() => binding.sampleLogitsNative(finalLogits.native, tokens?.native, args)))
}
