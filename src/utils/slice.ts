import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'

/** Python's `slice(start, stop, step)`; `null` is Python's `None`. */
export interface PySlice {
  start: number | null
  stop: number | null
  step: number | null
}

/**
 * What TL's `Slice` takes, spelled for JS:
 * - a number: index with it (the dim is removed), as TL's int mode;
 * - a plain array of 1 to 3 entries: Python's tuple form, `slice(*tuple)`: `[stop]`,
 *   `[start, stop]`, `[start, stop, step]` (`null` = None): `[1, 5]` ≙ `1:5`, `[null, null, 2]` ≙ `::2`;
 * - a list of indices, as TL's array mode (Python list / ndarray / tensor): `{ indices: [1, 4, 5] }`,
 *   an integer typed array, or a 1-D integer `Tensor`;
 * - `null` / `undefined`: everything (TL's identity mode).
 */
export type SliceInput =
  | number
  | readonly (number | null | undefined)[]
  | { readonly indices: readonly number[] }
  | Tensor
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | null
  | undefined

export type SliceMode = 'int' | 'slice' | 'array' | 'identity'

function checkInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `${what} must be an integer, got ${JSON.stringify(v)}`)
  }
  return v
}

/** CPython's `slice.indices(length)` followed by `range(...)`: the positions a slice selects. */
export function pySliceRange(s: PySlice, length: number): number[] {
  const step = s.step ?? 1
  if (step === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'slice step cannot be zero')
  const lower = step > 0 ? 0 : -1
  const upper = step > 0 ? length : length - 1
  const clamp = (v: number | null, dflt: number): number => {
    if (v === null) return dflt
    const x = v < 0 ? v + length : v
    return x < lower ? lower : x > upper ? upper : x
  }
  const start = clamp(s.start, step > 0 ? lower : upper)
  const stop = clamp(s.stop, step > 0 ? upper : lower)
  const out: number[] = []
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i)
  else for (let i = start; i > stop; i += step) out.push(i)
  return out
}

function normDim(dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim
  if (!Number.isInteger(dim) || d < 0 || d >= ndim) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `dim ${dim} is out of range for a tensor of rank ${ndim}`)
  }
  return d
}

/** `[null, ..., null, entry]`: a TL-style index that touches only dim `d`. */
function at(d: number, entry: number | [number | null, number | null]): (number | null | [number | null, number | null])[] {
  return [...new Array<null>(d).fill(null), entry]
}

/**
 * TL's `utils.Slice`: one way to pick along one dim, by an int (the dim goes away), a Python
 * slice, a list of indices, or everything. `new Slice(-1).apply(resid, -2)` ≙ `resid[..., -1, :]`.
 */
export class Slice {
  readonly mode: SliceMode
  /** int mode: the index; slice mode: the Python slice; array mode: the indices; identity: `slice(None)`. */
  readonly slice: number | PySlice | number[]

  constructor(input: SliceInput = null) {
    if (input === null || input === undefined) {
      this.mode = 'identity'
      this.slice = { start: null, stop: null, step: null }
    } else if (typeof input === 'number') {
      this.mode = 'int'
      this.slice = checkInt(input, 'a Slice index')
    } else if (input instanceof Tensor) {
      if (input.ndim > 1) throw new TransformerLensError('TL_SHAPE_MISMATCH', `a Slice takes a 1-D tensor of indices, got shape [${input.shape}]`)
      this.mode = 'array'
      this.slice = Array.from(input.toArray() as ArrayLike<number | bigint>, (v) => checkInt(Number(v), 'a Slice index'))
    } else if (input instanceof Int32Array || input instanceof BigInt64Array || input instanceof Uint8Array) {
      this.mode = 'array'
      this.slice = Array.from(input as ArrayLike<number | bigint>, (v) => Number(v))
    } else if (Array.isArray(input)) {
      // Python's tuple form: slice(*tuple).
      if (input.length < 1 || input.length > 3) {
        throw new TransformerLensError(
          'TL_INVALID_ARGUMENT',
          `a Slice array is Python's tuple form [stop], [start, stop] or [start, stop, step] (got ${input.length} entries); for a list of indices use { indices: [...] }`,
        )
      }
      const v = input.map((x, i) => (x === null || x === undefined ? null : checkInt(x, `Slice tuple entry ${i}`)))
      const [start, stop, step] = v.length === 1 ? [null, v[0], null] : [v[0], v[1], v[2] ?? null]
      if (step === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'slice step cannot be zero')
      this.mode = 'slice'
      this.slice = { start, stop, step }
    } else if (typeof input === 'object' && 'indices' in input && Array.isArray(input.indices)) {
      this.mode = 'array'
      this.slice = input.indices.map((x) => checkInt(x, 'a Slice index'))
    } else {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `invalid Slice input ${JSON.stringify(input)}`)
    }
  }

  /** A Slice as is, anything else through `new Slice(...)` (what every TL method does first). */
  static from(input: Slice | SliceInput): Slice {
    return input instanceof Slice ? input : new Slice(input)
  }

  /**
   * TL's `Slice.unwrap`: like `from`, except that an int becomes a one-index list, so the dim is
   * kept rather than removed.
   */
  static unwrap(input: Slice | SliceInput): Slice {
    if (input instanceof Slice) return input
    return new Slice(typeof input === 'number' ? { indices: [input] } : input)
  }

  /** The tensor sliced along `dim` (negative counts from the end). Always a new Tensor. */
  apply(tensor: Tensor, dim = 0): Tensor {
    const shape = tensor.shape
    const d = normDim(dim, shape.length)
    const n = shape[d]
    switch (this.mode) {
      case 'identity':
        return tensor.get()
      case 'int':
        return tensor.get(...at(d, this.slice as number))
      case 'slice': {
        const s = this.slice as PySlice
        const step = s.step ?? 1
        // torch refuses negative steps (`ValueError: step must be greater than zero`).
        if (step < 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a Slice step must be greater than zero to slice a tensor')
        if (step === 1) return tensor.get(...at(d, [s.start, s.stop]))
        const idx = pySliceRange(s, n)
        if (idx.length === 0) return tensor.get(...at(d, [0, 0]))
        return selectIndices(tensor, d, idx)
      }
      case 'array': {
        const idx = (this.slice as number[]).map((i) => {
          const j = i < 0 ? i + n : i
          if (j < 0 || j >= n) throw new TransformerLensError('TL_SHAPE_MISMATCH', `index ${i} is out of range for dim ${dim} of size ${n}`)
          return j
        })
        if (idx.length === 0) return tensor.get(...at(d, [0, 0]))
        return selectIndices(tensor, d, idx)
      }
    }
  }

  /**
   * TL's `Slice.indices(max_ctx)`: the positions this slice selects on an axis of size `maxCtx`.
   * As TL, an int slice gives `[index]` as written (a negative index is not made absolute even
   * with `maxCtx`); other modes need `maxCtx`.
   */
  indices(maxCtx?: number): number[] {
    if (this.mode === 'int') return [this.slice as number]
    if (maxCtx === undefined || maxCtx === null) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', 'maxCtx must be given if the slice is not an integer')
    }
    if (this.mode === 'array') {
      // numpy fancy indexing of arange(maxCtx): negatives count from the end.
      return (this.slice as number[]).map((i) => {
        const j = i < 0 ? i + maxCtx : i
        if (j < 0 || j >= maxCtx) throw new TransformerLensError('TL_SHAPE_MISMATCH', `index ${i} is out of range for size ${maxCtx}`)
        return j
      })
    }
    return pySliceRange(this.slice as PySlice, maxCtx)
  }

  toString(): string {
    const s = this.slice
    const show = (v: number | null) => (v === null ? 'None' : String(v))
    const body =
      typeof s === 'number' ? String(s) : Array.isArray(s) ? `[${s.join(' ')}]` : `slice(${show(s.start)}, ${show(s.stop)}, ${show(s.step)})`
    return `Slice: ${body} Mode: ${this.mode} `
  }
}

function selectIndices(tensor: Tensor, d: number, idx: number[]): Tensor {
  const ids = Tensor.from(BigInt64Array.from(idx, (i) => BigInt(i)), [idx.length])
  try {
    return tensor.indexSelect(d, ids)
  } finally {
    ids.dispose()
  }
}
