import { native, TransformerLensError } from './errors'
import * as binding from './native/binding'
import { backward as backwardFrom } from './hooks/backward'
import { RandnOptions, RandOptions, randomArgs } from './utils/random'
import { Device, isDeviceName } from './utils/devices'
import { boolArg, describe, dimArg, dimsArg, intArg, invalidArg, MAX_NUMEL, numberArg, shapeArg, stringArg, U32_MAX } from './utils/args'

type NativeTensor = binding.NativeTensor

export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'uint32' | 'uint8'
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array
/** One entry of a TL-style index: `null` = all (`:`), an int collapses the dim, `[start, end]` keeps it. */
export type IndexEntry = number | null | [number | null, number | null]
export type NestedList = number | NestedList[]

interface ReduceOptions {
  keepdim?: boolean
}

const DTYPES: readonly string[] = ['float32', 'float16', 'bfloat16', 'float64', 'int64', 'int32', 'uint32', 'uint8']

const SAFE = { min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }

function indexSpec(index: readonly IndexEntry[]): binding.IndexSpec[] {
  if (!Array.isArray(index)) throw invalidArg('index', 'an array of index entries', index)
  return index.map((e, i) => {
    if (e === null || e === undefined) return { kind: 'all' }
    if (typeof e === 'number') return { kind: 'at', at: intArg(`index[${i}]`, e, SAFE) }
    if (Array.isArray(e) && e.length === 2) {
      const end = (v: unknown, what: string) => (v === null || v === undefined ? undefined : intArg(`index[${i}][${what}]`, v, SAFE))
      return { kind: 'range', start: end(e[0], 'start'), end: end(e[1], 'end') }
    }
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `bad index entry ${describe(e)} at index[${i}]: use null, an int or [start, end]`)
  })
}

/** `t` as a Tensor operand (argument `name`). */
function tensorArg(name: string, t: unknown): Tensor {
  if (!(t instanceof Tensor)) throw invalidArg(name, 'a Tensor', t)
  return t
}

function tensorsArg(name: string, ts: unknown): Tensor[] {
  if (!Array.isArray(ts)) throw invalidArg(name, 'an array of Tensors', ts)
  return ts.map((t, i) => tensorArg(`${name}[${i}]`, t))
}

/** A scalar operand: a number, or a Tensor (returned as is). */
function operandArg(name: string, v: unknown): Tensor | number {
  if (typeof v === 'number' || v instanceof Tensor) return v
  throw invalidArg(name, 'a Tensor or a number', v)
}

function dtypeArg(dtype: unknown): string {
  return stringArg('dtype', dtype)
}

function keepdimArg(o: ReduceOptions | undefined): boolean {
  return o?.keepdim === undefined ? false : boolArg('keepdim', o.keepdim)
}

/**
 * A tensor held natively (candle). Data is copied into JS only by `toArray()` / `toList()` /
 * `item()`. Call `dispose()` (or use `using`) to free memory before the garbage collector does.
 */
export class Tensor {
  #n: NativeTensor | null

  /** @internal */
  constructor(n: NativeTensor) {
    this.#n = n
  }

  /** @internal */
  get native(): NativeTensor {
    if (this.#n === null || this.#n.disposed) throw new TransformerLensError('TL_DISPOSED', 'this tensor was disposed')
    return this.#n
  }

  // ---- construction ----

  /** A tensor from a typed array (copied once). Float32Array → float32, BigInt64Array → int64, ... */
  static from(data: TypedArray | number[], shape?: readonly number[], dtype?: DType): Tensor {
    if (dtype !== undefined) dtypeArg(dtype)
    if (Array.isArray(data)) {
      for (let i = 0; i < data.length; i++) if (typeof data[i] !== 'number') throw invalidArg(`data[${i}]`, 'a number (pass a flat array)', data[i])
    } else if (!ArrayBuffer.isView(data)) {
      throw invalidArg('data', 'a typed array or an array of numbers', data)
    }
    const shp = shapeArg('shape', shape === undefined || shape === null ? [data.length] : shape)
    let t: Tensor
    if (Array.isArray(data)) t = wrapT(native(() => binding.tensorFromF64(new Float64Array(data), shp))).to(dtype ?? 'float32')
    else if (data instanceof Float32Array) t = wrapT(native(() => binding.tensorFromF32(data, shp)))
    else if (data instanceof Float64Array) t = wrapT(native(() => binding.tensorFromF64(data, shp)))
    else if (data instanceof BigInt64Array) t = wrapT(native(() => binding.tensorFromI64(data, shp)))
    else if (data instanceof Int32Array) t = wrapT(native(() => binding.tensorFromI32(data, shp)))
    else if (data instanceof Uint8Array) t = wrapT(native(() => binding.tensorFromU8(data, shp)))
    else throw new TransformerLensError('TL_DTYPE', 'Tensor.from takes a Float32Array, Float64Array, BigInt64Array, Int32Array, Uint8Array or number[]')
    return dtype && dtype !== t.dtype ? t.to(dtype) : t
  }

  static full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
    const shp = shapeArg('shape', shape)
    numberArg('value', value)
    dtypeArg(dtype)
    return wrapT(native(() => binding.tensorFull(shp, value, dtype)))
  }
  static zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
    return Tensor.full(shape, 0, dtype)
  }
  static ones(shape: readonly number[], dtype: DType = 'float32'): Tensor {
    return Tensor.full(shape, 1, dtype)
  }
  /** `arange(end)` or `arange(start, end, step)`; int64 for integer arguments, as torch. */
  static arange(start: number, end?: number, step = 1, dtype?: DType): Tensor {
    const [s, e] = end === undefined ? [0, numberArg('end', start, { finite: true })] : [numberArg('start', start, { finite: true }), numberArg('end', end, { finite: true })]
    numberArg('step', step, { finite: true })
    if (step !== 0 && Math.ceil((e - s) / step) > MAX_NUMEL) throw new TransformerLensError('TL_INVALID_ARGUMENT', `arange(${s}, ${e}, ${step}) has more than 2^53 - 1 elements`)
    const dt = dtype ?? ([s, e, step].every(Number.isInteger) ? 'int64' : 'float32')
    dtypeArg(dt)
    return wrapT(native(() => binding.tensorArange(s, e, step, dt)))
  }
  static cat(tensors: readonly Tensor[], dim = 0): Tensor {
    const parts = tensorsArg('tensors', tensors).map((t) => t.native)
    return wrapT(native(() => binding.tensorCat(parts, dimArg('dim', dim), false)))
  }
  static stack(tensors: readonly Tensor[], dim = 0): Tensor {
    const parts = tensorsArg('tensors', tensors).map((t) => t.native)
    return wrapT(native(() => binding.tensorCat(parts, dimArg('dim', dim), true)))
  }

  // ---- metadata ----

  get shape(): number[] {
    return native(() => this.native.shape)
  }
  get dtype(): DType {
    return native(() => this.native.dtype) as DType
  }
  /** `'cpu'` or `'cuda:N'`. */
  get device(): string {
    return native(() => this.native.device)
  }
  get ndim(): number {
    return this.shape.length
  }
  /** torch's `is_floating_point()`: float32, float16, bfloat16 or float64. */
  isFloatingPoint(): boolean {
    const d = this.dtype
    return d.startsWith('float') || d === 'bfloat16'
  }
  /**
   * Backpropagates from this scalar through the runs it was computed from (runs made while
   * backward hooks were registered, or with `inclBwd`), firing their backward hooks (torch's
   * `tensor.backward()`). Runs on the calling thread, like torch.
   */
  backward(): void {
    backwardFrom(this)
  }

  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1)
  }
  /** `size()` is the shape; `size(d)` one dim (negative counts from the end). */
  size(dim?: number): number | number[] {
    const s = this.shape
    if (dim === undefined) return s
    dimArg('dim', dim)
    const d = dim < 0 ? dim + s.length : dim
    if (d < 0 || d >= s.length) throw new TransformerLensError('TL_SHAPE_MISMATCH', `dim ${dim} is out of range for shape [${s}]`)
    return s[d]
  }
  get disposed(): boolean {
    return this.#n === null || this.#n.disposed
  }

  // ---- data out ----

  /** A flat row-major copy. Float32Array for float32/float16/bfloat16, BigInt64Array for int64. */
  toArray(): TypedArray {
    return native(() => this.native.toArray()) as TypedArray
  }
  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel() !== 1) throw new TransformerLensError('TL_SHAPE_MISMATCH', `item() needs one element, the shape is [${this.shape}]`)
    const v = this.toArray()[0]
    return typeof v === 'bigint' ? Number(v) : v
  }
  /** Nested arrays of numbers (int64 values become numbers). */
  toList(): NestedList {
    const flat = this.toArray()
    const shape = this.shape
    const num = (i: number) => {
      const v = flat[i]
      return typeof v === 'bigint' ? Number(v) : v
    }
    if (shape.length === 0) return num(0)
    const build = (d: number, offset: number): NestedList[] => {
      const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1)
      const out: NestedList[] = []
      for (let i = 0; i < shape[d]; i++) out.push(d === shape.length - 1 ? num(offset + i) : build(d + 1, offset + i * stride))
      return out
    }
    return build(0, 0)
  }

  // ---- elementwise ----

  #bin(op: string, other: Tensor | number): Tensor {
    operandArg('other', other)
    if (typeof other === 'number') return wrapT(native(() => this.native.scalar(op, other)))
    return wrapT(native(() => this.native.binary(op, other.native)))
  }
  add(o: Tensor | number): Tensor {
    return this.#bin('add', o)
  }
  sub(o: Tensor | number): Tensor {
    return this.#bin('sub', o)
  }
  mul(o: Tensor | number): Tensor {
    return this.#bin('mul', o)
  }
  div(o: Tensor | number): Tensor {
    return this.#bin('div', o)
  }
  pow(o: Tensor | number): Tensor {
    return this.#bin('pow', o)
  }
  maximum(o: Tensor | number): Tensor {
    return this.#bin('maximum', o)
  }
  minimum(o: Tensor | number): Tensor {
    return this.#bin('minimum', o)
  }
  eq(o: Tensor | number): Tensor {
    return this.#bin('eq', o)
  }
  ne(o: Tensor | number): Tensor {
    return this.#bin('ne', o)
  }
  lt(o: Tensor | number): Tensor {
    return this.#bin('lt', o)
  }
  le(o: Tensor | number): Tensor {
    return this.#bin('le', o)
  }
  gt(o: Tensor | number): Tensor {
    return this.#bin('gt', o)
  }
  ge(o: Tensor | number): Tensor {
    return this.#bin('ge', o)
  }
  /** torch.matmul semantics (batched, broadcasting, 1-D operands). */
  matmul(o: Tensor): Tensor {
    return this.#bin('matmul', o)
  }
  #un(op: string): Tensor {
    return wrapT(native(() => this.native.unary(op)))
  }
  neg(): Tensor {
    return this.#un('neg')
  }
  abs(): Tensor {
    return this.#un('abs')
  }
  exp(): Tensor {
    return this.#un('exp')
  }
  log(): Tensor {
    return this.#un('log')
  }
  sqrt(): Tensor {
    return this.#un('sqrt')
  }
  square(): Tensor {
    return this.#un('square')
  }
  tanh(): Tensor {
    return this.#un('tanh')
  }
  sin(): Tensor {
    return this.#un('sin')
  }
  cos(): Tensor {
    return this.#un('cos')
  }
  relu(): Tensor {
    return this.#un('relu')
  }
  sigmoid(): Tensor {
    return this.#un('sigmoid')
  }
  isnan(): Tensor {
    return this.#un('isnan')
  }
  /** `cond.where(a, b)`: `a` where this tensor is non-zero, else `b` (broadcasting). */
  where(onTrue: Tensor | number, onFalse: Tensor | number): Tensor {
    operandArg('onTrue', onTrue)
    operandArg('onFalse', onFalse)
    const asT = (v: Tensor | number) => (typeof v === 'number' ? Tensor.full([], v, typeof onTrue === 'number' ? 'float32' : onTrue.dtype) : v)
    return wrapT(native(() => this.native.whereCond(asT(onTrue).native, asT(onFalse).native)))
  }

  // ---- reductions ----

  #red(op: string, dim: number | readonly number[] | undefined, o?: ReduceOptions): Tensor {
    const args = [op, dimsArg('dim', dim), keepdimArg(o)] as const
    return wrapT(native(() => this.native.reduce(...args)))
  }
  sum(dim?: number | readonly number[], o?: ReduceOptions): Tensor {
    return this.#red('sum', dim, o)
  }
  mean(dim?: number | readonly number[], o?: ReduceOptions): Tensor {
    return this.#red('mean', dim, o)
  }
  /** Max values along `dim` (or of all elements). */
  max(dim?: number, o?: ReduceOptions): Tensor {
    return this.#red('max', dim, o)
  }
  min(dim?: number, o?: ReduceOptions): Tensor {
    return this.#red('min', dim, o)
  }
  argmax(dim?: number, o?: ReduceOptions): Tensor {
    return this.#red('argmax', dim, o)
  }
  argmin(dim?: number, o?: ReduceOptions): Tensor {
    return this.#red('argmin', dim, o)
  }
  /** Unbiased variance, as torch.var. */
  var(dim?: number | readonly number[], o?: ReduceOptions): Tensor {
    return this.#red('var', dim, o)
  }
  std(dim?: number | readonly number[], o?: ReduceOptions): Tensor {
    return this.#red('std', dim, o)
  }
  softmax(dim = -1): Tensor {
    return wrapT(native(() => this.native.softmax(dimArg('dim', dim), false)))
  }
  logSoftmax(dim = -1): Tensor {
    return wrapT(native(() => this.native.softmax(dimArg('dim', dim), true)))
  }
  /** p-norm over `dim` (all elements by default), as torch.linalg.vector_norm. */
  norm(o: { p?: number; dim?: number | readonly number[]; keepdim?: boolean } = {}): Tensor {
    const args = [numberArg('p', o.p ?? 2), dimsArg('dim', o.dim), keepdimArg(o)] as const
    return wrapT(native(() => this.native.norm(...args)))
  }
  /** `[values, indices]` of the k largest (or smallest) along `dim`. */
  topk(k: number, o: { dim?: number; largest?: boolean } = {}): [Tensor, Tensor] {
    const args = [intArg('k', k, { min: 0, max: U32_MAX }), dimArg('dim', o.dim ?? -1), boolArg('largest', o.largest ?? true)] as const
    const [v, i] = native(() => this.native.topk(...args))
    return [wrapT(v), wrapT(i)]
  }

  // ---- shape ----

  reshape(...shape: number[] | [readonly number[]]): Tensor {
    const s = shapeArg('shape', Array.isArray(shape[0]) ? shape[0] : shape, { infer: true })
    return wrapT(native(() => this.native.reshape(s)))
  }
  view(...shape: number[]): Tensor {
    return this.reshape(...shape)
  }
  flatten(): Tensor {
    return this.reshape(-1)
  }
  permute(...dims: number[] | [readonly number[]]): Tensor {
    const d = dimsArg('dims', Array.isArray(dims[0]) ? dims[0] : dims)
    return wrapT(native(() => this.native.permute(d)))
  }
  transpose(a: number, b: number): Tensor {
    return wrapT(native(() => this.native.transpose(dimArg('a', a), dimArg('b', b))))
  }
  /** The transpose of the last two dims. */
  get T(): Tensor {
    return this.transpose(-2, -1)
  }
  unsqueeze(dim: number): Tensor {
    return wrapT(native(() => this.native.unsqueeze(dimArg('dim', dim))))
  }
  squeeze(dim?: number): Tensor {
    return wrapT(native(() => this.native.squeeze(dim === undefined || dim === null ? undefined : dimArg('dim', dim))))
  }

  /** torch's `broadcast_to` / `expand`: size-1 and missing leading dims stretched to `shape`. */
  broadcastTo(shape: readonly number[]): Tensor {
    const shp = shapeArg('shape', shape)
    return wrapT(native(() => this.native.broadcastTo(shp)))
  }

  // ---- linear algebra ----

  /**
   * Thin SVD of a matrix or a batch `[..., m, n]`: `this = U · diag(S) · Vᵀ` with `U: [..., m, k]`,
   * `S: [..., k]` (non-negative, non-increasing), `V: [..., n, k]`, `k = min(m, n)`.
   *
   * `V` is V itself, not Vᴴ: it equals `torch.svd(t).V` and the transpose of the `Vh` of
   * `torch.linalg.svd(t, full_matrices=False)`. Each singular pair is unique only up to sign;
   * here the entry of largest magnitude in each column of `U` is positive (torch makes no such
   * promise, so compare with torch up to sign). Float32 or float64; computed in float64 (faer)
   * and returned in the input dtype. NaN or infinite input is a `TL_INVALID_ARGUMENT` error.
   */
  svd(): { U: Tensor; S: Tensor; V: Tensor } {
    const [U, S, V] = native(() => this.native.svd())
    return { U: wrapT(U), S: wrapT(S), V: wrapT(V) }
  }
  /**
   * Eigenvalues of a square matrix or a batch `[..., n, n]` (as `torch.linalg.eig(t).eigenvalues`),
   * as real and imaginary parts `[..., n]`. A real matrix's complex eigenvalues come in
   * conjugate pairs; the order is not sorted (nor is torch's). Non-square input is
   * `TL_SHAPE_MISMATCH`.
   */
  eigenvalues(): { real: Tensor; imag: Tensor } {
    const [real, imag] = native(() => this.native.eigenvalues())
    return { real: wrapT(real), imag: wrapT(imag) }
  }

  // ---- indexing ----

  /** TL-style indexing over leading dims: `t.get(0, null, [1, 3])` ≙ `t[0, :, 1:3]`. */
  get(...index: IndexEntry[]): Tensor {
    return wrapT(native(() => this.native.index(indexSpec(index))))
  }
  /** A copy with `t[index] = value`: `z.sliceAssign([null, null, 3], 0)` ≙ `z[:, :, 3] = 0`. */
  sliceAssign(index: readonly IndexEntry[], value: Tensor | number): Tensor {
    const spec = indexSpec(index)
    const v = typeof operandArg('value', value) === 'number' ? Tensor.full([], value as number, this.dtype) : (value as Tensor)
    return wrapT(native(() => this.native.sliceAssign(spec, v.native)))
  }
  indexSelect(dim: number, indices: Tensor): Tensor {
    const idx = tensorArg('indices', indices).native
    return wrapT(native(() => this.native.indexSelect(dimArg('dim', dim), idx)))
  }
  gather(dim: number, indices: Tensor): Tensor {
    const idx = tensorArg('indices', indices).native
    return wrapT(native(() => this.native.gather(dimArg('dim', dim), idx)))
  }

  // ---- conversion and lifetime ----

  /**
   * As torch's `.to`: a dtype (`'float16'`) casts, a device (`'cpu'`, `'cuda'`, `'cuda:1'`) moves.
   * Returns this same tensor's data, unshared only when something changed.
   */
  to(target: DType | Device): Tensor {
    stringArg('target', target)
    if (isDeviceName(target)) return wrapT(native(() => this.native.toDevice(target)))
    if (!DTYPES.includes(target as DType)) throw new TransformerLensError('TL_DTYPE', `unknown dtype or device '${target}'`)
    return wrapT(native(() => this.native.toDtype(target)))
  }
  /** This tensor on the GPU (`'cuda'`, or `'cuda:N'` with an index). */
  cuda(index = 0): Tensor {
    intArg('index', index, { min: 0 })
    return this.to(`cuda:${index}`)
  }
  /** This tensor in host memory. */
  cpu(): Tensor {
    return this.to('cpu')
  }
  float(): Tensor {
    return this.to('float32')
  }
  clone(): Tensor {
    return wrapT(native(() => this.native.cloneTensor()))
  }
  /** Frees the native memory now. Using the tensor afterwards throws TL_DISPOSED. */
  dispose(): void {
    this.#n?.dispose()
    this.#n = null
  }
  [Symbol.dispose](): void {
    this.dispose()
  }
  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape}], dtype=${this.dtype})`
  }

  // ---- seeded random tensors (drawn natively from xoshiro256**, see utils/random.ts) ----

  /** Uniform on `[low, high)` (default `[0, 1)`). The same `seed` gives the same values on every platform. */
  static rand(shape: readonly number[], options: RandOptions = {}): Tensor {
    const a = randomArgs(shape, options)
    const low = numberArg('low', options.low ?? 0)
    const high = numberArg('high', options.high ?? 1)
    return wrapT(native(() => binding.tensorRand(a.shape, a.seed, low, high, dtypeArg(a.dtype))))
  }
  /** Normal with `mean` (default 0) and `std` (default 1). The same `seed` gives the same values on every platform. */
  static randn(shape: readonly number[], options: RandnOptions = {}): Tensor {
    const a = randomArgs(shape, options)
    const mean = numberArg('mean', options.mean ?? 0)
    const std = numberArg('std', options.std ?? 1)
    return wrapT(native(() => binding.tensorRandn(a.shape, a.seed, mean, std, dtypeArg(a.dtype))))
  }
}

/** @internal Wraps a native tensor. */
export function wrapT(n: NativeTensor): Tensor {
  return new Tensor(n)
}
