/**
 * A minimal safetensors reader for the golden fixtures (and a shard splitter), independent of the library under test.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

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

/**
 * Splits a safetensors file into `n` shards (whole tensors, raw bytes copied) plus the
 * `model.safetensors.index.json` that names them, written into `outDir`.
 */
export function shardSafetensors(file: string, outDir: string, n: number): { index: string; shards: string[] } {
  const buf = fs.readFileSync(file)
  const headerLen = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'))
  const base = 8 + headerLen
  const names = Object.keys(header).filter((k) => k !== '__metadata__')
  const per = Math.ceil(names.length / n)
  const shards: string[] = []
  const weightMap: Record<string, string> = {}
  for (let s = 0; s < n; s++) {
    const shard = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`
    const part: Record<string, unknown> = { __metadata__: { format: 'pt' } }
    const bodies: Buffer[] = []
    let offset = 0
    for (const name of names.slice(s * per, (s + 1) * per)) {
      const [start, end] = header[name].data_offsets as [number, number]
      bodies.push(buf.subarray(base + start, base + end))
      part[name] = { dtype: header[name].dtype, shape: header[name].shape, data_offsets: [offset, offset + end - start] }
      offset += end - start
      weightMap[name] = shard
    }
    let json = JSON.stringify(part)
    json += ' '.repeat((8 - (json.length % 8)) % 8)
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
    fs.writeFileSync(path.join(outDir, shard), Buffer.concat([len, Buffer.from(json), ...bodies]))
    shards.push(shard)
  }
  const index = 'model.safetensors.index.json'
  fs.writeFileSync(path.join(outDir, index), JSON.stringify({ metadata: { total_size: buf.length - base }, weight_map: weightMap }, null, 2))
  return { index, shards }
}

export interface RawTensor {
  dtype: string
  shape: number[]
  bytes: Buffer
}

/** Rewrites a safetensors file in place after `edit` changes its tensors (names, dtypes, shapes, bytes). */
export function rewriteSafetensors(file: string, edit: (tensors: Map<string, RawTensor>) => void): void {
  const buf = fs.readFileSync(file)
  const headerLen = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'))
  const base = 8 + headerLen
  const tensors = new Map<string, RawTensor>()
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue
    const [s, e] = info.data_offsets as [number, number]
    tensors.set(name, { dtype: info.dtype, shape: info.shape, bytes: Buffer.from(buf.subarray(base + s, base + e)) })
  }
  edit(tensors)
  const out: Record<string, unknown> = { __metadata__: { format: 'pt' } }
  let offset = 0
  for (const [name, t] of tensors) {
    out[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] }
    offset += t.bytes.length
  }
  let json = JSON.stringify(out)
  json += ' '.repeat((8 - (json.length % 8)) % 8)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...[...tensors.values()].map((t) => t.bytes)]))
}
