import { TransformerLensError } from '../errors'
import { heatmapHtml } from '../viz/heatmap'
import { writeHtml } from '../viz/html'
import { enumArg, invalidArg, numberArg, stringArg } from '../utils/args'

/**
 * tuned-lens's `TrajectoryLabels`: a label per layer and position (the top token of the lens's
 * prediction, or of the largest change in probability), and per cell a small table of the top-k
 * tokens and values, shown when hovering over the cell.
 */
export class TrajectoryLabels {
  /** `[layers][positions]` */
  readonly labelStrings: string[][]
  /**
   * `[layers][positions][rows][cols]`: one row per top-k token (by rank), and per batch entry
   * shown (at most `maxEntriesToShow`) two columns: the token and its value (`"12.34%"`).
   */
  readonly hoverOverEntries: string[][][][] | null

  constructor(labelStrings: string[][], hoverOverEntries: string[][][][] | null = null) {
    this.labelStrings = labelStrings
    this.hoverOverEntries = hoverOverEntries
  }

  /** Every `stride`-th layer, and always the last (tuned-lens's `stride`). */
  stride(stride: number): TrajectoryLabels {
    return new TrajectoryLabels(strideKeepLast(this.labelStrings, stride), this.hoverOverEntries === null ? null : strideKeepLast(this.hoverOverEntries, stride))
  }

  /** A cell's hover table as text: one line per row, columns separated by spaces. */
  hoverText(layer: number, position: number): string {
    const rows = this.hoverOverEntries?.[layer]?.[position]
    return rows === undefined ? '' : rows.map((r) => r.join(' ')).join('\n')
  }
}

/** tuned-lens's `_stride_keep_last`: `x[:-1:stride]` then the last entry. */
export function strideKeepLast<T>(x: readonly T[], stride: number): T[] {
  if (!Number.isInteger(stride) || stride <= 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', `stride must be positive, got ${stride}`)
  if (x.length === 0) return []
  const out: T[] = []
  for (let i = 0; i < x.length - 1; i += stride) out.push(x[i])
  out.push(x[x.length - 1])
  return out
}

export interface TrajectoryStatisticInit {
  name: string
  /** `[layers][positions]` */
  stats: number[][]
  sequenceLabels?: string[] | null
  trajectoryLabels?: TrajectoryLabels | null
  units?: string | null
  max?: number | null
  min?: number | null
  /** Whether the last row is the model's output (default true). */
  includesOutput?: boolean
  /** Row labels; default `'0'`, `'1'`, ... and `'output'` as the last when `includesOutput`. */
  layerLabels?: string[] | null
}

export interface TrajectoryHeatmapOptions {
  /** The page title (default: the statistic's name). */
  title?: string
  /** Default 'diverging' when the values (or min) go below 0, else 'sequential'. */
  colorScale?: 'sequential' | 'diverging'
  /** Colour by log10 of the values (positive statistics only), as tuned-lens's `log_scale`. */
  logScale?: boolean
  /** Also write the page to this file (its folder is created). */
  file?: string
}

/**
 * tuned-lens's `TrajectoryStatistic`: one number per layer (rows; the model's output last) and
 * position (columns) of a prediction trajectory, e.g. the entropy of the lens's predictions,
 * with the labels to draw it: `heatmap()` renders it as a self-contained HTML page.
 */
export class TrajectoryStatistic {
  readonly name: string
  /** `[layers][positions]` */
  readonly stats: number[][]
  /** The input tokens, one per position (`*` where a batch's tokens differ). */
  readonly sequenceLabels: string[] | null
  readonly trajectoryLabels: TrajectoryLabels | null
  readonly units: string | null
  readonly max: number | null
  readonly min: number | null
  readonly includesOutput: boolean
  /** One label per row: `'0'`, `'1'`, ..., and `'output'` for the model's own prediction. */
  readonly layerLabels: string[]

  constructor(init: TrajectoryStatisticInit) {
    this.name = stringArg('name', init.name)
    const rows = init.stats
    if (!Array.isArray(rows) || rows.some((r) => !Array.isArray(r) || r.length !== rows[0].length)) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', 'stats must be a [layers][positions] array of equal rows')
    }
    this.stats = rows
    const cols = rows[0]?.length ?? 0
    this.sequenceLabels = init.sequenceLabels ?? null
    if (this.sequenceLabels !== null && this.sequenceLabels.length !== cols) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `${this.sequenceLabels.length} sequence labels for ${cols} positions`)
    }
    this.trajectoryLabels = init.trajectoryLabels ?? null
    const labels = this.trajectoryLabels?.labelStrings
    if (labels && (labels.length !== rows.length || labels.some((r) => r.length !== cols))) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `the trajectory labels are not [${rows.length}][${cols}]`)
    }
    this.units = init.units ?? null
    this.max = init.max ?? null
    this.min = init.min ?? null
    this.includesOutput = init.includesOutput ?? true
    this.layerLabels = init.layerLabels ?? Array.from({ length: rows.length }, (_, i) => (this.includesOutput && i === rows.length - 1 ? 'output' : String(i)))
  }

  #with(changes: Partial<TrajectoryStatisticInit>): TrajectoryStatistic {
    return new TrajectoryStatistic({
      name: this.name,
      stats: this.stats,
      sequenceLabels: this.sequenceLabels,
      trajectoryLabels: this.trajectoryLabels,
      units: this.units,
      max: this.max,
      min: this.min,
      includesOutput: this.includesOutput,
      layerLabels: this.layerLabels,
      ...changes,
    })
  }

  /** The statistic clipped to `[min, max]`, which also become its colour range (tuned-lens's `clip`). */
  clip(min: number, max: number): TrajectoryStatistic {
    numberArg('min', min)
    numberArg('max', max)
    if (!(min < max)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `min must be less than max, got ${min} >= ${max}`)
    return this.#with({ stats: this.stats.map((r) => r.map((v) => Math.min(max, Math.max(min, v)))), min, max })
  }

  /** Every `stride`-th layer, and always the last (tuned-lens's `stride`). */
  stride(stride: number): TrajectoryStatistic {
    return this.#with({
      stats: strideKeepLast(this.stats, stride),
      trajectoryLabels: this.trajectoryLabels?.stride(stride) ?? null,
      layerLabels: strideKeepLast(this.layerLabels, stride),
    })
  }

  /**
   * The statistic as a heatmap, a self-contained HTML page (`heatmapHtml` of src/viz): positions
   * along the top (the input tokens), layers down the side with the output on top and layer 0 at
   * the bottom (as tuned-lens's plotly figure), each cell coloured by its value over
   * [`min`, `max`] (the data's range where unset), its label (top token) written in it and its
   * hover table in the tooltip. With `file`, the page is also written there.
   */
  heatmap(options: TrajectoryHeatmapOptions = {}): string {
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options)
    const logScale = options.logScale ?? false
    const flat = this.stats.flat()
    if (logScale && flat.some((v) => !(v > 0))) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'logScale needs every value above 0')
    const tx = (v: number) => (logScale ? Math.log10(v) : v)
    const lo = this.min ?? Math.min(...flat)
    const scale = enumArg('colorScale', options.colorScale ?? (Math.min(lo, ...flat) < 0 ? 'diverging' : 'sequential'), ['sequential', 'diverging'])
    const order = this.stats.map((_, i) => this.stats.length - 1 - i)
    const labels = this.trajectoryLabels
    const units = (this.units ?? '') + (logScale ? ' (log10)' : '')
    const html = heatmapHtml({
      title: options.title === undefined ? this.name : stringArg('title', options.title),
      rowLabels: order.map((i) => this.layerLabels[i]),
      colLabels: this.sequenceLabels ?? this.stats[0].map((_, j) => String(j)),
      values: order.map((i) => this.stats[i].map(tx)),
      cellText: labels ? order.map((i) => labels.labelStrings[i]) : undefined,
      hover: labels?.hoverOverEntries ? order.map((i) => this.stats[i].map((_, j) => labels.hoverText(i, j))) : undefined,
      colorScale: scale,
      min: this.min === null ? undefined : tx(this.min),
      max: this.max === null ? undefined : tx(this.max),
      units: units.trim() === '' ? undefined : units.trim(),
    })
    if (options.file !== undefined) writeHtml(options.file, html)
    return html
  }
}
