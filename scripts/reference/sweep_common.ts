/**
 * What the sweep comparisons (sweep_compare.ts, sweep_encoder_compare.ts) share: golden tensors,
 * max |diff|, and the cfg fields that differ from TL's.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import { Tensor } from '../../src/index'
import type { Golden } from '../../__test__/helpers/safetensors'

// Fields whose TL value is host state or formatting, not a property of the model.
const CFG_SKIP = new Set(['device', 'n_devices', 'dtype', 'tokenizer_name', 'model_name', 'seed', 'initializer_range'])
/** The codes a checkpoint TL cannot load must be refused with. */
export const REFUSALS = new Set(['TL_UNSUPPORTED', 'TL_CORRUPT_FILE'])

export function tensorOf(g: Golden): Tensor {
  return g.dtype === 'I64' ? Tensor.from(g.data as BigInt64Array, g.shape, 'int64') : Tensor.from(g.data as Float32Array, g.shape)
}

/** Max |a - g| (Infinity when the shapes differ, NaN without a golden). */
export function maxDiff(a: Tensor, g: Golden | undefined): number {
  if (!g) return NaN
  if (a.ndim === 0 && g.shape.join() === '1') a = a.reshape([1]) // a 0-d tensor, saved as [1]
  if (a.shape.join() !== g.shape.join()) return Infinity
  if (a.numel() === 0) return 0 // an MoE expert no token chose
  return a.to('float32').sub(tensorOf(g).to('float32')).abs().max().item()
}

/** `ours`' cfg fields that differ from TL's, as "field: ours vs TL theirs". */
export function cfgDiffs(ours: Record<string, unknown>, tl: Record<string, unknown>): string[] {
  const out: string[] = []
  for (const [k, v] of Object.entries(tl)) {
    if (CFG_SKIP.has(k) || !(k in ours)) continue
    const a = JSON.stringify(ours[k])
    const b = JSON.stringify(v)
    if (a !== b && !(typeof v === 'number' && Number(ours[k]) === v)) out.push(`${k}: ${a} vs TL ${b}`)
  }
  return out
}

/**
 * The command line of a comparison: OUT_DIR [FILTER ...]. Compares every OUT_DIR/{variant}/tl.json
 * (FILTER substrings select variants), prints each row and writes them to OUT_DIR/{summary}.
 */
export async function compareAll(
  compare: (dir: string, meta: any) => Promise<Record<string, any>>,
  fmt: (row: Record<string, any>) => string,
  summary: string,
): Promise<void> {
  const [out, ...filters] = process.argv.slice(2)
  process.env.HF_HUB_OFFLINE = '1'
  const rows = []
  for (const name of fs.readdirSync(out).sort()) {
    const file = path.join(out, name, 'tl.json')
    if (!fs.existsSync(file) || (filters.length && !filters.some((f) => name.includes(f)))) continue
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'))
    let row
    try {
      row = await compare(path.join(out, name), meta)
    } catch (e: any) {
      row = { variant: name, skipped: `library threw ${e.code}: ${e.message}` }
    }
    rows.push(row)
    console.log(fmt(row))
  }
  fs.writeFileSync(path.join(out, summary), JSON.stringify(rows, null, 1))
}
