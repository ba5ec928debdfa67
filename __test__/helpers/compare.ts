import * as fs from 'node:fs'
import * as path from 'node:path'

import type { ExecutionContext } from 'ava'

import { Tensor } from '../../src/index'
import type { Golden } from './safetensors'

const OUT = path.join(__dirname, '..', '.out')

/** Max |a - b| over all elements; infinities and NaNs must match exactly. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue
    if (!Number.isFinite(x) || !Number.isFinite(y)) return Infinity
    const d = Math.abs(x - y)
    if (d > m || Number.isNaN(d)) m = Number.isNaN(d) ? Infinity : d
  }
  return m
}

/**
 * Asserts `actual` matches the TL golden within `tol` (max-abs). On a mismatch the actual
 * values are written to `__test__/.out/{label}.json` for a person to look at.
 */
export function assertClose(t: ExecutionContext, actual: Tensor, golden: Golden | undefined, tol: number, label: string): void {
  if (!golden) {
    t.fail(`no golden for ${label}`)
    return
  }
  const shape = golden.shape.length === 1 && golden.shape[0] === 1 && actual.ndim === 0 ? [] : golden.shape
  t.deepEqual(actual.shape, shape, `${label}: shape`)
  const a = Array.from(actual.toArray() as ArrayLike<number | bigint>, Number)
  const g = Array.from(golden.data as ArrayLike<number | bigint>, Number)
  const d = a.length === g.length ? maxAbsDiff(a, g) : Infinity
  if (!(d <= tol)) {
    fs.mkdirSync(OUT, { recursive: true })
    const file = path.join(OUT, `${label.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`)
    fs.writeFileSync(file, JSON.stringify({ label, shape: actual.shape, maxAbsDiff: d, actual: a, golden: g }))
    t.fail(`${label}: max abs diff ${d} > ${tol} (actual written to ${file})`)
  } else {
    t.pass()
  }
}

/** A tensor computed here as the reference of another comparison (read to host memory). */
export function goldenOf(t: Tensor): Golden {
  const data = t.to('float32').toArray() as Float32Array
  return { dtype: 'F32', shape: t.shape, data }
}
