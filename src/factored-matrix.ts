/**
 * TL's `FactoredMatrix`: a matrix kept as the product `A @ B` of two factors, so that low-rank
 * matrices such as a head's `W_Q W_Kᵀ` (d_model × d_model, rank d_head) are never formed unless
 * asked for (`AB`). SVD, norm and eigenvalues are computed from the factors.
 *
 * Leading dims broadcast (`A: [..., ldim, mdim]`, `B: [..., mdim, rdim]`), so one FactoredMatrix
 * holds e.g. every head of every layer (`model.OV`: `[n_layers, n_heads, d_model, d_model]`).
 */
import { TransformerLensError } from './errors'
import { IndexEntry, Tensor } from './tensor'

function shapeError(message: string): TransformerLensError {
  return new TransformerLensError('TL_SHAPE_MISMATCH', message)
}

/** torch.broadcast_shapes for two shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length)
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1
    const y = b[b.length - n + i] ?? 1
    if (x !== y && x !== 1 && y !== 1) throw shapeError(`shapes [${a}] and [${b}] do not broadcast`)
    out.push(x === 1 ? y : x)
  }
  return out
}

/** `t.get(...)` indexing only the last two dims: `lastTwo(t, r, c)` ≙ `t[..., r, c]`. */
function lastTwo(t: Tensor, row: IndexEntry, col: IndexEntry): Tensor {
  return t.get(...new Array<IndexEntry>(t.ndim - 2).fill(null), row, col)
}

/** An int index turned into the one-long range it selects (keeps the dim). */
function keepDim(e: IndexEntry): IndexEntry {
  if (typeof e !== 'number') return e
  // TL writes slice(i, i + 1), which is empty for i = -1; [-1, null] selects the last row.
  return e === -1 ? [-1, null] : [e, e + 1]
}

/** A FactoredMatrix over fresh tensors: they are disposed once the instance holds its own views. */
function fromTemps(A: Tensor, B: Tensor, temps: readonly Tensor[]): FactoredMatrix {
  try {
    return new FactoredMatrix(A, B)
  } finally {
    for (const t of temps) t.dispose()
  }
}

export class FactoredMatrix {
  /** The left factor, broadcast to `[...leading, ldim, mdim]`. */
  readonly A: Tensor
  /** The right factor, broadcast to `[...leading, mdim, rdim]`. */
  readonly B: Tensor
  readonly ldim: number
  readonly mdim: number
  readonly rdim: number
  /** Whether either factor had leading (batch) dims. */
  readonly hasLeadingDims: boolean
  /** `[...leading, ldim, rdim]`: the shape of `AB`. */
  readonly shape: number[]
  #svd: [Tensor, Tensor, Tensor] | null = null

  /** `FactoredMatrix(A, B)` stands for `A @ B`. The factors' handles are not taken over: the instance makes its own views. */
  constructor(A: Tensor, B: Tensor) {
    const [as, bs] = [A.shape, B.shape]
    if (as.length < 2 || bs.length < 2) throw shapeError(`FactoredMatrix factors must be matrices [..., m, n], shapes were a: [${as}], b: [${bs}]`)
    if (as[as.length - 1] !== bs[bs.length - 2]) {
      throw shapeError(`Factored matrix must match on inner dimension, shapes were a: [${as}], b: [${bs}]`)
    }
    this.ldim = as[as.length - 2]
    this.mdim = bs[bs.length - 2]
    this.rdim = bs[bs.length - 1]
    this.hasLeadingDims = as.length > 2 || bs.length > 2
    const lead = broadcastShapes(as.slice(0, -2), bs.slice(0, -2))
    this.shape = [...lead, this.ldim, this.rdim]
    this.A = A.broadcastTo([...lead, this.ldim, this.mdim])
    this.B = B.broadcastTo([...lead, this.mdim, this.rdim])
  }

  get ndim(): number {
    return this.shape.length
  }

  /** `[A, B]`. */
  get pair(): [Tensor, Tensor] {
    return [this.A, this.B]
  }

  // ---- products ----

  /**
   * `this @ other`. A vector (1-D) gives a vector `[..., ldim]`; a matrix `[..., rdim, n]` or a
   * FactoredMatrix gives a FactoredMatrix, multiplied into whichever factor keeps the inner dim
   * small (as TL: into B when `rdim > mdim`, else `AB` becomes the new left factor).
   */
  matmul(other: FactoredMatrix): FactoredMatrix
  matmul(other: Tensor): FactoredMatrix | Tensor
  matmul(other: Tensor | FactoredMatrix): FactoredMatrix | Tensor {
    if (other instanceof FactoredMatrix) {
      const left = this.matmul(other.A) as FactoredMatrix
      const out = left.matmul(other.B) as FactoredMatrix
      left.dispose()
      return out
    }
    if (other.ndim < 2) {
      const col = other.unsqueeze(-1)
      const bx = this.B.matmul(col)
      const abx = this.A.matmul(bx)
      const out = abx.squeeze(-1)
      for (const t of [col, bx, abx]) t.dispose()
      return out
    }
    if (other.size(-2) !== this.rdim) {
      throw shapeError(`Right matrix must match on inner dimension, shapes were self: [${this.shape}], other: [${other.shape}]`)
    }
    if (this.rdim > this.mdim) {
      const b = this.B.matmul(other)
      return fromTemps(this.A, b, [b])
    }
    const ab = this.AB
    return fromTemps(ab, other, [ab])
  }

  /**
   * `other @ this` (Python's `__rmatmul__`). A vector gives a vector `[..., rdim]`; a matrix
   * `[..., n, ldim]` or a FactoredMatrix gives a FactoredMatrix (into A when `ldim > mdim`).
   */
  rmatmul(other: FactoredMatrix): FactoredMatrix
  rmatmul(other: Tensor): FactoredMatrix | Tensor
  rmatmul(other: Tensor | FactoredMatrix): FactoredMatrix | Tensor {
    if (other instanceof FactoredMatrix) {
      const right = this.rmatmul(other.B) as FactoredMatrix
      const out = right.rmatmul(other.A) as FactoredMatrix
      right.dispose()
      return out
    }
    if (other.size(-1) !== this.ldim) {
      throw shapeError(`Left matrix must match on inner dimension, shapes were self: [${this.shape}], other: [${other.shape}]`)
    }
    if (other.ndim < 2) {
      const row = other.unsqueeze(-2)
      const xa = row.matmul(this.A)
      const xab = xa.matmul(this.B)
      const out = xab.squeeze(-2)
      for (const t of [row, xa, xab]) t.dispose()
      return out
    }
    if (this.ldim > this.mdim) {
      const a = other.matmul(this.A)
      return fromTemps(a, this.B, [a])
    }
    const ab = this.AB
    return fromTemps(other, ab, [ab])
  }

  /** Scalar multiple (a number or a one-element Tensor), applied to A. Python's `*` on either side. */
  mul(scalar: number | Tensor): FactoredMatrix {
    if (typeof scalar !== 'number' && scalar.numel() !== 1) {
      throw shapeError(`Tensor must be a scalar for use with * but was of shape [${scalar.shape}]. For matrix multiplication, use matmul instead.`)
    }
    const a = this.A.mul(scalar)
    return fromTemps(a, this.B, [a])
  }

  /** The product `A @ B` `[..., ldim, rdim]` (the full matrix: can be big). */
  get AB(): Tensor {
    return this.A.matmul(this.B)
  }

  /** The reverse product `B @ A` `[..., rdim, ldim]`; needs `ldim == rdim`. */
  get BA(): Tensor {
    if (this.rdim !== this.ldim) throw shapeError(`Can only take BA if ldim==rdim, shapes were self: [${this.shape}]`)
    return this.B.matmul(this.A)
  }

  /** The transpose `Bᵀ Aᵀ`. */
  get T(): FactoredMatrix {
    const [bt, at] = [this.B.T, this.A.T]
    return fromTemps(bt, at, [bt, at])
  }

  // ---- spectra ----

  /**
   * TL's SVD of `AB` from the factors: `[U, S, Vh]` with `U: [..., ldim, k]`, `S: [..., k]`,
   * `Vh: [..., rdim, k]` and `AB = U · diag(S) · Vhᵀ`.
   *
   * As in TL, the third tensor is named `Vh` but is **V** (right singular vectors as columns),
   * not Vᴴ: transpose it to get torch.linalg's `Vh`. `V` is the same tensor under an honest name.
   * Singular vectors are unique only up to sign. Computed once, then cached.
   */
  svd(): [Tensor, Tensor, Tensor] {
    if (this.#svd) return this.#svd
    const a = this.A.svd()
    const b = this.B.svd()
    // The SVD of AB = Ua (Sa Vaᵀ Ub Sb) Vbᵀ goes through the small middle matrix.
    const left = a.S.unsqueeze(-1).mul(a.V.T)
    const mid = left.matmul(b.U)
    const middle = mid.mul(b.S.unsqueeze(-2))
    const m = middle.svd()
    const out: [Tensor, Tensor, Tensor] = [a.U.matmul(m.U), m.S, b.V.matmul(m.V)]
    for (const t of [a.U, a.S, a.V, b.U, b.S, b.V, left, mid, middle, m.U, m.V]) t.dispose()
    this.#svd = out
    return out
  }
  /** Left singular vectors `[..., ldim, k]`. */
  get U(): Tensor {
    return this.svd()[0]
  }
  /** Singular values `[..., k]`, non-increasing. */
  get S(): Tensor {
    return this.svd()[1]
  }
  /** TL's name for the right singular vectors `[..., rdim, k]`: this is V, not Vᴴ (see `svd()`). */
  get Vh(): Tensor {
    return this.svd()[2]
  }
  /** The right singular vectors `[..., rdim, k]` (the same tensor as `Vh`). */
  get V(): Tensor {
    return this.svd()[2]
  }

  /**
   * Eigenvalues of `BA` `[..., mdim]` (the non-zero eigenvalues of `AB`), as real and imaginary
   * parts; needs `ldim == rdim`. Unsorted; complex ones come in conjugate pairs.
   */
  get eigenvalues(): { real: Tensor; imag: Tensor } {
    const ba = this.BA
    const e = ba.eigenvalues()
    ba.dispose()
    return e
  }

  /** Frobenius norm `[...leading]`: the root of the sum of squared singular values. */
  norm(): Tensor {
    const sq = this.S.square()
    const sum = sq.sum(-1)
    const out = sum.sqrt()
    sq.dispose()
    sum.dispose()
    return out
  }

  /** The same matrix as `(U √S)(√S Vᵀ)`: balanced factors with orthogonal columns / rows. */
  makeEven(): FactoredMatrix {
    const root = this.S.sqrt()
    const [r1, r2, vt] = [root.unsqueeze(-2), root.unsqueeze(-1), this.V.T]
    const [a, b] = [this.U.mul(r1), r2.mul(vt)]
    return fromTemps(a, b, [root, r1, r2, vt, a, b])
  }

  /** `S Vᵀ` `[..., k, rdim]`: the left orthogonal factor U removed. */
  collapseL(): Tensor {
    const s = this.S.unsqueeze(-1)
    const vt = this.V.T
    const out = s.mul(vt)
    s.dispose()
    vt.dispose()
    return out
  }

  /** `U S` `[..., ldim, k]`: the right orthogonal factor V removed. */
  collapseR(): Tensor {
    const s = this.S.unsqueeze(-2)
    const out = this.U.mul(s)
    s.dispose()
    return out
  }

  // ---- shape ----

  /** Adds a dim of size 1 at `k` in both factors (use `k` within the leading dims). */
  unsqueeze(k: number): FactoredMatrix {
    const [a, b] = [this.A.unsqueeze(k), this.B.unsqueeze(k)]
    return fromTemps(a, b, [a, b])
  }

  /**
   * TL's `fm[idx]`: indexes the leading dims, and with one or two more entries the rows
   * (`ldim`) and columns (`rdim`) of the product. Row and column entries never collapse a dim
   * (an int `i` selects `[i, i + 1]`), so the result is always a FactoredMatrix.
   */
  get(...idx: IndexEntry[]): FactoredMatrix {
    const n = this.ndim
    let a: Tensor, b: Tensor
    if (idx.length <= n - 2) {
      ;[a, b] = [this.A.get(...idx), this.B.get(...idx)]
    } else if (idx.length === n - 1) {
      const i = [...idx.slice(0, -1), keepDim(idx[n - 2])]
      ;[a, b] = [this.A.get(...i), this.B.get(...i.slice(0, -1))]
    } else if (idx.length === n) {
      const i = [...idx.slice(0, -2), keepDim(idx[n - 2]), keepDim(idx[n - 1])]
      ;[a, b] = [this.A.get(...i.slice(0, -1)), this.B.get(...i.slice(0, -2), null, i[n - 1])]
    } else {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `${JSON.stringify(idx)} is too long an index for a FactoredMatrix with shape [${this.shape}]`)
    }
    return fromTemps(a, b, [a, b])
  }

  /** The top-left `k`×`k` corner of `AB` (and of each leading dim), computed from the corner rows/cols only. */
  getCorner(k = 3): Tensor {
    const a = lastTwo(this.A, [0, k], null)
    const b = lastTwo(this.B, null, [0, k])
    const ab = a.matmul(b)
    const out = ab.get(...new Array<IndexEntry>(ab.ndim).fill([0, k]))
    for (const t of [a, b, ab]) t.dispose()
    return out
  }

  /** Frees the factors and the cached SVD now. */
  dispose(): void {
    this.A.dispose()
    this.B.dispose()
    this.#svd?.forEach((t) => t.dispose())
    this.#svd = null
  }
  [Symbol.dispose](): void {
    this.dispose()
  }

  toString(): string {
    return `FactoredMatrix: Shape([${this.shape.join(', ')}]), Hidden Dim(${this.mdim})`
  }
}
