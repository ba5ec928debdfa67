#!/usr/bin/env node
'use strict'
// transformer-lens (Node) timings of HookedEncoder on the BERT-base-shaped checkpoint
// (bench/make_checkpoint.py bert): load, forward and runWithCache (all hooks) at batch 8 × 128.
//
// Usage:  HF_HUB_CACHE=bench/.out/hub BENCH_MODEL=google-bert/bert-base-cased node bench/encoder_js.js [--reps N]
// Prints progress on stderr and one JSON object on the last stdout line.

const path = require('node:path')

const fresh = require('./fresh_load')

const MODEL = process.env.BENCH_MODEL || 'google-bert/bert-base-cased'
const VOCAB = 139 // the fixture tokenizer's vocab; ids stay below it
const [BATCH, POS] = [8, 128]
const LIB = path.resolve(process.env.BENCH_LIB || path.join(__dirname, '..', 'dist', 'index.js'))

const log = (...a) => console.error('[js-encoder]', ...a)
const now = () => Number(process.hrtime.bigint()) / 1e6

// Fixed pseudo-random ids in [0, VOCAB): same LCG as encoder_tl.py.
function tokenIds(n) {
  const out = new BigInt64Array(n)
  let x = 12345n
  for (let i = 0; i < n; i++) {
    x = (1103515245n * x + 12345n) & 0x7fffffffn
    out[i] = (x >> 8n) % BigInt(VOCAB)
  }
  return out
}

async function bench(fn, reps, warmup = 2) {
  for (let i = 0; i < warmup; i++) await fn()
  const runs = []
  for (let i = 0; i < reps; i++) {
    const t0 = now()
    await fn()
    runs.push(now() - t0)
  }
  return { median_ms: fresh.median(runs), runs_ms: runs.map((r) => +r.toFixed(1)) }
}

// `--child load`: one load in this fresh process.
async function child() {
  const t0 = now()
  const { HookedEncoder } = require(LIB)
  const importMs = now() - t0
  const t1 = now()
  const model = await HookedEncoder.fromPretrained(MODEL, { device: 'cpu' })
  const loadMs = now() - t1
  model.dispose()
  console.log(JSON.stringify({ import_ms: importMs, load_ms: loadMs }))
}

async function main() {
  if (process.argv.includes('--child')) return child()
  const i = process.argv.indexOf('--reps')
  const reps = i > 0 ? +process.argv[i + 1] : +(process.env.BENCH_REPS || 5)
  const load = fresh.freshLoads(__filename, MODEL, +(process.env.BENCH_LOAD_REPS || 3), log)
  const { HookedEncoder, Tensor } = require(LIB)
  const model = await HookedEncoder.fromPretrained(MODEL, { device: 'cpu' })
  const tokens = Tensor.from(tokenIds(BATCH * POS), [BATCH, POS])
  const forward = await bench(async () => (await model.forward(tokens)).dispose(), reps)
  log(`forward ${BATCH}x${POS}: ${forward.median_ms.toFixed(1)} ms`)
  let nCached = 0
  const cache = await bench(async () => {
    const [out, c] = await model.runWithCache(tokens)
    nCached = c.keys().length
    out.dispose()
    for (const k of c.keys()) c.get(k).dispose()
  }, reps)
  log(`runWithCache ${BATCH}x${POS}: ${cache.median_ms.toFixed(1)} ms (${nCached} activations)`)
  const rss = process.resourceUsage().maxRSS / 1024 // peak, as Python's ru_maxrss
  console.log(JSON.stringify({ versions: { node: process.versions.node, 'transformer-lens': require(path.join(__dirname, '..', 'package.json')).version }, reps, load, forward_8x128: forward, run_with_cache_8x128: { ...cache, n_cached: nCached }, rss_mib: rss }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
