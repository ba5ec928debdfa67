import { invalidArg } from '../utils/args'

export interface TokenFormatterOptions {
  /** Default '…'. */
  ellipsis?: string
  /** Default '\\n' (a backslash and an n). */
  newlineReplacement?: string
  /** The byte-level BPE newline, default 'Ċ'. */
  newlineToken?: string
  /** The byte-level BPE space, default 'Ġ'. */
  whitespaceToken?: string
  /** Default '_'. */
  whitespaceReplacement?: string
  /** Longer tokens are cut and end in the ellipsis (default 7; null: never cut). */
  maxStringLen?: number | null
}

/**
 * tuned-lens's `TokenFormatter`: shortens vocabulary entries for display in a plot (`Ġthe` →
 * `_the`, `Ċ` → `\n`, at most 7 characters with an ellipsis). Lengths count code points, as Python.
 */
export class TokenFormatter {
  readonly ellipsis: string
  readonly newlineReplacement: string
  readonly newlineToken: string
  readonly whitespaceToken: string
  readonly whitespaceReplacement: string
  readonly maxStringLen: number | null

  constructor(options: TokenFormatterOptions = {}) {
    const str = (k: keyof TokenFormatterOptions, d: string): string => {
      const v = options[k] ?? d
      if (typeof v !== 'string') throw invalidArg(k, 'a string', v)
      return v
    }
    this.ellipsis = str('ellipsis', '…')
    this.newlineReplacement = str('newlineReplacement', '\\n')
    this.newlineToken = str('newlineToken', 'Ċ')
    this.whitespaceToken = str('whitespaceToken', 'Ġ')
    this.whitespaceReplacement = str('whitespaceReplacement', '_')
    const max = options.maxStringLen === undefined ? 7 : options.maxStringLen
    if (max !== null && (typeof max !== 'number' || !Number.isInteger(max))) throw invalidArg('maxStringLen', 'an integer or null', max)
    this.maxStringLen = max
  }

  /** One token for display; a missing token (an id outside the vocabulary) is `<unk>`. */
  format(token: string | null | undefined): string {
    if (typeof token !== 'string') return '<unk>'
    let chars = [...token]
    if (this.maxStringLen !== null && chars.length > this.maxStringLen) {
      // Python's token[: max - len(ellipsis)] (a negative end counts from the end).
      const end = this.maxStringLen - [...this.ellipsis].length
      chars = chars.slice(0, end < 0 ? Math.max(0, chars.length + end) : end)
      token = chars.join('') + this.ellipsis
    }
    const replace = (s: string, a: string, b: string) => (a === '' ? s : s.split(a).join(b))
    return replace(replace(token, this.newlineToken, this.newlineReplacement), this.whitespaceToken, this.whitespaceReplacement)
  }

  /** tuned-lens's `pad_token_repr_to_max_len`: cut or space-pad to `maxStringLen`. */
  padTokenReprToMaxLen(tokenRepr: string): string {
    if (this.maxStringLen === null) return tokenRepr
    const chars = [...tokenRepr].slice(0, this.maxStringLen)
    return chars.join('') + ' '.repeat(Math.max(0, this.maxStringLen - [...tokenRepr].length))
  }
}
