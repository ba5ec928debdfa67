/**
 * The labels of a prediction trajectory's statistics, as tuned-lens 0.2.0 makes them
 * (`_largest_prob_labels`, `_largest_delta_in_prob_labels`, `_get_sequence_labels`): the top-k
 * tokens of each cell are found natively (`topk` over the vocabulary); only those k ids and
 * values per cell come to JS to become strings.
 * @internal
 */
import { TransformerLensError } from '../errors'
import { opt } from '../model/options'
import type { TokenizerView } from '../model/tokenizer'
import { Tensor } from '../tensor'
import { intArg, invalidArg, numberArg } from '../utils/args'
import { withScope } from '../utils/scope'
import { formatFixed } from './numpy-format'
import { TokenFormatter } from './token-formatter'
import { TrajectoryLabels } from './trajectory-statistic'

/** tuned-lens's `largest_prob_labels` keyword arguments (snake_case accepted). */
export interface ProbLabelOptions {
  formatter?: TokenFormatter
  /**
   * Labels are shown only if every cell's top probability (over the whole batch) is above this
   * (default 0). As tuned-lens: one cell at or below it blanks every label.
   */
  minProb?: number
  /** Tokens per cell in the hover table (default 10). */
  topk?: number
  /** Batch entries shown in the hover table (default 3). */
  maxEntriesToShow?: number
}

/** tuned-lens's `largest_delta_in_prob_labels` keyword arguments (snake_case accepted). */
export interface DeltaLabelOptions {
  formatter?: TokenFormatter
  /** Accepted and, as in tuned-lens 0.2.0, without effect (its filtered labels are overwritten). */
  minProbDelta?: number
  topk?: number
  maxEntriesToShow?: number
}

/** What the labels need to know about the trajectory. */
export interface LabelContext {
  tokenizer: TokenizerView
  /** Number of batch axes (0 for a single sequence). */
  nBatchAxes: number
  /** Flattened batch size N (1 without batch axes). */
  n: number
  /** Layers including the output row. */
  layers: number
  positions: number
}

/** `ids` (any shape, flat) → formatted vocabulary entries, each distinct id looked up once. */
export function formatIds(tokenizer: TokenizerView, ids: ArrayLike<number | bigint>, formatter: TokenFormatter): string[] {
  const nums = Array.from(ids, Number)
  const distinct = [...new Set(nums)]
  const valid = distinct.filter((i) => Number.isInteger(i) && i >= 0 && i < 2 ** 32)
  const pieces = valid.length > 0 ? tokenizer.convertIdsToTokens(valid) : []
  const byId = new Map<number, string>(valid.map((id, i) => [id, formatter.format(pieces[i])]))
  return nums.map((id) => byId.get(id) ?? formatter.format(null))
}

/**
 * tuned-lens's `_consolidate_labels_from_batch`: `tokens` is `[N][cells]`; a cell keeps the first
 * entry's token where the whole batch agrees, else '*'.
 */
export function consolidate(tokens: string[][]): string[] {
  const first = tokens[0]
  return first.map((t, c) => (tokens.every((row) => row[c] === t) ? t : '*'))
}

function kArg(name: string, k: number, vocab: number): number {
  intArg(name, k, { min: 1, max: 2 ** 31 - 1 })
  if (k > vocab) throw new TransformerLensError('TL_INVALID_ARGUMENT', `${name} ${k} is larger than the vocabulary (${vocab})`)
  return k
}

/** Cut to `width` code points, as numpy stores a string in a `<U{width}` array. */
function fit(s: string, width: number): string {
  const cp = [...s]
  return cp.length <= width ? s : cp.slice(0, width).join('')
}

/**
 * The labels from the top-k `indices` / `values` (`[N, layers, positions, k]`, flat): the top-1
 * token per cell consolidated over the batch, and tuned-lens's hover table: per cell k rows, and
 * per shown batch entry the token and `valueText(value)`. tuned-lens builds that table in a numpy
 * array of the tokens' string dtype, so value strings longer than the longest formatted token
 * are cut to its length: reproduced here.
 */
function topkLabels(ctx: LabelContext, indices: ArrayLike<number | bigint>, values: Float32Array, k: number, formatter: TokenFormatter, shown: number, valueText: (v: number) => string) {
  const { n, layers, positions } = ctx
  const toks = formatIds(ctx.tokenizer, indices, formatter)
  const width = toks.reduce((m, t) => Math.max(m, [...t].length), 0)
  const cells = layers * positions
  const at = (b: number, cell: number, r: number) => (b * cells + cell) * k + r
  const top = Array.from({ length: n }, (_, b) => Array.from({ length: cells }, (_, c) => toks[at(b, c, 0)]))
  const flatLabels = consolidate(top)
  const labelStrings = Array.from({ length: layers }, (_, l) => flatLabels.slice(l * positions, (l + 1) * positions))
  const m = Math.min(n, shown)
  const hover = Array.from({ length: layers }, (_, l) =>
    Array.from({ length: positions }, (_, p) =>
      Array.from({ length: k }, (_, r) => {
        const row: string[] = []
        for (let b = 0; b < m; b++) {
          const i = at(b, l * positions + p, r)
          row.push(toks[i], fit(valueText(values[i]), width))
        }
        return row
      }),
    ),
  )
  return { labelStrings, hover, topValues: Array.from({ length: n * cells }, (_, i) => values[i * k]) }
}

/** float32 `v * 100` formatted as Python's `'%.2f' % ...`. */
const percent = (v: number) => formatFixed(Math.fround(v * 100), 2)

/**
 * tuned-lens's `_largest_prob_labels` of log-probs `[N, layers, positions, vocab]`: the most
 * probable token per cell, and the top-k tokens with their probabilities.
 */
export function largestProbLabels(ctx: LabelContext, logProbs: Tensor, options: ProbLabelOptions = {}): TrajectoryLabels {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options)
  const formatter = opt<TokenFormatter | undefined>(options, 'formatter', undefined) ?? new TokenFormatter()
  if (!(formatter instanceof TokenFormatter)) throw invalidArg('formatter', 'a TokenFormatter', formatter)
  const minProb = numberArg('minProb', opt(options, 'minProb', 0))
  const k = kArg('topk', opt(options, 'topk', 10), logProbs.shape[3])
  const shown = intArg('maxEntriesToShow', opt(options, 'maxEntriesToShow', 3), { min: 0 })
  const { indices, values } = withScope((s) => {
    const [v, i] = logProbs.topk(k, { dim: -1 })
    s.keep(v)
    s.keep(i)
    return { indices: i.toArray() as BigInt64Array, values: s.keep(v.exp()).toArray() as Float32Array }
  })
  const out = topkLabels(ctx, indices, values, k, formatter, shown, (v) => `${percent(v)}%`)
  const show = out.topValues.every((p) => p > minProb)
  const labels = show ? out.labelStrings : out.labelStrings.map((r) => r.map(() => ''))
  return new TrajectoryLabels(labels, out.hover)
}

/**
 * tuned-lens's `_largest_delta_in_prob_labels`: per cell the tokens whose probability changed
 * most from `selfLogProbs` to `otherLogProbs` (both `[N, layers, positions, vocab]`), with the
 * change (`Δ12.34%`).
 */
export function largestDeltaLabels(ctx: LabelContext, selfLogProbs: Tensor, otherLogProbs: Tensor, options: DeltaLabelOptions = {}): TrajectoryLabels {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options)
  const formatter = opt<TokenFormatter | undefined>(options, 'formatter', undefined) ?? new TokenFormatter()
  if (!(formatter instanceof TokenFormatter)) throw invalidArg('formatter', 'a TokenFormatter', formatter)
  numberArg('minProbDelta', opt(options, 'minProbDelta', 0))
  const k = kArg('topk', opt(options, 'topk', 10), selfLogProbs.shape[3])
  const shown = intArg('maxEntriesToShow', opt(options, 'maxEntriesToShow', 3), { min: 0 })
  const { indices, values } = withScope((s) => {
    const deltas = s.keep(s.keep(otherLogProbs.exp()).sub(s.keep(selfLogProbs.exp())))
    const [, i] = s.keep(deltas.abs()).topk(k, { dim: -1 })
    s.keep(i)
    return { indices: i.toArray() as BigInt64Array, values: s.keep(deltas.gather(-1, i)).toArray() as Float32Array }
  })
  const out = topkLabels(ctx, indices, values, k, formatter, shown, (v) => `Δ${percent(v)}%`)
  return new TrajectoryLabels(out.labelStrings, out.hover)
}

/** tuned-lens's `_get_sequence_labels`: the formatted input tokens, consolidated over the batch. */
export function sequenceLabels(ctx: LabelContext, inputIds: ArrayLike<number | bigint>, formatter = new TokenFormatter()): string[] {
  const toks = formatIds(ctx.tokenizer, inputIds, formatter)
  const rows = Array.from({ length: ctx.n }, (_, b) => toks.slice(b * ctx.positions, (b + 1) * ctx.positions))
  return consolidate(rows)
}
