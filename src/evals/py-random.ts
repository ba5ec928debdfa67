/**
 * A seeded generator that draws as CPython's `random` module does (MT19937, `random.seed(int)`,
 * `choice`, `sample`, `randrange`, `shuffle`), so that TL's IOI sampling (`random.seed(42)` then
 * `random.choice` / `random.sample`) gives the same prompts here. Not cryptographic.
 */
import { TransformerLensError } from '../errors'

const N = 624
const M = 397

export class PyRandom {
  #mt = new Uint32Array(N)
  #i = N + 1

  constructor(seed = 0) {
    this.seed(seed)
  }

  /** `random.seed(n)` for a non-negative (or negative: its absolute value) integer. */
  seed(seed: number | bigint): void {
    let a = typeof seed === 'bigint' ? seed : BigInt(Math.trunc(seed))
    if (a < 0n) a = -a
    const key: number[] = []
    do {
      key.push(Number(a & 0xffffffffn))
      a >>= 32n
    } while (a > 0n)
    this.#initByArray(key)
  }

  #initGenrand(s: number): void {
    const mt = this.#mt
    mt[0] = s >>> 0
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0
    }
    this.#i = N
  }

  #initByArray(key: number[]): void {
    const mt = this.#mt
    this.#initGenrand(19650218)
    let i = 1
    let j = 0
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0
      i++
      j++
      if (i >= N) {
        mt[0] = mt[N - 1]
        i = 1
      }
      if (j >= key.length) j = 0
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0
      i++
      if (i >= N) {
        mt[0] = mt[N - 1]
        i = 1
      }
    }
    mt[0] = 0x80000000
  }

  /** One 32-bit output (genrand_uint32). */
  nextUint32(): number {
    const mt = this.#mt
    if (this.#i >= N) {
      for (let k = 0; k < N; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff)
        mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)
      }
      this.#i = 0
    }
    let y = mt[this.#i++]
    y ^= y >>> 11
    y ^= (y << 7) & 0x9d2c5680
    y ^= (y << 15) & 0xefc60000
    y ^= y >>> 18
    return y >>> 0
  }

  /** `random.random()`: a float in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * 67108864 + b) / 9007199254740992
  }

  /** `random.getrandbits(k)` for 0 < k <= 53. */
  getrandbits(k: number): number {
    if (k <= 32) return this.nextUint32() >>> (32 - k)
    if (k > 53) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'getrandbits: k > 53 is not supported')
    // CPython fills 32-bit words little-end first; the last word keeps its top bits.
    const lo = this.nextUint32()
    const hi = this.nextUint32() >>> (64 - k)
    return hi * 4294967296 + lo
  }

  /** CPython's `_randbelow_with_getrandbits(n)`: an int in [0, n). */
  randbelow(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', `randbelow needs a positive integer, got ${n}`)
    const k = Math.floor(Math.log2(n)) + 1 // n.bit_length()
    let r = this.getrandbits(k)
    while (r >= n) r = this.getrandbits(k)
    return r
  }

  /** `random.randrange(start, stop)`: an int in [start, stop). */
  randrange(start: number, stop: number): number {
    return start + this.randbelow(stop - start)
  }

  /** `random.choice(seq)`. */
  choice<T>(seq: readonly T[]): T {
    if (seq.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Cannot choose from an empty sequence')
    return seq[this.randbelow(seq.length)]
  }

  /** `random.sample(population, k)`: k distinct elements, in CPython's order. */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length
    if (!(k >= 0 && k <= n)) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Sample larger than population or is negative')
    const result: T[] = new Array<T>(k)
    let setsize = 21
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4))
    if (n <= setsize) {
      const pool = [...population]
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i)
        result[i] = pool[j]
        pool[j] = pool[n - i - 1]
      }
    } else {
      const selected = new Set<number>()
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n)
        while (selected.has(j)) j = this.randbelow(n)
        selected.add(j)
        result[i] = population[j]
      }
    }
    return result
  }

  /** `random.shuffle(x)` in place. */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1)
      ;[x[i], x[j]] = [x[j], x[i]]
    }
    return x
  }
}
