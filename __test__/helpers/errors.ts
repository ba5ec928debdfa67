import { TransformerLensError } from '../../src/index'

/** The code of the TransformerLensError `fn` throws, or 'no error'; other errors propagate. */
export function codeOf(fn: () => unknown): string {
  try {
    fn()
  } catch (e) {
    if (e instanceof TransformerLensError) return e.code
    throw e
  }
  return 'no error'
}

/** The code of the TransformerLensError `p` rejects with, or 'no error'; other errors propagate. */
export async function rejectionCode(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'no error',
    (e) => {
      if (e instanceof TransformerLensError) return e.code
      throw e
    },
  )
}
