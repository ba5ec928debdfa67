/** Where `HookedTransformer.setTokenizer` (TL's `set_tokenizer`) gets its tokenizer from. */
import { native, nativeAsync, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { EnsureModelOptions, ensureTokenizer } from './loading'
import { TokenizerView, tokenizerOwner } from './tokenizer'

/**
 * A folder holding tokenizer.json (tokenizer_config.json / special_tokens_map.json beside it are
 * read when present), the path of a tokenizer.json file, a model name or hub id (HF cache, else
 * downloaded: tokenizer files only), or another model's `tokenizer` to share.
 */
export type TokenizerSource = string | TokenizerView

export interface SetTokenizerOptions extends EnsureModelOptions {
  /** The side `toTokens` pads batches on (default 'right'). TL: `default_padding_side`. */
  defaultPaddingSide?: 'left' | 'right'
}

/** The native tokenizer `source` names, loaded (or downloaded) or taken from another model. */
export async function nativeTokenizer(source: TokenizerSource, options: SetTokenizerOptions): Promise<binding.NativeTokenizer> {
  if (source instanceof TokenizerView) {
    const owner = tokenizerOwner(source)
    if (owner === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'this TokenizerView does not belong to a model')
    return native(() => owner.tokenizerHandle())
  }
  if (typeof source !== 'string' || source === '') {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', "setTokenizer takes a tokenizer folder or file, a model name or hub id, or another model's tokenizer")
  }
  const where = await ensureTokenizer(source, options)
  return nativeAsync(() => binding.loadTokenizer(where))
}
