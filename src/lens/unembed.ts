import { createHash } from 'node:crypto'

import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { param } from '../model/weights'
import { Tensor } from '../tensor'
import { invalidArg, numberArg } from '../utils/args'
import { withScope } from '../utils/scope'
import { arrayStrOf, printedIndices } from './numpy-format'

/** TL's `normalization_type` of the final norm (`null`: no final norm). */
export type NormalizationType = 'LN' | 'LNPre' | 'RMS' | 'RMSPre' | null

const NORMS: readonly NormalizationType[] = ['LN', 'LNPre', 'RMS', 'RMSPre', null]

/** The parts of an `Unembed`: the final norm (kind, eps, weights) and the unembedding. */
export interface UnembedParts {
  normalizationType: NormalizationType
  /** The norm's epsilon (TL's `cfg.eps`). */
  eps: number
  /** The norm's weight `[d_model]` (LN and RMS; Gemma's `+1` already in it, as TL stores it). */
  normWeight?: Tensor | null
  /** The norm's bias `[d_model]` (LN only). */
  normBias?: Tensor | null
  /** `[d_model, d_vocab]`, TL's layout. */
  W_U: Tensor
  /** `[d_vocab]` */
  b_U?: Tensor | null
}

/**
 * tuned-lens's `Unembed`: the model's final norm, then its unembedding (`W_U`, `b_U`), mapping
 * residual-stream vectors `[..., d_model]` to logits `[..., d_vocab]`.
 *
 * For a HookedTransformer (`Unembed.fromModel`) these are TL's `ln_final` (LayerNorm,
 * LayerNormPre, RMSNorm or RMSNormPre, as `cfg.normalization_type` says, with `cfg.eps`) and
 * `unembed`, as tuned-lens builds it from a TL model. A model whose final norm was folded
 * (`fromPretrained`'s default) has `LNPre` / `RMSPre` here, which gives the same logits on the
 * model's own residual stream; a lens trained on HF hidden states needs the unprocessed model
 * (`HookedTransformer.fromPretrainedNoProcessing`).
 *
 * The Unembed owns its tensors (views of the model's weights, no copy): `dispose()` frees them.
 */
export class Unembed {
  readonly normalizationType: NormalizationType
  readonly eps: number
  readonly normWeight: Tensor | null
  readonly normBias: Tensor | null
  /** `[d_model, d_vocab]` */
  readonly W_U: Tensor
  /** `[d_vocab]`, or null when the unembedding has no bias. */
  readonly b_U: Tensor | null
  #hash: string | undefined

  constructor(parts: UnembedParts) {
    if (!NORMS.includes(parts.normalizationType)) throw invalidArg('normalizationType', "'LN', 'LNPre', 'RMS', 'RMSPre' or null", parts.normalizationType)
    if (!(parts.W_U instanceof Tensor) || parts.W_U.ndim !== 2) throw invalidArg('W_U', 'a [d_model, d_vocab] Tensor', parts.W_U)
    this.normalizationType = parts.normalizationType
    this.eps = numberArg('eps', parts.eps, { finite: true })
    this.W_U = parts.W_U
    this.b_U = parts.b_U ?? null
    this.normWeight = parts.normWeight ?? null
    this.normBias = parts.normBias ?? null
    const [d, v] = this.W_U.shape
    const want = (name: string, t: Tensor | null, n: number, needed: boolean) => {
      if (t === null) {
        if (needed) throw new TransformerLensError('TL_MISSING_WEIGHT', `a ${this.normalizationType} final norm needs ${name}`)
        return
      }
      if (!(t instanceof Tensor) || t.ndim !== 1 || t.shape[0] !== n) {
        throw new TransformerLensError('TL_SHAPE_MISMATCH', `${name} must be a [${n}] Tensor, got ${t instanceof Tensor ? `[${t.shape}]` : typeof t}`)
      }
    }
    const type = this.normalizationType
    want('normWeight', this.normWeight, d, type === 'LN' || type === 'RMS')
    want('normBias', this.normBias, d, type === 'LN')
    want('b_U', this.b_U, v, false)
  }

  /** tuned-lens's `Unembed(model)` for a HookedTransformer: its `ln_final` and `unembed` weights. */
  static fromModel(model: HookedTransformer): Unembed {
    const cfg = model.cfg
    const type = (cfg.normalization_type ?? null) as NormalizationType
    const W_U = param(model, 'unembed.W_U')
    if (W_U === null) throw new TransformerLensError('TL_MISSING_WEIGHT', "this model has no weight 'unembed.W_U'")
    return new Unembed({
      normalizationType: type,
      eps: typeof cfg.eps === 'number' ? cfg.eps : 1e-5,
      normWeight: type === 'LN' || type === 'RMS' ? param(model, 'ln_final.w') : null,
      normBias: type === 'LN' ? param(model, 'ln_final.b') : null,
      W_U,
      b_U: param(model, 'unembed.b_U'),
    })
  }

  get dModel(): number {
    return this.W_U.shape[0]
  }
  get dVocab(): number {
    return this.W_U.shape[1]
  }

  /** The final norm alone (TL's `ln_final`), computed in float32 for half-precision input, as TL. */
  finalNorm(h: Tensor): Tensor {
    if (!(h instanceof Tensor)) throw invalidArg('h', 'a Tensor', h)
    if (h.shape[h.ndim - 1] !== this.dModel) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `hidden states must end in d_model = ${this.dModel}, got [${h.shape}]`)
    }
    const type = this.normalizationType
    if (type === null) return h.clone()
    return withScope((s) => {
      let x = h.dtype === 'float32' || h.dtype === 'float64' ? h : s.keep(h.to('float32'))
      if (type === 'LN' || type === 'LNPre') x = s.keep(x.sub(s.keep(x.mean(-1, { keepdim: true }))))
      const scale = s.keep(s.keep(s.keep(s.keep(x.square()).mean(-1, { keepdim: true })).add(this.eps)).sqrt())
      const normed = x.div(scale)
      if (type === 'LNPre' || type === 'RMSPre') return normed
      s.keep(normed)
      const scaled = normed.mul(this.normWeight!)
      if (type === 'RMS') return scaled
      s.keep(scaled)
      return scaled.add(this.normBias!)
    })
  }

  /** Logits `[..., d_vocab]` of hidden states `[..., d_model]`: `W_U(norm(h)) + b_U`. */
  forward(h: Tensor): Tensor {
    return withScope((s) => {
      let x = s.keep(this.finalNorm(h))
      if (x.dtype !== this.W_U.dtype) x = s.keep(x.to(this.W_U.dtype))
      const logits = x.matmul(this.W_U)
      if (this.b_U === null) return logits
      s.keep(logits)
      return logits.add(this.b_U)
    })
  }

  /**
   * tuned-lens's `unembedding_hash()`: sha256 of `np.array_str(W, precision=1)` where `W` is the
   * unembedding as an `nn.Linear` weight (`W_U` transposed, `[d_vocab, d_model]`) in float32.
   * Only the printed corner (at most 6 × 6 values) is read from the tensor.
   */
  unembeddingHash(): string {
    if (this.#hash !== undefined) return this.#hash
    const [d, v] = this.W_U.shape
    const size = d * v
    const rows = printedIndices(v, size)
    const cols = printedIndices(d, size)
    const corner = withScope((s) => {
      const idx = (ix: number[]) => s.keep(Tensor.from(BigInt64Array.from(ix.map(BigInt)), [ix.length]))
      const wt = s.keep(s.keep(s.keep(this.W_U.indexSelect(1, idx(rows))).indexSelect(0, idx(cols))).to('float32'))
      return wt.toArray() as Float32Array // [cols.length (d), rows.length (v)]
    })
    const rowAt = new Map(rows.map((r, i) => [r, i]))
    const colAt = new Map(cols.map((c, i) => [c, i]))
    const text = arrayStrOf(([r, c]) => corner[colAt.get(c)! * rows.length + rowAt.get(r)!], [v, d], 1)
    this.#hash = createHash('sha256').update(text).digest('hex')
    return this.#hash
  }

  /** Frees the tensors. */
  dispose(): void {
    for (const t of [this.W_U, this.b_U, this.normWeight, this.normBias]) t?.dispose()
  }
  [Symbol.dispose](): void {
    this.dispose()
  }
}
