/**
 * The 16-bit checks the dtype tests share (dtype.test.ts explains the bounds): logits held to
 * TL's own 16-bit error, and TL's dtype for every cached activation and weight.
 */
import type { ExecutionContext } from 'ava'

import type { ActivationCache, Tensor } from '../../src/index'
import { maxAbsDiff } from './compare'

export type Half = 'bfloat16' | 'float16'
/** Mantissa bits: the unit roundoff of a value of size `s` is `s · 2^-bits`. */
export const BITS: Record<Half, number> = { bfloat16: 8, float16: 11 }
/** Ceiling on max |ours − TL float32| / max |value| (about 16 roundings' worth). */
export const CEILING: Record<Half, number> = { bfloat16: 2 ** -4, float16: 2 ** -7 }

export const floats = (t: Tensor) => Array.from(t.to('float32').toArray() as Float32Array)
export const absMax = (xs: number[]) => xs.reduce((a, x) => Math.max(a, Math.abs(x)), 0)

/**
 * Our distance to TL's float32 values at most twice TL's 16-bit distance to them plus one ulp
 * of their scale, the same bound against TL's 16-bit values, and under the dtype's ceiling.
 */
export function withinTlHalfError(t: ExecutionContext, dtype: Half, ours: number[], tl16: number[], tl32: number[], what: string): void {
  const scale = absMax(tl32)
  const ulp = scale * 2 ** -BITS[dtype]
  const [errTl, errOurs, vsTl16] = [maxAbsDiff(tl16, tl32), maxAbsDiff(ours, tl32), maxAbsDiff(ours, tl16)]
  const info = `${what}: scale ${scale.toFixed(3)}, |ours−TL32| ${errOurs.toFixed(4)}, |TL16−TL32| ${errTl.toFixed(4)}, |ours−TL16| ${vsTl16.toFixed(4)}`
  t.true(errTl > 0, `TL's ${dtype} run differs from float32 (${info})`)
  t.true(errOurs <= 2 * errTl + ulp, info)
  t.true(vsTl16 <= 2 * errTl + ulp, info)
  t.true(errOurs <= CEILING[dtype] * scale, info)
}

/**
 * The cache's hooks in TL's order with TL's dtypes, and every weight TL lists with its dtype
 * (masks are uint8 here, with no bool tensors; TL's IGNORE is its own constant). Disposes the
 * state dict's tensors.
 */
export function tlDtypes(t: ExecutionContext, cache: ActivationCache, stateDict: Map<string, Tensor>, hookDtypes: Record<string, string>, sdDtypes: Record<string, string>): void {
  t.deepEqual([...cache.keys()], Object.keys(hookDtypes), 'hook names in TL order')
  const wrong = Object.entries(hookDtypes).filter(([k, d]) => cache.get(k).dtype !== d)
  t.deepEqual(wrong.map(([k, d]) => `${k}: ${cache.get(k).dtype} (TL ${d})`), [])
  for (const [k, w] of stateDict) {
    if (k in sdDtypes && sdDtypes[k] !== 'bool' && !k.endsWith('IGNORE')) t.is(w.dtype as string, sdDtypes[k], k)
    w.dispose()
  }
}
