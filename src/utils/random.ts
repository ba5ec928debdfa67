/** Seeds and arguments for the native random draws (`Tensor.rand` / `Tensor.randn`, sampling). */
import { randomBytes } from 'node:crypto'

import { TransformerLensError } from '../errors'
import { shapeArg } from './args'
import type { DType } from '../tensor'

const U64_END = 1n << 64n

/** A seed: a non-negative integer below 2^64 (a safe-integer number, or a bigint). */
export type Seed = number | bigint

export interface RandOptions {
  /** The same seed gives the same values on every platform; without one a seed comes from `crypto`. */
  seed?: Seed
  /** Inclusive lower end (default 0). */
  low?: number
  /** Exclusive upper end (default 1). */
  high?: number
  /** A float dtype (default 'float32'). */
  dtype?: DType
}

export interface RandnOptions {
  /** The same seed gives the same values on every platform; without one a seed comes from `crypto`. */
  seed?: Seed
  /** Default 0. */
  mean?: number
  /** Default 1. */
  std?: number
  /** A float dtype (default 'float32'). */
  dtype?: DType
}

/**
 * A `seed` option checked (a non-negative integer below 2^64) and turned into the decimal string
 * the addon takes; `undefined` stays `undefined`.
 */
export function seedArg(seed: unknown): string | undefined {
  if (seed === undefined) return undefined
  const ok = typeof seed === 'number' ? Number.isSafeInteger(seed) && seed >= 0 : typeof seed === 'bigint' && seed >= 0n && seed < U64_END
  if (!ok) throw new TransformerLensError('TL_INVALID_ARGUMENT', `seed must be a non-negative integer below 2^64, got ${String(seed)}`)
  return String(seed)
}

/** A fresh u64 seed from the OS's cryptographic generator, as a decimal string. */
export function randomSeed(): string {
  return randomBytes(8).readBigUInt64LE().toString()
}

/** The shape, seed (given or fresh) and dtype of a random draw, checked. */
export function randomArgs(shape: readonly number[], o: { seed?: Seed; dtype?: DType }): { shape: number[]; seed: string; dtype: DType } {
  return { shape: shapeArg('shape', shape), seed: seedArg(o.seed) ?? randomSeed(), dtype: o.dtype ?? 'float32' }
}
