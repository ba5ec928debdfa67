/**
 * numpy 1.x's `np.array_str(a, precision=p)` for float arrays (default print options: threshold
 * 1000, edgeitems 3, linewidth 75, floatmode 'maxprec', sign '-'), so tuned-lens's
 * `tensor_hash` (sha256 of `array_str(W, precision=1)`) can be computed here and a lens saved by
 * this library carries the `unembed_hash` tuned-lens would write.
 *
 * Numbers are formatted from their exact binary value (BigInt), rounded half to even as
 * numpy's Dragon4 does. Only the summarised corner (at most 6 × 6 values of a large matrix) is
 * ever formatted. Known gap: positional values of magnitude ≥ 2^20 whose float32 spacing exceeds
 * the printed precision may round differently from numpy's shortest-digit mode.
 * @internal
 */

const THRESHOLD = 1000
const EDGE = 3
const LINE_WIDTH = 75

/** The exact decimal digits of a finite non-negative double: `digits × 10^-scale`. */
function exactDecimal(x: number): { digits: bigint; scale: number } {
  if (x === 0) return { digits: 0n, scale: 0 }
  const buf = new DataView(new ArrayBuffer(8))
  buf.setFloat64(0, x)
  const hi = buf.getUint32(0)
  const lo = buf.getUint32(4)
  const exp = (hi >>> 20) & 0x7ff
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo)
  let e2: number
  if (exp === 0) {
    e2 = -1074
  } else {
    mant |= 1n << 52n
    e2 = exp - 1075
  }
  if (e2 >= 0) return { digits: mant << BigInt(e2), scale: 0 }
  // mant / 2^k = mant * 5^k / 10^k
  return { digits: mant * 5n ** BigInt(-e2), scale: -e2 }
}

/** `digits × 10^-scale` rounded to `keep` fractional digits, half to even: an integer `n × 10^-keep`. */
function roundTo(digits: bigint, scale: number, keep: number): bigint {
  if (scale <= keep) return digits * 10n ** BigInt(keep - scale)
  const div = 10n ** BigInt(scale - keep)
  const q = digits / div
  const r = digits % div
  const twice = 2n * r
  if (twice > div || (twice === div && q % 2n === 1n)) return q + 1n
  return q
}

/** Decimal exponent of a positive exact decimal: `floor(log10(value))`. */
function decimalExponent(digits: bigint, scale: number): number {
  return digits.toString().length - 1 - scale
}

interface Parts {
  sign: string
  int: string
  frac: string
  exp?: string
}

/** Dragon4 positional, `precision` fractional digits at most, trailing zeros trimmed ('.' kept). */
function positional(x: number, precision: number): Parts {
  const sign = x < 0 || Object.is(x, -0) ? '-' : ''
  const { digits, scale } = exactDecimal(Math.abs(x))
  const n = roundTo(digits, scale, precision)
  const s = n.toString().padStart(precision + 1, '0')
  const int = s.slice(0, s.length - precision)
  const frac = s.slice(s.length - precision).replace(/0+$/, '')
  return { sign, int, frac }
}

/** Dragon4 scientific, `precision` digits after the first, trailing zeros trimmed. */
function scientific(x: number, precision: number): Parts {
  const sign = x < 0 || Object.is(x, -0) ? '-' : ''
  const ax = Math.abs(x)
  if (ax === 0) return { sign, int: '0', frac: '', exp: '+00' }
  const { digits, scale } = exactDecimal(ax)
  let e = decimalExponent(digits, scale)
  // value / 10^e has one digit before the point: round to `precision` fractional digits.
  let n = roundTo(digits, scale + e, precision)
  if (n.toString().length > precision + 1) {
    e += 1
    n = roundTo(digits, scale + e, precision)
  }
  const s = n.toString()
  const frac = s.slice(1).replace(/0+$/, '')
  const ae = Math.abs(e).toString().padStart(2, '0')
  return { sign, int: s[0], frac, exp: `${e < 0 ? '-' : '+'}${ae}` }
}

/** numpy's FloatingFormat (maxprec, sign '-', no suppress_small) fitted to `data`. */
function floatFormatter(data: readonly number[], precision: number): (x: number) => string {
  const finite = data.filter(Number.isFinite)
  const nonZero = finite.filter((v) => v !== 0).map(Math.abs)
  let expFormat = false
  if (nonZero.length > 0) {
    const max = Math.max(...nonZero)
    const min = Math.min(...nonZero)
    expFormat = max >= 1e8 || min < 0.0001 || max / min > 1000
  }
  const pad = (s: string, n: number) => ' '.repeat(Math.max(0, n - s.length)) + s
  if (finite.length === 0) return (x) => nonFinite(x)
  if (expFormat) {
    const parts = finite.map((v) => scientific(v, precision))
    const prec = Math.max(...parts.map((p) => p.frac.length))
    const padLeft = Math.max(...parts.map((p) => (p.sign + p.int).length))
    const expSize = Math.max(...parts.map((p) => p.exp!.length)) - 1
    return (x) => {
      if (!Number.isFinite(x)) return pad(nonFinite(x), padLeft + prec + expSize + 3)
      const p = scientific(x, precision)
      const exp = p.exp![0] + p.exp!.slice(1).padStart(expSize, '0')
      return pad(p.sign + p.int, padLeft) + '.' + p.frac.padEnd(prec, '0') + 'e' + exp
    }
  }
  const parts = finite.map((v) => positional(v, precision))
  const padLeft = Math.max(...parts.map((p) => (p.sign + p.int).length))
  const padRight = Math.max(...parts.map((p) => p.frac.length))
  return (x) => {
    if (!Number.isFinite(x)) return pad(nonFinite(x), padLeft + padRight + 1)
    const p = positional(x, precision)
    return pad(p.sign + p.int, padLeft) + '.' + p.frac.padEnd(padRight, ' ')
  }
}

function nonFinite(x: number): string {
  return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf'
}

/** numpy's `_extendLine`: wraps before `word` when the line would pass `width`. */
function extendLine(acc: { s: string; line: string }, word: string, width: number, prefix: string): void {
  let wrap = acc.line.length + word.length > width
  if (acc.line.length <= prefix.length) wrap = false
  if (wrap) {
    acc.s += acc.line.trimEnd() + '\n'
    acc.line = prefix
  }
  acc.line += word
}

/** `np.array_str(a, precision)` of a float array given as its row-major `values` and `shape`. */
export function arrayStr(values: ArrayLike<number>, shape: readonly number[], precision: number): string {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1))
  return arrayStrOf((index) => values[index.reduce((o, i, d) => o + i * strides[d], 0)], shape, precision)
}

/**
 * `np.array_str(a, precision)` of a float array of `shape` whose element at a (non-negative)
 * index is `get(index)`. Only the elements numpy prints are read (`printedIndices` per axis).
 */
export function arrayStrOf(get: (index: number[]) => number, shape: readonly number[], precision: number): string {
  const size = shape.reduce((a, b) => a * b, 1)
  const summarise = size > THRESHOLD
  const kept = shape.map((n) => printedIndices(n, size))
  const data: number[] = []
  const collect = (index: number[]) => {
    if (index.length === shape.length) return void data.push(get(index))
    for (const i of kept[index.length]) collect([...index, i])
  }
  collect([])
  const fmt = floatFormatter(data, precision)
  const at = (index: number[]) => get(index.map((i, d) => (i < 0 ? shape[d] + i : i)))

  const recurse = (index: number[], hanging: string, width: number): string => {
    const axis = index.length
    const left = shape.length - axis
    if (left === 0) return fmt(at(index))
    const nextHanging = hanging + ' '
    const nextWidth = width - 1
    const n = shape[axis]
    const summary = summarise && 2 * EDGE < n
    const leading = summary ? EDGE : 0
    const trailing = summary ? EDGE : n
    let s = ''
    if (left === 1) {
      const elemWidth = width - 1
      const acc = { s: '', line: hanging }
      for (let i = 0; i < leading; i++) {
        extendLine(acc, recurse([...index, i], nextHanging, nextWidth), elemWidth, hanging)
        acc.line += ' '
      }
      if (summary) {
        extendLine(acc, '...', elemWidth, hanging)
        acc.line += ' '
      }
      for (let i = trailing; i > 1; i--) {
        extendLine(acc, recurse([...index, -i], nextHanging, nextWidth), elemWidth, hanging)
        acc.line += ' '
      }
      extendLine(acc, recurse([...index, -1], nextHanging, nextWidth), elemWidth, hanging)
      s = acc.s + acc.line
    } else {
      const sep = '\n'.repeat(left - 1)
      for (let i = 0; i < leading; i++) s += hanging + recurse([...index, i], nextHanging, nextWidth) + sep
      if (summary) s += hanging + '...' + sep
      for (let i = trailing; i > 1; i--) s += hanging + recurse([...index, -i], nextHanging, nextWidth) + sep
      s += hanging + recurse([...index, -1], nextHanging, nextWidth)
    }
    return '[' + s.slice(hanging.length) + ']'
  }
  return recurse([], ' ', LINE_WIDTH)
}

/** The indices along an axis of length `n` that `arrayStr` reads for an array of `size` elements. */
export function printedIndices(n: number, size: number): number[] {
  return size > THRESHOLD && n > 2 * EDGE ? [0, 1, 2, n - 3, n - 2, n - 1] : Array.from({ length: n }, (_, i) => i)
}

/** Python's `'%.{digits}f' % x`: the exact value rounded half to even (`-0.00` for -0.0 and small negatives). */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf'
  const p = positional(x, digits)
  const frac = (p.frac + '0'.repeat(digits)).slice(0, digits)
  return `${p.sign}${p.int}${digits > 0 ? '.' + frac : ''}`
}
