/** Where `HookedTransformer.setTokenizer` (TL's `set_tokenizer`) gets its tokenizer from. */
import { native, nativeAsync, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { getOfficialModelName } from '../registry/models'
import { isTlNative } from './checkpoints'
import { EnsureModelOptions, ensureTokenizer } from './loading'
import { TokenizerView, tokenizerOwner } from './tokenizer'

/**
 * A folder holding tokenizer.json (tokenizer_config.json / special_tokens_map.json beside it are
 * read when present) or Qwen v1's qwen.tiktoken (with a tokenizer_config.json naming
 * QWenTokenizer), the path of a tokenizer.json or .tiktoken file, a model name or hub id (HF cache, else
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

/** What `tlNativeTokenizer` needs of a freshly loaded model. */
interface Tokenizable {
  readonly tokenizer: TokenizerView | null
  readonly cfg: Record<string, unknown>
  setTokenizer(source: TokenizerSource, options?: SetTokenizerOptions): Promise<void>
}

/**
 * TL's own checkpoints (`NeelNanda/…`) ship no tokenizer: TL loads the one their config names
 * (`tokenizer_name`, e.g. `gpt2` or `NeelNanda/gpt-neox-tokenizer-digits`) from the cache or the
 * hub. Done here the same way (`setTokenizer`); when it cannot be had (offline and not cached)
 * the model keeps no tokenizer (token input still works) and a warning says which to fetch.
 */
export async function tlNativeTokenizer(model: Tokenizable, modelName: string, options: SetTokenizerOptions): Promise<void> {
  const name = model.cfg.tokenizer_name
  let official: string
  try {
    official = getOfficialModelName(modelName)
  } catch {
    return // a local folder: its own files only
  }
  if (model.tokenizer !== null || !isTlNative(official) || typeof name !== 'string' || name === '') return
  try {
    await model.setTokenizer(name, options)
  } catch (e) {
    if (!(e instanceof TransformerLensError) || e.code !== 'TL_MISSING_FILE') throw e
    process.emitWarning(`'${official}' names the tokenizer '${name}', which is not in the HF cache and cannot be downloaded now (${e.message}); the model has no tokenizer until setTokenizer('${name}')`, 'TransformerLensWarning')
  }
}
