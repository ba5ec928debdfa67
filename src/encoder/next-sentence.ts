import type { ActivationCache } from '../cache/activation-cache'
import { TransformerLensError } from '../errors'
import { NamesFilter, namesFilterFn } from '../model/generate'
import { opt } from '../model/options'
import { Tensor } from '../tensor'
import { boolArg, enumArg, invalidArg, stringArrayArg } from '../utils/args'
import { encoderInternals, HookedEncoder } from './hooked-encoder'
import { EncoderForwardOptions, encoderInputs, runCache, runEncoder, runOutput } from './run'

const PREDICTIONS = ['The sentences are sequential', 'The sentences are NOT sequential'] as const

type NspOutput = Tensor | string | null

/**
 * TL's `BertNextSentencePrediction(model)`: next-sentence prediction with a `HookedEncoder`'s
 * pooler and NSP head. Input is one pair of sentences (`[sentenceA, sentenceB]`, token type 1 on
 * the second) or tokens with their `tokenTypeIds`. Hooks are the model's.
 */
export class BertNextSentencePrediction {
  readonly model: HookedEncoder

  constructor(model: HookedEncoder) {
    if (!(model instanceof HookedEncoder)) throw invalidArg('model', 'a HookedEncoder', model)
    this.model = model
  }

  /** TL's `to_tokens([sentenceA, sentenceB])`: `[tokens, tokenTypeIds, attentionMask]` of the pair. */
  toTokens(input: string[], options: { truncate?: boolean; moveToDevice?: boolean } = {}): [Tensor, Tensor, Tensor] {
    if (!Array.isArray(input)) throw invalidArg('input', 'an array of two strings', input)
    return encoderInternals(this.model).toTokens(stringArrayArg('input', input), true, boolArg('truncate', opt(options, 'truncate', true)))
  }

  async #run(input: string[] | Tensor, o: EncoderForwardOptions | undefined, cache: ((n: string) => boolean) | null) {
    const returnType = enumArg('returnType', opt<EncoderForwardOptions['returnType']>(o, 'returnType', 'logits'), ['logits', 'predictions', null])
    if (input instanceof Tensor && opt<unknown>(o, 'tokenTypeIds', null) == null) {
      throw new TransformerLensError(
        'TL_INVALID_ARGUMENT',
        'You are using the NSP task without specifying token_type_ids. This means that the model will treat the input as a single sequence which will lead to incorrect results. Please provide token_type_ids or use a string input.',
      )
    }
    const x = encoderInputs(input, o, (s) => (Array.isArray(s) ? this.toTokens(s as string[]) : null))
    const run = await runEncoder(encoderInternals(this.model), 'nsp', x, o, [], cache)
    const logits = runOutput(run)
    let result: NspOutput = logits
    if (returnType === null) {
      logits.dispose()
      result = null
    } else if (returnType === 'predictions') {
      if (logits.shape[0] !== 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `predictions take one pair of sentences, got a batch of ${logits.shape[0]}`)
      const [isNext, notNext] = Array.from(logits.toArray() as Float32Array)
      // argmax of the log-softmax: the first of equal values, as torch.
      result = PREDICTIONS[notNext > isNext ? 1 : 0]
      logits.dispose()
    }
    return { run, result }
  }

  /**
   * TL's `forward`: `[batch, 2]` logits (is next, is not next), TL's prediction string with
   * `returnType: 'predictions'`, or null.
   */
  async forward(input: string[] | Tensor, options?: EncoderForwardOptions & { returnType?: 'logits' }): Promise<Tensor>
  async forward(input: string[] | Tensor, options: EncoderForwardOptions & { returnType: 'predictions' }): Promise<string>
  async forward(input: string[] | Tensor, options?: EncoderForwardOptions): Promise<NspOutput>
  async forward(input: string[] | Tensor, options?: EncoderForwardOptions): Promise<NspOutput> {
    return (await this.#run(input, options, null)).result
  }

  /** TL's `run_with_cache`: `[output, cache]` with the model's hook names (pooler and NSP head included). */
  async runWithCache(input: string[] | Tensor, options: EncoderForwardOptions & { namesFilter?: NamesFilter; removeBatchDim?: boolean } = {}): Promise<[NspOutput, ActivationCache]> {
    const filter = namesFilterFn(opt<NamesFilter>(options, 'namesFilter', undefined))
    const { run, result } = await this.#run(input, options, filter)
    return [result, runCache(run, encoderInternals(this.model), this.model, boolArg('removeBatchDim', opt(options, 'removeBatchDim', false)))]
  }
}
