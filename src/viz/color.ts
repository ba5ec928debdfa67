/**
 * Colour scales for the pictures (src/viz/): ColorBrewer's Blues (sequential: low is near white,
 * so zero attention blends into the page) and RdBu (diverging: negative red, zero white, positive
 * blue, as plotly's RdBu that TL's notebooks use). Colours are `rgb(r, g, b)` strings, the form a
 * browser's `getComputedStyle` reports, so a rendered cell can be compared with its scale end.
 */

export type ColorScaleName = 'sequential' | 'diverging'
export type Rgb = readonly [number, number, number]

/** The stops of each scale, low to high, evenly spaced over [0, 1]. */
export const SCALE_STOPS: Readonly<Record<ColorScaleName, readonly Rgb[]>> = {
  sequential: [
    [247, 251, 255],
    [198, 219, 239],
    [107, 174, 214],
    [33, 113, 181],
    [8, 48, 107],
  ],
  diverging: [
    [178, 24, 43],
    [239, 138, 98],
    [247, 247, 247],
    [103, 169, 207],
    [33, 102, 172],
  ],
}

/** The colour of NaN cells (drawn with stripes, see html.ts). */
export const NAN_RGB: Rgb = [190, 190, 190]

export function rgbString(c: Rgb): string {
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`
}

/** The scale's colour at `t` in [0, 1] (clamped), linearly interpolated between stops. */
export function scaleRgb(scale: ColorScaleName, t: number): Rgb {
  const stops = SCALE_STOPS[scale]
  const x = Math.min(1, Math.max(0, Number.isNaN(t) ? 0.5 : t)) * (stops.length - 1)
  const i = Math.min(stops.length - 2, Math.floor(x))
  const f = x - i
  const a = stops[i]
  const b = stops[i + 1]
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as unknown as Rgb
}

/** Black or white, whichever reads better on `bg` (WCAG relative luminance). */
export function textColorOn(bg: Rgb): string {
  const lin = (v: number) => {
    const s = v / 255
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4
  }
  const lum = 0.2126 * lin(bg[0]) + 0.7152 * lin(bg[1]) + 0.0722 * lin(bg[2])
  return lum > 0.35 ? 'rgb(0, 0, 0)' : 'rgb(255, 255, 255)'
}

/** A CSS `linear-gradient` through the scale's stops, left (low) to right (high). */
export function scaleGradient(scale: ColorScaleName): string {
  return `linear-gradient(to right, ${SCALE_STOPS[scale].map(rgbString).join(', ')})`
}

/**
 * Maps values to [0, 1] for a scale: `[min, max]` linearly; a diverging scale without explicit
 * ends is made symmetric about 0, so white means zero.
 */
export interface ValueRange {
  min: number
  max: number
}

export function valueRange(values: Iterable<number>, scale: ColorScaleName, min?: number, max?: number): ValueRange {
  let lo = Infinity
  let hi = -Infinity
  for (const v of values) {
    if (!Number.isFinite(v)) continue
    if (v < lo) lo = v
    if (v > hi) hi = v
  }
  if (lo > hi) [lo, hi] = [0, 1] // no finite value at all
  if (scale === 'diverging' && min === undefined && max === undefined) {
    const m = Math.max(Math.abs(lo), Math.abs(hi))
    return { min: -m, max: m }
  }
  return { min: min ?? lo, max: max ?? hi }
}

/** Where `v` sits in the range: 0 at min, 1 at max, clamped; ±Infinity go to the ends. */
export function position(v: number, r: ValueRange): number {
  if (v === Infinity) return 1
  if (v === -Infinity) return 0
  if (r.max === r.min) return 0.5
  return Math.min(1, Math.max(0, (v - r.min) / (r.max - r.min)))
}
