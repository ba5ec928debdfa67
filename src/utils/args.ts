/**
 * Argument checks at the public TS boundary. napi converts a JS number to a Rust u32/i32 modulo
 * 2^32 (fractions truncated, NaN → 0) and answers a value of the wrong JS type with its own
 * untagged error, so every number and string the API hands to the addon is checked here first:
 * a bad argument is a `TL_INVALID_ARGUMENT` error that names it and says what it got.
 *
 * The checks are O(length) only over short JS arrays (shapes, dims, token id lists); typed
 * arrays of data are never walked.
 */
import { TransformerLensError } from '../errors'

export const I32_MIN = -(2 ** 31)
export const I32_MAX = 2 ** 31 - 1
export const U32_MAX = 2 ** 32 - 1
/** Tensor dims are read back as u32. */
export const MAX_DIM = U32_MAX
/** The most elements a tensor may have: an exact JS integer, so no native product overflows. */
export const MAX_NUMEL = Number.MAX_SAFE_INTEGER

export interface IntRange {
  /** Inclusive; default -2^31. */
  min?: number
  /** Inclusive; default 2^31 - 1. */
  max?: number
}

/** A short, safe description of what a caller passed, for error messages. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v)
  if (typeof v === 'function') return 'a function'
  if (typeof v === 'symbol') return v.toString()
  if (Array.isArray(v)) return `an array of length ${v.length}`
  const ctor = (v as { constructor?: { name?: string } }).constructor?.name
  return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object'
}

/** The error for argument `name`, which must be `expected` and was `got`. */
export function invalidArg(name: string, expected: string, got: unknown): TransformerLensError {
  return new TransformerLensError('TL_INVALID_ARGUMENT', `${name} must be ${expected}, got ${describe(got)}`)
}

function rangeText(min: number, max: number): string {
  if (min === 0 && max === U32_MAX) return 'a non-negative integer below 2^32'
  if (min === 1 && max === U32_MAX) return 'a positive integer below 2^32'
  if (min === I32_MIN && max === I32_MAX) return 'an integer in [-2^31, 2^31)'
  if (min === -Number.MAX_SAFE_INTEGER && max === Number.MAX_SAFE_INTEGER) return 'a safe integer'
  return `an integer in [${min}, ${max}]`
}

/** An integer number (finite, no fraction) in `[min, max]` (default: the i32 range). */
export function intArg(name: string, value: unknown, range: IntRange = {}): number {
  const min = range.min ?? I32_MIN
  const max = range.max ?? I32_MAX
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalidArg(name, rangeText(min, max), value)
  return value
}

/** `intArg`, with `undefined` / `null` meaning "not given". */
export function optIntArg(name: string, value: unknown, range: IntRange = {}): number | undefined {
  return value === undefined || value === null ? undefined : intArg(name, value, range)
}

/** A JS array of integers, each as `intArg` (at most `maxLength` of them). */
export function intArrayArg(name: string, value: unknown, range: IntRange & { maxLength?: number } = {}): number[] {
  if (!Array.isArray(value)) throw invalidArg(name, 'an array of integers', value)
  if (range.maxLength !== undefined && value.length > range.maxLength) throw invalidArg(name, `at most ${range.maxLength} entries`, value)
  for (let i = 0; i < value.length; i++) intArg(`${name}[${i}]`, value[i], range)
  return [...value]
}

/** A token id: an integer in `[0, 2^32)` (the tokenizer's u32). */
export function tokenIdArg(name: string, value: unknown): number {
  return intArg(name, value, { min: 0, max: U32_MAX })
}

/** A list of token ids, each as `tokenIdArg`. */
export function tokenIdsArg(name: string, value: unknown): number[] {
  return intArrayArg(name, value, { min: 0, max: U32_MAX })
}

/** A dim (or a dim counted from the end): an integer in i32 range; the addon checks the rank. */
export function dimArg(name: string, value: unknown): number {
  return intArg(name, value, { min: I32_MIN, max: I32_MAX })
}

/** One dim or a list of dims (or none, `undefined`: all) as a list. */
export function dimsArg(name: string, value: unknown): number[] {
  if (value === undefined || value === null) return []
  if (typeof value === 'number') return [dimArg(name, value)]
  if (!Array.isArray(value)) throw invalidArg(name, 'a dim or an array of dims', value)
  return intArrayArg(name, value, { min: I32_MIN, max: I32_MAX, maxLength: 64 })
}

/**
 * A shape: an array of non-negative integers below 2^32 whose product is at most 2^53 - 1.
 * With `infer`, one entry may be -1 (reshape's "the rest").
 */
export function shapeArg(name: string, value: unknown, o: { infer?: boolean } = {}): number[] {
  if (!Array.isArray(value)) throw invalidArg(name, 'an array of non-negative integers', value)
  if (value.length > 64) throw invalidArg(name, 'a shape of at most 64 dims', value)
  let numel = 1
  let inferred = false
  for (let i = 0; i < value.length; i++) {
    const d = value[i]
    if (o.infer && d === -1 && !inferred) {
      inferred = true
      continue
    }
    intArg(`${name}[${i}]`, d, { min: 0, max: MAX_DIM })
    numel *= d
  }
  if (numel > MAX_NUMEL) throw new TransformerLensError('TL_INVALID_ARGUMENT', `${name} [${value.join(', ')}] has more than 2^53 - 1 elements`)
  return [...value]
}

/** A JS number (any value, NaN included, unless `finite`). */
export function numberArg(name: string, value: unknown, o: { finite?: boolean } = {}): number {
  if (typeof value !== 'number' || (o.finite && !Number.isFinite(value))) throw invalidArg(name, o.finite ? 'a finite number' : 'a number', value)
  return value
}

export function stringArg(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArg(name, 'a string', value)
  return value
}

/** A JS array of strings. */
export function stringArrayArg(name: string, value: unknown): string[] {
  if (!Array.isArray(value)) throw invalidArg(name, 'an array of strings', value)
  for (let i = 0; i < value.length; i++) stringArg(`${name}[${i}]`, value[i])
  return [...value]
}

/** One of `allowed` (strings, or null). */
export function enumArg<T extends string | null>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw invalidArg(name, `one of ${allowed.map((a) => (a === null ? 'null' : `'${a}'`)).join(', ')}`, value)
  return value as T
}

export function boolArg(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidArg(name, 'a boolean', value)
  return value
}

export function fnArg<F extends (...args: never[]) => unknown>(name: string, value: unknown): F {
  if (typeof value !== 'function') throw invalidArg(name, 'a function', value)
  return value as F
}

/** `fnArg`, with `undefined` / `null` meaning "not given". */
export function optFnArg<F extends (...args: never[]) => unknown>(name: string, value: unknown): F | undefined {
  return value === undefined || value === null ? undefined : fnArg<F>(name, value)
}
