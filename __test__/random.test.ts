/**
 * `Tensor.rand` / `Tensor.randn`: the values against an independent BigInt implementation of the
 * documented stream (splitmix64-seeded xoshiro256**, 53-bit uniforms, Marsaglia's polar method),
 * statistics of 1e5 draws, reproducibility, and coded errors.
 */
import test from 'ava'

import { DType, Tensor } from '../src/index'
import { codeOf } from './helpers/errors'
import { sampleStats } from './helpers/stats'

const M64 = (1n << 64n) - 1n
const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (64n - k))) & M64

/** xoshiro256** seeded through splitmix64, yielding uniforms in [0, 1) with 53 random bits. */
function* uniforms(seed: bigint): Generator<number> {
  let x = seed
  const splitmix = () => {
    x = (x + 0x9e3779b97f4a7c15n) & M64
    let z = x
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64
    return z ^ (z >> 31n)
  }
  const s = [splitmix(), splitmix(), splitmix(), splitmix()]
  for (;;) {
    const r = (rotl((s[1] * 5n) & M64, 7n) * 9n) & M64
    const t = (s[1] << 17n) & M64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45n)
    yield Number(r >> 11n) / 2 ** 53
  }
}


const f64 = (t: Tensor) => Array.from(t.toArray() as Float64Array)

test('rand draws exactly the documented xoshiro256** stream', (t) => {
  for (const seed of [0n, 42n, 2n ** 64n - 1n]) {
    const u = uniforms(seed)
    const want = Array.from({ length: 257 }, () => -1.5 + 4 * u.next().value)
    t.deepEqual(f64(Tensor.rand([257], { seed, low: -1.5, high: 2.5, dtype: 'float64' })), want)
  }
  // float32 is the float64 draw rounded once
  const u = uniforms(7n)
  t.deepEqual(Array.from(Tensor.rand([2, 3], { seed: 7 }).toArray() as Float32Array), Array.from(Float32Array.from({ length: 6 }, () => u.next().value)))
})

test("randn draws Marsaglia's polar method on that stream", (t) => {
  const u = uniforms(9n)
  const want: number[] = []
  while (want.length < 1001) {
    const a = 2 * u.next().value - 1
    const b = 2 * u.next().value - 1
    const s = a * a + b * b
    if (s <= 0 || s >= 1) continue
    const m = Math.sqrt((-2 * Math.log(s)) / s)
    want.push(3 + 0.5 * a * m, 3 + 0.5 * b * m)
  }
  const got = f64(Tensor.randn([7, 11, 13], { seed: 9, mean: 3, std: 0.5, dtype: 'float64' }))
  t.is(got.length, 1001)
  // The engine's log is its own (libm-free, for cross-platform bits): within a few ulps.
  got.forEach((g, i) => t.true(Math.abs(g - want[i]) <= 1e-14 * Math.max(1, Math.abs(want[i])), `${i}: ${g} vs ${want[i]}`))
})

test('1e5 draws have the asked-for mean, std and range', (t) => {
  const u = sampleStats(Tensor.rand([100_000], { seed: 1, low: -2, high: 6 }).toArray() as Float32Array)
  t.true(u.min >= -2 && u.max < 6, `range [${u.min}, ${u.max}]`)
  t.true(u.min < -1.99 && u.max > 5.99, 'fills the range')
  t.true(Math.abs(u.mean - 2) < 0.03, `uniform mean ${u.mean}`)
  t.true(Math.abs(u.std - 8 / Math.sqrt(12)) < 0.02, `uniform std ${u.std}`)
  const z = sampleStats(Tensor.randn([100, 1000], { seed: 2, mean: -1, std: 3 }).toArray() as Float32Array)
  t.true(Math.abs(z.mean + 1) < 0.04, `normal mean ${z.mean}`)
  t.true(Math.abs(z.std - 3) < 0.04, `normal std ${z.std}`)
  const d = sampleStats(Tensor.randn([100_000]).toArray() as Float32Array)
  t.true(Math.abs(d.mean) < 0.015 && Math.abs(d.std - 1) < 0.015, `default normal ${d.mean} ${d.std}`)
})

test('a seed reproduces the draw; different or missing seeds do not', (t) => {
  const a = Tensor.randn([4, 5], { seed: 123 }).toList()
  t.deepEqual(Tensor.randn([4, 5], { seed: 123n }).toList(), a)
  t.notDeepEqual(Tensor.randn([4, 5], { seed: 124 }).toList(), a)
  t.notDeepEqual(Tensor.rand([16]).toList(), Tensor.rand([16]).toList())
  t.deepEqual(Tensor.rand([3], { seed: 5, low: 1, high: 1 }).toList(), [1, 1, 1])
})

test('shapes, dtypes and degenerate shapes', (t) => {
  for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as DType[]) {
    const x = Tensor.rand([2, 3, 4], { seed: 1, dtype })
    t.deepEqual([x.shape, x.dtype], [[2, 3, 4], dtype])
    t.is(Tensor.randn([5], { seed: 1, dtype }).dtype, dtype)
  }
  t.deepEqual(Tensor.rand([0, 3], { seed: 1 }).shape, [0, 3])
  t.deepEqual(Tensor.randn([], { seed: 1 }).shape, [])
})

test('bad shapes, dtypes, seeds and parameters are coded errors', (t) => {
  t.is(codeOf(() => Tensor.rand([2], { seed: 1, dtype: 'int64' })), 'TL_DTYPE')
  t.is(codeOf(() => Tensor.randn([2], { seed: 1, dtype: 'uint8' })), 'TL_DTYPE')
  t.is(codeOf(() => Tensor.rand([2], { seed: 1, dtype: 'float8' as DType })), 'TL_DTYPE')
  t.is(codeOf(() => Tensor.rand([2, -1], { seed: 1 })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.rand([1.5], { seed: 1 })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.randn(3 as unknown as number[])), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.rand([2], { seed: -1 })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.rand([2], { seed: 0.5 })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.rand([2], { seed: 2n ** 64n })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.rand([2], { seed: 1, low: 1, high: 0 })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.rand([2], { seed: 1, high: Infinity })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.randn([2], { seed: 1, std: -1 })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => Tensor.randn([2], { seed: 1, mean: NaN })), 'TL_INVALID_ARGUMENT')
})
