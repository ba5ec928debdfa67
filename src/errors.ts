/** Stable error codes. Tests and callers match on `code`, never on message text. */
export type ErrorCode =
  /** Not a TL model name or alias, or the repo / revision does not exist on the hub. */
  | 'TL_UNKNOWN_MODEL'
  /** A file the model needs is not in its folder, the HF cache (offline), or the hub repo. */
  | 'TL_MISSING_FILE'
  | 'TL_MISSING_WEIGHT'
  | 'TL_SHAPE_MISMATCH'
  | 'TL_UNKNOWN_HOOK'
  | 'TL_DTYPE'
  | 'TL_CORRUPT_FILE'
  | 'TL_UNSUPPORTED'
  | 'TL_DISPOSED'
  | 'TL_INVALID_ARGUMENT'
  | 'TL_IO'
  | 'TL_TOKENIZER'
  | 'TL_HOOK'
  | 'TL_ABORTED'
  /** Tensors on different devices met in one op, or a GPU could not be opened. */
  | 'TL_DEVICE'
  /** The hub could not be reached, timed out, or answered unexpectedly (names the URL). */
  | 'TL_NETWORK'
  /** The hub refused access (HTTP 401/403, gated or private repo): set `HF_TOKEN` or the `token` option. */
  | 'TL_AUTH'
  | 'TL_INTERNAL'

export class TransformerLensError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TransformerLensError'
    this.code = code
  }
}

const NATIVE_CODE = /^(TL_[A-Z_]+)\|([\s\S]*)$/

/**
 * napi's status codes for a JS argument it could not convert (the `code` of the Error it
 * throws before the Rust function runs). The public API checks its arguments first
 * (src/utils/args.ts); this is the backstop for any that slip through.
 */
const NAPI_ARG_CODES: ReadonlySet<string> = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
  'DateExpected',
  'ArraybufferExpected',
  'DetachableArraybufferExpected',
])

/**
 * Converts an error thrown by the addon (`CODE|message`) into a TransformerLensError; napi's own
 * argument-conversion errors become `TL_INVALID_ARGUMENT` (with the original as `cause`).
 */
export function fromNative(err: unknown): unknown {
  if (err instanceof TransformerLensError) return err
  if (err instanceof Error) {
    const m = NATIVE_CODE.exec(err.message)
    if (m) return new TransformerLensError(m[1] as ErrorCode, m[2])
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string' && NAPI_ARG_CODES.has(code)) {
      return new TransformerLensError('TL_INVALID_ARGUMENT', `invalid argument: ${err.message}`, { cause: err })
    }
  }
  return err
}

/** Runs a native call, rethrowing its errors as TransformerLensError. */
export function native<T>(fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}

/** Awaits a native promise, rethrowing its errors as TransformerLensError. */
export async function nativeAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p()
  } catch (e) {
    throw fromNative(e)
  }
}
