/**
 * `headScoresHtml`: one score per attention head as a layers × heads grid with the value written
 * in each cell: `detectHead`'s scores, one head's row of `compositionScores`, any per-head metric.
 */
import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'
import { enumArg, intArg, invalidArg, stringArg } from '../utils/args'
import { ColorScaleName } from './color'
import { formatNumber } from './html'
import { renderHeatmap } from './heatmap'

export interface HeadScoresSpec {
  /** `[layers, heads]`: a Tensor (e.g. `detectHead`'s) or nested arrays. */
  scores: Tensor | number[][]
  title: string
  /** The row axis name: `'Layer'` by default (rows are labelled `Layer 0`, `Layer 1`, …). */
  rowLabel?: string
  /** The column axis name: `'Head'` by default. */
  colLabel?: string
  /** `'diverging'` (centred on 0) when a score is negative, else `'sequential'`, by default. */
  colorScale?: 'sequential' | 'diverging'
  min?: number
  max?: number
  units?: string
  /** Decimals of the value written in each cell (2 by default). */
  digits?: number
}

/** `scores` as rows of numbers, checked to be 2-D. */
function scoreRows(scores: unknown): number[][] {
  if (scores instanceof Tensor) {
    if (scores.ndim !== 2) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `headScoresHtml takes scores of shape [layers, heads], got [${scores.shape}]`)
    }
    const [nL, nH] = scores.shape
    const flat = scores.isFloatingPoint() ? scores.toArray() : scores.to('float64').toArray()
    return Array.from({ length: nL }, (_, l) => Array.from({ length: nH }, (_, h) => Number(flat[l * nH + h])))
  }
  if (!Array.isArray(scores) || !scores.every((r) => Array.isArray(r))) {
    throw invalidArg('scores', 'a Tensor or an array of rows of numbers ([layers, heads])', scores)
  }
  return scores as number[][]
}

/**
 * Per-head scores (`[layers, heads]`) as a self-contained HTML page: a heatmap whose cells show
 * their value, with a tooltip naming the layer and head.
 */
export function headScoresHtml(spec: HeadScoresSpec): string {
  if (spec === null || typeof spec !== 'object') throw invalidArg('spec', 'a HeadScoresSpec object', spec)
  const rows = scoreRows(spec.scores)
  const nH = rows.length === 0 ? 0 : rows[0].length
  const rowLabel = spec.rowLabel === undefined ? 'Layer' : stringArg('rowLabel', spec.rowLabel)
  const colLabel = spec.colLabel === undefined ? 'Head' : stringArg('colLabel', spec.colLabel)
  const digits = spec.digits === undefined ? 2 : intArg('digits', spec.digits, { min: 0, max: 10 })
  const scale =
    spec.colorScale === undefined
      ? rows.some((r) => Array.isArray(r) && r.some((v) => typeof v === 'number' && v < 0 && Number.isFinite(v)))
        ? 'diverging'
        : 'sequential'
      : enumArg<ColorScaleName>('colorScale', spec.colorScale, ['sequential', 'diverging'])
  const text = (v: unknown) => (typeof v !== 'number' ? '' : Number.isFinite(v) ? v.toFixed(digits) : formatNumber(v))
  return renderHeatmap(
    {
      title: spec.title,
      rowLabels: rows.map((_, l) => `${rowLabel} ${l}`),
      colLabels: Array.from({ length: nH }, (_, h) => `${colLabel} ${h}`),
      values: rows,
      cellText: rows.map((r) => (Array.isArray(r) ? r.map(text) : r)),
      colorScale: scale,
      min: spec.min,
      max: spec.max,
      units: spec.units,
    },
    { rowAxis: rowLabel, colAxis: colLabel },
  )
}
