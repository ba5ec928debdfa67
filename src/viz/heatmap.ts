/**
 * `heatmapHtml`: a labelled grid of coloured cells as a self-contained HTML page. Each cell is
 * coloured by its value on a sequential or diverging scale (a colour bar gives the ends and the
 * units), may carry a short text (the top token of a logit lens), and shows its row, column,
 * value and `hover` text (top-k tokens with probabilities) in a tooltip. NaN cells are grey with
 * stripes and say "NaN"; ±Infinity cells take the scale's end colour with a yellow outline.
 * The page is drawn in HTML from the start: it reads without its script, which only runs the
 * tooltip.
 */
import { TransformerLensError } from '../errors'
import { describe, enumArg, invalidArg, numberArg, stringArg } from '../utils/args'
import { ColorScaleName, NAN_RGB, position, rgbString, scaleGradient, scaleRgb, textColorOn, valueRange } from './color'
import { escapeHtml, formatNumber, pageHtml, showToken } from './html'

export interface HeatmapSpec {
  title: string
  rowLabels: string[]
  colLabels: string[]
  values: number[][] /* rows × cols */
  cellText?: string[][]
  hover?: string[][]
  colorScale?: 'sequential' | 'diverging'
  min?: number
  max?: number
  units?: string
}

/** @internal What other pictures add to a heatmap: axis names for the corner cell. */
export interface HeatmapAxes {
  rowAxis?: string
  colAxis?: string
}

const CSS = `
.hm-wrap{overflow:auto;max-width:100%;max-height:82vh;border:1px solid #e3e3e3;border-radius:3px;display:inline-block}
table.hm{border-collapse:separate;border-spacing:1px;font-size:12px}
table.hm th{font-weight:500;color:#333;background:#fff;position:sticky;z-index:1}
table.hm thead th{top:0;padding:2px 3px;vertical-align:bottom}
table.hm tbody th{left:0;padding:0 6px 0 4px;text-align:right;max-width:16em;overflow:hidden;text-overflow:ellipsis}
table.hm th.corner{left:0;z-index:2;color:#777;font-size:11px;text-align:right}
table.hm th.vert span{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block;max-height:12em;overflow:hidden;text-overflow:ellipsis}
table.hm td{min-width:30px;max-width:8em;height:22px;padding:0 4px;text-align:center;white-space:pre;overflow:hidden;text-overflow:ellipsis;cursor:default}
table.hm td:hover{outline:2px solid #111;outline-offset:-1px}
`

function checkGrid(name: string, grid: unknown, rows: number, cols: number, kind: 'number' | 'string'): void {
  if (!Array.isArray(grid)) throw invalidArg(name, `an array of ${rows} rows`, grid)
  if (grid.length !== rows) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `${name} has ${grid.length} rows, the row labels say ${rows}`)
  }
  grid.forEach((row, r) => {
    if (!Array.isArray(row)) throw invalidArg(`${name}[${r}]`, `an array of ${cols} ${kind}s`, row)
    if (row.length !== cols) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `${name}[${r}] has ${row.length} entries, the column labels say ${cols}`)
    }
    row.forEach((v, c) => {
      if (typeof v !== kind) throw invalidArg(`${name}[${r}][${c}]`, `a ${kind}`, v)
    })
  })
}

function labelsArg(name: string, v: unknown): string[] {
  if (!Array.isArray(v)) throw invalidArg(name, 'an array of strings', v)
  v.forEach((s, i) => {
    if (typeof s !== 'string') throw invalidArg(`${name}[${i}]`, 'a string', s)
  })
  return v
}

/** The legend: colour bar with its ends (and 0 for a diverging scale), units, NaN / ±∞ keys. */
export function legendHtml(scale: ColorScaleName, min: number, max: number, units: string, extra: { nan?: boolean; inf?: boolean } = {}): string {
  const u = units ? ` <span class="units">${escapeHtml(units)}</span>` : ''
  const mid = scale === 'diverging' && min < 0 && max > 0 ? `<span class="mid">white = ${escapeHtml(formatNumber((min + max) / 2))}</span>` : ''
  const nan = extra.nan ? `<span><span class="swatch nan" style="background-color:${rgbString(NAN_RGB)}"></span>NaN</span>` : ''
  const inf = extra.inf ? `<span><span class="swatch inf" style="background-color:#fff"></span>±∞ (at the ends)</span>` : ''
  return (
    `<div class="legend" data-scale="${scale}"><span class="lo mono">${escapeHtml(formatNumber(min))}</span>` +
    `<span class="bar" style="background:${scaleGradient(scale)}"></span>` +
    `<span class="hi mono">${escapeHtml(formatNumber(max))}</span>${u}${mid}${nan}${inf}</div>`
  )
}

/** @internal The heatmap page, with axis names in the corner (used by `headScoresHtml`). */
export function renderHeatmap(spec: HeatmapSpec, axes: HeatmapAxes = {}): string {
  if (spec === null || typeof spec !== 'object') throw invalidArg('spec', 'a HeatmapSpec object', spec)
  const title = stringArg('title', spec.title)
  const rowLabels = labelsArg('rowLabels', spec.rowLabels)
  const colLabels = labelsArg('colLabels', spec.colLabels)
  const nR = rowLabels.length
  const nC = colLabels.length
  checkGrid('values', spec.values, nR, nC, 'number')
  if (spec.cellText !== undefined) checkGrid('cellText', spec.cellText, nR, nC, 'string')
  if (spec.hover !== undefined) checkGrid('hover', spec.hover, nR, nC, 'string')
  const scale = enumArg<ColorScaleName>('colorScale', spec.colorScale ?? 'sequential', ['sequential', 'diverging'])
  if (spec.min !== undefined) numberArg('min', spec.min, { finite: true })
  if (spec.max !== undefined) numberArg('max', spec.max, { finite: true })
  if (spec.min !== undefined && spec.max !== undefined && spec.min > spec.max) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `min (${describe(spec.min)}) is above max (${describe(spec.max)})`)
  }
  const units = spec.units === undefined ? '' : stringArg('units', spec.units)

  const range = valueRange(spec.values.flat(), scale, spec.min, spec.max)
  const vertical = colLabels.some((l) => [...l].length > 3)
  let sawNan = false
  let sawInf = false

  const corner = axes.rowAxis || axes.colAxis ? escapeHtml(`${axes.rowAxis ?? ''} \\ ${axes.colAxis ?? ''}`) : ''
  const head = colLabels
    .map((l, c) => `<th scope="col" class="col${vertical ? ' vert' : ''}" data-c="${c}" data-tip="${escapeHtml(l)}"><span class="tok">${escapeHtml(showToken(l))}</span></th>`)
    .join('')
  const rows = spec.values.map((row, r) => {
    const cells = row.map((v, c) => {
      const classes = ['cell']
      let bg: readonly [number, number, number]
      if (Number.isNaN(v)) {
        bg = NAN_RGB
        classes.push('nan')
        sawNan = true
      } else {
        bg = scaleRgb(scale, position(v, range))
        if (!Number.isFinite(v)) {
          classes.push('inf')
          sawInf = true
        }
      }
      const shown = spec.cellText ? spec.cellText[r][c] : Number.isFinite(v) ? '' : formatNumber(v)
      const tip = [`${showToken(rowLabels[r])} · ${showToken(colLabels[c])}`, `value ${formatNumber(v)}${units ? ` ${units}` : ''}`]
      const extra = spec.hover?.[r][c]
      if (extra) tip.push('', extra)
      return (
        `<td class="${classes.join(' ')}" data-r="${r}" data-c="${c}" data-value="${escapeHtml(String(v))}" ` +
        `data-tip="${escapeHtml(tip.join('\n'))}" style="background-color:${rgbString(bg)};color:${textColorOn(bg)}">` +
        `${shown === '' ? '' : escapeHtml(showToken(shown))}</td>`
      )
    })
    return `<tr><th scope="row" class="row tok" data-r="${r}" data-tip="${escapeHtml(rowLabels[r])}">${escapeHtml(showToken(rowLabels[r]))}</th>${cells.join('')}</tr>`
  })

  const body =
    `<div class="hm-wrap"><table class="hm" data-rows="${nR}" data-cols="${nC}">` +
    `<thead><tr><th class="corner">${corner}</th>${head}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody></table></div>\n` +
    legendHtml(scale, range.min, range.max, units, { nan: sawNan, inf: sawInf })
  return pageHtml({ title, body, css: CSS })
}

/**
 * A heatmap as a self-contained HTML page (write it with `writeHtml`): `values[r][c]` coloured
 * on `colorScale` ('sequential' by default; 'diverging' is centred on 0 unless `min` / `max` are
 * given), `cellText[r][c]` written in the cell, `hover[r][c]` in its tooltip. Values outside
 * [min, max] take the end colours.
 */
export function heatmapHtml(spec: HeatmapSpec): string {
  return renderHeatmap(spec)
}
