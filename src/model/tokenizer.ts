import { native } from '../errors'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { boolArg, invalidArg, stringArg, tokenIdsArg } from '../utils/args'

/** The model each view reads from, so `setTokenizer` can share its tokenizer. */
const owners = new WeakMap<TokenizerView, binding.NativeModel>()

/** @internal The native model whose tokenizer `view` shows. */
export function tokenizerOwner(view: TokenizerView): binding.NativeModel | undefined {
  return owners.get(view)
}

/** Read-only facts about a model's tokenizer (ids and TL's BOS/padding conventions). */
export class TokenizerView {
  readonly bosTokenId: number | null
  readonly eosTokenId: number | null
  readonly padTokenId: number | null
  /** `len(tokenizer.encode("")) > 0`: the tokenizer adds BOS itself. */
  readonly prependsBos: boolean
  paddingSide: 'left' | 'right'
  readonly vocabSize: number
  #n: binding.NativeModel

  /** @internal */
  constructor(n: binding.NativeModel) {
    this.#n = n
    owners.set(this, n)
    const info = JSON.parse(native(() => n.tokenizerInfo()))
    this.bosTokenId = info.bosTokenId
    this.eosTokenId = info.eosTokenId
    this.padTokenId = info.padTokenId
    this.prependsBos = info.prependsBos
    this.paddingSide = info.paddingSideLeft ? 'left' : 'right'
    this.vocabSize = info.vocabSize
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    stringArg('text', text)
    const add = boolArg('addSpecialTokens', options.addSpecialTokens ?? true)
    return native(() => this.#n.encode(text, add))
  }

  /**
   * TL's `utils.get_attention_mask(tokenizer, tokens, prepend_bos)` with this tokenizer's
   * padding side (or `paddingLeft`): 1 for real tokens, 0 for leading (left) or trailing
   * (right) pad tokens; with BOS == pad and `prependBos`, the BOS is kept.
   */
  attentionMask(tokens: Tensor, prependBos: boolean, paddingLeft: boolean = this.paddingSide === 'left'): Tensor {
    if (!(tokens instanceof Tensor)) throw invalidArg('tokens', 'a Tensor', tokens)
    boolArg('prependBos', prependBos)
    boolArg('paddingLeft', paddingLeft)
    return wrapT(native(() => this.#n.attentionMask(tokens.native, prependBos, paddingLeft)))
  }

  /**
   * transformers' `convert_ids_to_tokens`: each id's vocabulary entry as the tokenizer stores it
   * (`Ġthe` for GPT-2's " the"), null for an id outside the vocabulary.
   */
  convertIdsToTokens(ids: readonly number[]): (string | null)[] {
    const list = tokenIdsArg('ids', ids)
    return native(() => this.#n.tokenizerHandle().idsToTokens(list)).map((t) => t ?? null)
  }

  /** transformers' `tokenizer.vocab_size`: the vocabulary without added tokens. */
  get baseVocabSize(): number {
    return native(() => this.#n.tokenizerHandle().baseVocabSize())
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const list = tokenIdsArg('ids', ids)
    const skip = boolArg('skipSpecialTokens', options.skipSpecialTokens ?? false)
    return native(() => this.#n.decode(list, skip))
  }
}
