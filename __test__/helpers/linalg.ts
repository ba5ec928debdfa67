/**
 * Comparisons for decompositions, whose goldens are unique only up to sign (singular vectors)
 * or order (eigenvalues). Plain JS over the copied-out values, independent of the library's ops.
 */
import type { ExecutionContext } from 'ava'

import { Tensor } from '../../src/index'
import { assertClose } from './compare'
import type { Golden } from './safetensors'
import type { GoldenSet } from './fixtures'

/** A golden as a library Tensor (for inputs). */
export function input(set: GoldenSet, key: string): Tensor {
  const g = set.tensors.get(key)
  if (!g) throw new Error(`no fixture tensor ${key}`)
  return Tensor.from(g.data as Float32Array, g.shape)
}

function values(x: Tensor | Golden): Float64Array {
  const d = x instanceof Tensor ? x.toArray() : x.data
  return Float64Array.from(d as ArrayLike<number>)
}

/** `x` with the sign of every column (`along: 'cols'`) or row (`'rows'`) of each trailing matrix flipped where that best matches `ref`. */
function alignSigns(x: Float64Array, ref: Float64Array, shape: number[], along: 'cols' | 'rows'): Float64Array {
  const [r, c] = shape.slice(-2)
  const out = Float64Array.from(x)
  for (let base = 0; base < x.length; base += r * c) {
    const lines = along === 'cols' ? c : r
    const len = along === 'cols' ? r : c
    for (let l = 0; l < lines; l++) {
      const at = (i: number) => base + (along === 'cols' ? i * c + l : l * c + i)
      let dot = 0
      for (let i = 0; i < len; i++) dot += x[at(i)] * ref[at(i)]
      if (dot < 0) for (let i = 0; i < len; i++) out[at(i)] = -x[at(i)]
    }
  }
  return out
}

/**
 * Asserts `actual` matches the golden up to the sign of each column (or row) of its trailing
 * matrices, within `tol` max-abs. `shape` overrides the matrix view (e.g. `[d_vocab, n]`).
 */
export function assertCloseUpToSign(
  t: ExecutionContext,
  actual: Tensor,
  golden: Golden | undefined,
  tol: number,
  label: string,
  along: 'cols' | 'rows' = 'cols',
  shape?: number[],
): void {
  if (!golden) return void t.fail(`no golden for ${label}`)
  t.deepEqual(actual.shape, golden.shape, `${label}: shape`)
  const a = values(actual)
  const g = values(golden)
  const aligned = alignSigns(a, g, shape ?? golden.shape, along)
  let d = 0
  for (let i = 0; i < g.length; i++) d = Math.max(d, Math.abs(aligned[i] - g[i]))
  if (!(d <= tol) || a.length !== g.length) t.fail(`${label}: max abs diff up to sign ${d} > ${tol}`)
  else t.pass()
}

/**
 * Asserts that the eigenvalues `{real, imag}` match the golden ones (`[..., n]`, any order) as
 * multisets: each golden value is paired with the nearest unused actual one, within
 * `tol · max(1, |λ|)`.
 */
export function assertEigenvalues(t: ExecutionContext, actual: { real: Tensor; imag: Tensor }, re: Golden | undefined, im: Golden | undefined, tol: number, label: string): void {
  if (!re || !im) return void t.fail(`no golden for ${label}`)
  t.deepEqual(actual.real.shape, re.shape, `${label}: shape`)
  t.deepEqual(actual.imag.shape, im.shape, `${label}: shape`)
  const [ar, ai, gr, gi] = [values(actual.real), values(actual.imag), values(re), values(im)]
  const n = re.shape[re.shape.length - 1]
  let worst = 0
  for (let base = 0; base < gr.length; base += n) {
    const used = new Set<number>()
    for (let i = base; i < base + n; i++) {
      let best = -1
      let bestD = Infinity
      for (let j = base; j < base + n; j++) {
        if (used.has(j)) continue
        const dd = Math.hypot(ar[j] - gr[i], ai[j] - gi[i])
        if (dd < bestD) [best, bestD] = [j, dd]
      }
      used.add(best)
      worst = Math.max(worst, bestD / Math.max(1, Math.hypot(gr[i], gi[i])))
    }
  }
  if (!(worst <= tol)) t.fail(`${label}: eigenvalues differ by ${worst} (relative) > ${tol}`)
  else t.pass()
}

/** `U · diag(S) · Vᵀ` must give `ab` (the golden product) within `tol`. */
export function assertReconstructs(t: ExecutionContext, U: Tensor, S: Tensor, V: Tensor, ab: Golden | undefined, tol: number, label: string): void {
  const us = U.mul(S.unsqueeze(-2))
  const rec = us.matmul(V.T)
  assertClose(t, rec, ab, tol, `${label}: U diag(S) Vᵀ`)
  us.dispose()
  rec.dispose()
}
