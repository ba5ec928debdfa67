/**
 * Replaying the cases of golden/analysis/*.json (scripts/reference/make_analysis_fixtures.py):
 * arguments are written as the TS API takes them, with TL's snake_case option names.
 */
import { Tensor } from '../../src/index'
import { golden, GoldenSet } from './fixtures'

export const ANALYSIS = 'analysis'

export interface Case {
  name: string
  kwargs: Record<string, unknown>
  labels?: string[]
  shape: number[]
  [k: string]: unknown
}

export function analysis(stem: 'cache' | 'weights' | 'utils'): GoldenSet {
  return golden(ANALYSIS, stem)
}

/**
 * A golden input tensor as a Tensor, with the shape TL had (0-d tensors are stored as [1] and
 * bools as float32; `converted` in the JSON records the original dtype and shape).
 */
export function input(g: GoldenSet, key: string): Tensor {
  const t = g.tensors.get(key)
  if (!t) throw new Error(`no golden input '${key}'`)
  const orig: string | undefined = g.json.converted?.[key]
  const m = orig ? /\[(.*)\]$/.exec(orig) : null
  const shape = m ? (m[1] === '' ? [] : m[1].split(',').map((x) => Number(x.trim()))) : t.shape
  return Tensor.from(t.data, shape)
}

/** snake_case keys → camelCase (the API takes both; the cases are written in snake_case). */
export function camel(kwargs: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(kwargs).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), v]))
}

/** `{ tensor: key }` arguments replaced by the golden input tensors. */
export function resolveTensors(g: GoldenSet, kwargs: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(kwargs).map(([k, v]) => [k, v !== null && typeof v === 'object' && 'tensor' in (v as object) ? input(g, (v as { tensor: string }).tensor) : v]),
  )
}

/** Splits a `[tensor, labels]` result (returnLabels) from a plain tensor. */
export function split(out: Tensor | [Tensor, string[]]): [Tensor, string[] | undefined] {
  return Array.isArray(out) ? [out[0], out[1]] : [out, undefined]
}
