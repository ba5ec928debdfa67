/**
 * A minimal safetensors reader for the golden fixtures, independent of the library under test.
 */
import * as fs from 'node:fs'

export interface Golden {
  dtype: string
  shape: number[]
  data: Float32Array | BigInt64Array
}

export function readSafetensors(file: string): Map<string, Golden> {
  const buf = fs.readFileSync(file)
  const n = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))
  const base = 8 + n
  const out = new Map<string, Golden>()
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue
    const [s, e] = info.data_offsets as [number, number]
    const bytes = buf.subarray(base + s, base + e)
    const copy = new Uint8Array(bytes) // aligned copy
    let data: Float32Array | BigInt64Array
    if (info.dtype === 'F32') data = new Float32Array(copy.buffer, 0, copy.byteLength / 4)
    else if (info.dtype === 'I64') data = new BigInt64Array(copy.buffer, 0, copy.byteLength / 8)
    else throw new Error(`fixture dtype ${info.dtype} not handled (${name})`)
    out.set(name, { dtype: info.dtype, shape: info.shape, data })
  }
  return out
}
