import type { TokenizerView } from '../model/tokenizer'
import type { Tensor } from '../tensor'

/**
 * TL's `utils.get_attention_mask(tokenizer, tokens, prepend_bos)`: 1 for real tokens, 0 for
 * the leading pads (left padding) or trailing pads (right padding) of each row. With left
 * padding, `prependBos` and BOS == pad, the last leading pad is the BOS and stays 1.
 */
export function getAttentionMask(tokenizer: TokenizerView, tokens: Tensor, prependBos: boolean): Tensor {
  return tokenizer.attentionMask(tokens, prependBos)
}
