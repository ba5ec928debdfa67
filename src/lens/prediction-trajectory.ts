import type { ActivationCache } from '../cache/activation-cache'
import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { opt } from '../model/options'
import type { TokenizerView } from '../model/tokenizer'
import { Tensor } from '../tensor'
import { boolArg, enumArg, invalidArg } from '../utils/args'
import { withScope } from '../utils/scope'
import { Slice, SliceInput } from '../utils/slice'
import type { Lens } from './lenses'
import { DeltaLabelOptions, LabelContext, largestDeltaLabels, largestProbLabels, ProbLabelOptions, sequenceLabels } from './trajectory-labels'
import { TrajectoryLabels, TrajectoryStatistic } from './trajectory-statistic'
import * as S from './trajectory-stats'

/** tuned-lens's `ResidualComponent`: which cached stream each layer's lens reads. */
export type ResidualComponent = 'resid_pre' | 'resid_mid' | 'resid_post' | 'attn_out' | 'mlp_out'
const COMPONENTS: readonly ResidualComponent[] = ['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out']

type Ids = Tensor | readonly number[]

export interface PredictionTrajectoryOptions {
  /** `(..., seq_len)` the tokens the model should predict (for `crossEntropy`, `rank`, `logProbDiff`). */
  targets?: Ids | null
  /** `(..., seq_len)` tokens the model should not predict (for `logProbDiff`). */
  antiTargets?: Ids | null
  /** Turns ids into the labels of statistics; without one, statistics have no labels. */
  tokenizer?: TokenizerView | null
}

export interface FromLensAndCacheOptions {
  targets?: Ids | null
  antiTargets?: Ids | null
  /** The stream each layer's lens reads (default 'resid_pre', HF's hidden states). */
  residualComponent?: ResidualComponent
  /** Give every token of `inputIds` a logit of `-float32 max` in the lens's predictions (not the model's). */
  maskInput?: boolean
}

/** `ids` as an int64 Tensor (a copy the caller of this helper owns). */
function idsTensor(name: string, ids: Ids): Tensor {
  if (ids instanceof Tensor) {
    if (ids.isFloatingPoint()) throw new TransformerLensError('TL_DTYPE', `${name} must hold integer token ids, got ${ids.dtype}`)
    return ids.to('int64').get()
  }
  if (!Array.isArray(ids) || ids.some((v) => !Number.isInteger(v))) throw invalidArg(name, 'a Tensor or an array of integer token ids', ids)
  return Tensor.from(BigInt64Array.from(ids, (v) => BigInt(v)), [ids.length])
}

/**
 * tuned-lens's `PredictionTrajectory`: the next-token predictions (log-probabilities) a lens
 * makes from each layer of a model, plus the model's own, over a sequence or a batch of them,
 * `logProbs: [..., n_layers + 1, seq_len, d_vocab]`. Its statistics (`entropy`, `forwardKl`,
 * `crossEntropy`, `maxProbability`, `rank`, `logProbDiff`, `klDivergence`, `jsDivergence`,
 * `totalVariation`) are `TrajectoryStatistic`s, averaged over batch axes, ready to draw with
 * `heatmap()`. Everything over the vocabulary is computed natively; only `[layers, positions]`
 * numbers and top-k labels come to JS.
 *
 * Two of tuned-lens's statistics are not their textbook namesakes, and are kept as tuned-lens
 * computes them: its "JS divergence" is the symmetrised KL, `½·KL(p‖q) + ½·KL(q‖p)`, and its
 * "total variation" is the largest change of one token's probability, `max |p − q|`. Pass
 * `{ textbook: true }` for the Jensen–Shannon divergence `½·KL(p‖m) + ½·KL(q‖m)` (m = (p+q)/2)
 * and the total variation distance `½·Σ|p − q|`.
 *
 * The trajectory owns its tensors: `dispose()` frees them.
 */
export class PredictionTrajectory {
  #lp: Tensor
  #ids: Tensor
  #targets: Tensor | null
  #anti: Tensor | null
  readonly #batchShape: number[]
  readonly tokenizer: TokenizerView | null

  /**
   * A trajectory from log-probs `[..., n_layers + 1, seq_len, d_vocab]` (the model's output as
   * the last layer) and `inputIds` `[..., seq_len]`. The tensors are the caller's: the
   * trajectory keeps its own handles.
   */
  constructor(logProbs: Tensor, inputIds: Ids, options: PredictionTrajectoryOptions = {}) {
    if (!(logProbs instanceof Tensor) || logProbs.ndim < 3) throw invalidArg('logProbs', 'a [..., layers, seq_len, vocab] Tensor', logProbs)
    const shape = logProbs.shape
    const batch = shape.slice(0, -3)
    const [l1, s, v] = shape.slice(-3)
    const n = batch.reduce((a, b) => a * b, 1)
    const owned: Tensor[] = []
    try {
      const ids = owned[owned.push(idsTensor('inputIds', inputIds)) - 1]
      const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i])
      if (!same(ids.shape, [...batch, s])) {
        throw new TransformerLensError('TL_SHAPE_MISMATCH', `inputIds has shape [${ids.shape}], logProbs [${shape}] needs [${[...batch, s]}]`)
      }
      const ids2 = (name: string, t: Ids | null | undefined) => {
        if (t === undefined || t === null) return null
        const x = owned[owned.push(idsTensor(name, t)) - 1]
        if (!same(x.shape, ids.shape)) throw new TransformerLensError('TL_SHAPE_MISMATCH', `${name} has shape [${x.shape}], inputIds [${ids.shape}]`)
        return x.reshape([n, s])
      }
      this.#targets = ids2('targets', opt(options, 'targets', null))
      this.#anti = ids2('antiTargets', opt(options, 'antiTargets', null))
      this.#ids = ids.reshape([n, s])
      this.#lp = logProbs.reshape([n, l1, s, v])
    } finally {
      for (const t of owned) t.dispose()
    }
    this.#batchShape = batch
    this.tokenizer = opt<TokenizerView | null>(options, 'tokenizer', null)
  }

  /**
   * tuned-lens's `from_lens_and_cache`: the lens applied to each layer's `residualComponent`
   * (`resid_pre` by default, HF's hidden states) in `cache` (from `model.runWithCache`), and the
   * model's `modelLogits` as the last layer. `inputIds` `[..., seq_len]` are the tokens the
   * model ran on. For a lens trained on HF hidden states, run a model loaded with
   * `fromPretrainedNoProcessing`.
   */
  static fromLensAndCache(lens: Lens, inputIds: Ids, cache: ActivationCache, modelLogits: Tensor, options: FromLensAndCacheOptions = {}): PredictionTrajectory {
    const component = enumArg('residualComponent', opt(options, 'residualComponent', 'resid_pre'), COMPONENTS)
    const maskInput = boolArg('maskInput', opt(options, 'maskInput', false))
    if (!(modelLogits instanceof Tensor)) throw invalidArg('modelLogits', 'a Tensor', modelLogits)
    return withScope((s) => {
      const ids = s.keep(idsTensor('inputIds', inputIds))
      const seq = ids.shape[ids.ndim - 1]
      const vocab = modelLogits.shape[modelLogits.ndim - 1]
      let mask: Tensor | null = null
      if (maskInput) {
        // Every vocabulary id that occurs anywhere in inputIds (tuned-lens's `logits[..., input_ids]`).
        const hits = s.keep(s.keep(Tensor.arange(0, vocab).unsqueeze(0)).eq(s.keep(ids.reshape([-1, 1]))))
        mask = s.keep(s.keep(hits.to('float32')).max(0))
      }
      const layers: Tensor[] = []
      for (let l = 0; l < cache.model.cfg.n_layers; l++) {
        const hidden = cache.get(component, l)
        if (hidden.shape[hidden.ndim - 2] !== seq) {
          throw new TransformerLensError('TL_SHAPE_MISMATCH', `Length of input ids ${seq} does not match cache sequence length ${hidden.shape[hidden.ndim - 2]}.`)
        }
        let logits = s.keep(lens.forward(hidden, l))
        if (mask !== null) logits = s.keep(mask.where(-3.4028234663852886e38, logits))
        layers.push(s.keep(s.keep(logits.logSoftmax(-1)).unsqueeze(-3)))
      }
      layers.push(s.keep(s.keep(modelLogits.logSoftmax(-1)).unsqueeze(-3)))
      const lp = s.keep(Tensor.cat(layers, -3))
      return new PredictionTrajectory(lp, ids, {
        targets: opt(options, 'targets', null),
        antiTargets: opt(options, 'antiTargets', null),
        tokenizer: cache.model.tokenizer,
      })
    })
  }

  /**
   * tuned-lens's `from_lens_and_model`: runs `model` on one sequence `inputIds` (`[seq_len]`)
   * and builds the trajectory from its `residualComponent` stream (no batch axis).
   */
  static async fromLensAndModel(lens: Lens, model: HookedTransformer, inputIds: Ids, options: FromLensAndCacheOptions = {}): Promise<PredictionTrajectory> {
    const component = enumArg('residualComponent', opt(options, 'residualComponent', 'resid_pre'), COMPONENTS)
    const ids = idsTensor('inputIds', inputIds)
    try {
      if (ids.ndim !== 1) throw new TransformerLensError('TL_SHAPE_MISMATCH', `fromLensAndModel takes one sequence [seq_len], got [${ids.shape}]`)
      const tokens = ids.unsqueeze(0)
      const suffix = `.hook_${component}`
      const [logits, cache] = await model.runWithCache(tokens, { namesFilter: (name: string) => name.endsWith(suffix) })
      tokens.dispose()
      try {
        cache.removeBatchDim()
        const l0 = logits.get(0)
        try {
          return PredictionTrajectory.fromLensAndCache(lens, ids, cache, l0, options)
        } finally {
          l0.dispose()
        }
      } finally {
        logits.dispose()
        cache.dispose()
      }
    } finally {
      ids.dispose()
    }
  }

  // ---- shape ----

  get #native(): Tensor {
    if (this.#lp.disposed) throw new TransformerLensError('TL_DISPOSED', 'this prediction trajectory was disposed')
    return this.#lp
  }
  /** The batch shape (`[]` for one sequence). */
  get batchShape(): number[] {
    return [...this.#batchShape]
  }
  get nBatchAxis(): number {
    return this.#batchShape.length
  }
  /** Layers, not counting the model's output. */
  get numLayers(): number {
    return this.#native.shape[1] - 1
  }
  get numTokens(): number {
    return this.#native.shape[2]
  }
  get vocabSize(): number {
    return this.#native.shape[3]
  }

  #outer(t: Tensor, tail: readonly number[]): Tensor {
    return t.reshape([...this.#batchShape, ...tail])
  }
  /** `[..., n_layers + 1, seq_len, d_vocab]` (a new handle, the caller's to dispose). */
  get logProbs(): Tensor {
    return this.#outer(this.#native, this.#native.shape.slice(1))
  }
  /** `exp(logProbs)`. */
  get probs(): Tensor {
    return withScope((s) => this.#outer(s.keep(this.#native.exp()), this.#native.shape.slice(1)))
  }
  /** The model's log-probs `[..., seq_len, d_vocab]`. */
  get modelLogProbs(): Tensor {
    return withScope((s) => this.#outer(s.keep(this.#native.get(null, -1)), this.#native.shape.slice(2)))
  }
  /** `[..., seq_len]` int64 (new handles). */
  get inputIds(): Tensor {
    return this.#outer(this.#ids, [this.numTokens])
  }
  get targets(): Tensor | null {
    return this.#targets === null ? null : this.#outer(this.#targets, [this.numTokens])
  }
  get antiTargets(): Tensor | null {
    return this.#anti === null ? null : this.#outer(this.#anti, [this.numTokens])
  }

  /** tuned-lens's `slice_sequence`: the trajectory over some positions (`[start, stop]`, `[start, stop, step]`, `{ indices }`). */
  sliceSequence(slice: Slice | SliceInput): PredictionTrajectory {
    const sl = Slice.from(slice)
    if (sl.mode === 'int') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'sliceSequence takes a range of positions ([start, stop]), not one index')
    return withScope((s) => {
      const cut = (t: Tensor | null, dim: number) => {
        if (t === null) return null
        const part = s.keep(sl.apply(t, dim))
        return s.keep(this.#outer(part, [part.shape[1]]))
      }
      const lp = s.keep(sl.apply(this.#native, 2))
      const outer = s.keep(lp.reshape([...this.#batchShape, ...lp.shape.slice(1)]))
      return new PredictionTrajectory(outer, cut(this.#ids, 1)!, { targets: cut(this.#targets, 1), antiTargets: cut(this.#anti, 1), tokenizer: this.tokenizer })
    })
  }

  // ---- labels ----

  #context(): LabelContext | null {
    if (this.tokenizer === null) return null
    const [n, layers, positions] = this.#native.shape
    return { tokenizer: this.tokenizer, nBatchAxes: this.nBatchAxis, n, layers, positions }
  }
  #sequenceLabels(): string[] | null {
    const ctx = this.#context()
    return ctx === null ? null : sequenceLabels(ctx, this.#ids.toArray() as BigInt64Array)
  }
  #probLabels(o: ProbLabelOptions): TrajectoryLabels | null {
    const ctx = this.#context()
    return ctx === null ? null : largestProbLabels(ctx, this.#native, o)
  }
  #deltaLabels(other: PredictionTrajectory, o: DeltaLabelOptions): TrajectoryLabels | null {
    const ctx = this.#context()
    return ctx === null ? null : largestDeltaLabels(ctx, this.#native, other.#native, o)
  }

  #stat(name: string, units: string, values: Tensor, labels: TrajectoryLabels | null, extra: { min?: number | null; max?: number | null; includesOutput?: boolean } = {}): TrajectoryStatistic {
    const stats = S.batchMean(values, this.nBatchAxis > 0)
    values.dispose()
    return new TrajectoryStatistic({ name, units, stats, trajectoryLabels: labels, sequenceLabels: this.#sequenceLabels(), ...extra })
  }

  #need(what: string, ...ts: (Tensor | null)[]): Tensor[] {
    if (ts.some((t) => t === null)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `Cannot compute ${what}.`)
    return ts as Tensor[]
  }

  #other(other: PredictionTrajectory): PredictionTrajectory {
    if (!(other instanceof PredictionTrajectory)) throw invalidArg('other', 'a PredictionTrajectory', other)
    const a = this.#native.shape
    const b = other.#native.shape
    if (a.some((d, i) => d !== b[i])) throw new TransformerLensError('TL_SHAPE_MISMATCH', `the trajectories differ in shape: [${a}] and [${b}]`)
    return other
  }

  // ---- statistics ----

  /** Entropy of each prediction (nats). */
  entropy(options: ProbLabelOptions = {}): TrajectoryStatistic {
    return this.#stat('Entropy', 'nats', S.entropy(this.#native), this.#probLabels(options))
  }

  /** KL(model ‖ lens) of each layer's prediction from the model's output (nats). */
  forwardKl(options: ProbLabelOptions = {}): TrajectoryStatistic {
    return this.#stat('Forward KL', 'nats', S.forwardKl(this.#native), this.#probLabels(options))
  }

  /** Cross-entropy of the predictions against `targets` (nats). */
  crossEntropy(options: ProbLabelOptions = {}): TrajectoryStatistic {
    const [t] = this.#need('cross entropy without targets', this.#targets)
    return this.#stat('Cross Entropy', 'nats', S.crossEntropy(this.#native, t), this.#probLabels(options))
  }

  /**
   * The rank of the target among the predictions (1 = most likely), counted as 1 + the number of
   * tokens more likely than the target (tuned-lens's double argsort breaks exact ties by index).
   * With `showRanks`, the labels are the ranks instead of the top tokens.
   */
  rank(options: ProbLabelOptions & { showRanks?: boolean } = {}): TrajectoryStatistic {
    const [t] = this.#need('rank without targets', this.#targets)
    const show = boolArg('showRanks', opt(options, 'showRanks', false))
    const st = this.#stat('Rank', '', S.rank(this.#native, t), this.#probLabels(options), {
      min: 1,
      max: this.tokenizer === null ? null : this.tokenizer.baseVocabSize,
    })
    if (!show || st.trajectoryLabels === null) return st
    const labels = new TrajectoryLabels(st.stats.map((r) => r.map((v) => String(Math.trunc(v)))), st.trajectoryLabels.hoverOverEntries)
    return new TrajectoryStatistic({ ...st, trajectoryLabels: labels })
  }

  /** Largest probability of each prediction. */
  maxProbability(options: ProbLabelOptions = {}): TrajectoryStatistic {
    return this.#stat('Max Probability', 'probs', S.maxProbability(this.#native), this.#probLabels(options))
  }

  /**
   * log p(target) − log p(antiTarget) per layer; with `delta`, its change from each layer to the
   * next (one row fewer, no output row). No labels, as tuned-lens.
   */
  logProbDiff(options: { delta?: boolean } = {}): TrajectoryStatistic {
    const delta = boolArg('delta', opt(options, 'delta', false))
    const [t, a] = this.#need('log prob diff without targets and anti_targets', this.#targets, this.#anti)
    return this.#stat(delta ? 'Δ Log Prob Difference' : 'Log Prob Difference', 'nats', S.logProbDiff(this.#native, t, a, delta), null, { includesOutput: !delta })
  }

  /** KL(self ‖ other) per layer and position (nats), labelled by the largest changes in probability. */
  klDivergence(other: PredictionTrajectory, options: DeltaLabelOptions = {}): TrajectoryStatistic {
    const o = this.#other(other)
    return this.#stat('KL(Self | Other)', 'nats', S.kl(this.#native, o.#native), this.#deltaLabels(o, options), { min: 0, max: null })
  }

  /**
   * tuned-lens's "JS divergence", which is the symmetrised KL `½·KL(p‖q) + ½·KL(q‖p)` (nats); with
   * `textbook: true` the Jensen–Shannon divergence `½·KL(p‖m) + ½·KL(q‖m)`, m = (p+q)/2 (at most ln 2).
   */
  jsDivergence(other: PredictionTrajectory, options: DeltaLabelOptions & { textbook?: boolean } = {}): TrajectoryStatistic {
    const o = this.#other(other)
    const textbook = boolArg('textbook', opt(options, 'textbook', false))
    const values = textbook ? S.jensenShannon(this.#native, o.#native) : S.symmetrisedKl(this.#native, o.#native)
    return this.#stat(textbook ? 'Jensen-Shannon(Self | Other)' : 'JS(Self | Other)', 'nats', values, this.#deltaLabels(o, options), {
      min: 0,
      max: textbook ? Math.LN2 : null,
    })
  }

  /**
   * tuned-lens's "total variation", which is `max |p − q|`, the largest change of one token's
   * probability; with `textbook: true` the total variation distance `½·Σ|p − q|`. Both in [0, 1].
   */
  totalVariation(other: PredictionTrajectory, options: DeltaLabelOptions & { textbook?: boolean } = {}): TrajectoryStatistic {
    const o = this.#other(other)
    const textbook = boolArg('textbook', opt(options, 'textbook', false))
    const values = S.totalVariation(this.#native, o.#native, textbook)
    return this.#stat(textbook ? 'Total Variation(Self | Other)' : 'TV(Self | Other)', 'probs', values, this.#deltaLabels(o, options), { min: 0, max: 1 })
  }

  /** Frees the trajectory's tensors. */
  dispose(): void {
    for (const t of [this.#lp, this.#ids, this.#targets, this.#anti]) t?.dispose()
  }
  [Symbol.dispose](): void {
    this.dispose()
  }
}
