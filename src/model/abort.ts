import * as binding from '../native/binding'

/** Runs native work with an AbortSignal wired to a native abort flag (checked between blocks and steps). */
export async function withAbort<T>(signal: AbortSignal | undefined, fn: (abort: binding.NativeAbort | undefined) => Promise<T>): Promise<T> {
  if (!signal) return fn(undefined)
  const abort = new binding.NativeAbort()
  if (signal.aborted) abort.abort()
  const onAbort = () => abort.abort()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await fn(abort)
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
