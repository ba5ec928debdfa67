#!/usr/bin/env node
'use strict'
// transformer-lens (Node) timings of HookedEncoderDecoder on the T5-small-shaped checkpoint
// (bench/make_checkpoint.py t5-small); bench/t5_tl.py times Python TL on the same shapes.
// Prints progress on stderr and one JSON object on the last stdout line.

const path = require('node:path')
const fresh = require('./fresh_load')
const { bench, tokenIds, now } = require('./js_bench')

const MODEL = process.env.BENCH_MODEL || 'google-t5/t5-small'
const LIB = path.resolve(process.env.BENCH_LIB || path.join(__dirname, '..', 'dist', 'index.js'))
const log = (...a) => console.error('[js]', ...a)

// `[batch, n]` ids, row r from seed r (the same LCG as t5_tl.py).
function batch(Tensor, b, n) {
  const out = new BigInt64Array(b * n)
  for (let r = 0; r < b; r++) out.set(tokenIds(n, r), r * n)
  return Tensor.from(out, [b, n])
}

// `--child load`: one load in this fresh process.
async function child() {
  const t0 = now()
  const { HookedEncoderDecoder } = require(LIB)
  const importMs = now() - t0
  const t1 = now()
  const model = await HookedEncoderDecoder.fromPretrained(MODEL)
  const loadMs = now() - t1
  model.dispose()
  console.log(JSON.stringify({ import_ms: importMs, load_ms: loadMs }))
}

async function main() {
  if (process.argv.includes('--child')) return child()
  const reps = +(process.env.BENCH_REPS || 7)
  const { HookedEncoderDecoder, Tensor } = require(LIB)
  const pkg = require(path.join(__dirname, '..', 'package.json'))
  const result = { impl: 'transformer-lens-node', versions: { node: process.version, 'transformer-lens': pkg.version }, reps }
  result.load = fresh.freshLoads(__filename, MODEL, +(process.env.BENCH_LOAD_REPS || 3), log)
  const model = await HookedEncoderDecoder.fromPretrained(MODEL)
  const enc = batch(Tensor, 8, 128)
  const dec = batch(Tensor, 8, 128)
  const opts = { decoderInput: dec }
  result.forward_8x128 = await bench(async () => (await model.forward(enc, opts)).dispose(), reps)
  log(`forward 8x128: ${result.forward_8x128.median_ms.toFixed(1)} ms`)
  result.run_with_cache_8x128 = await bench(async () => {
    const [logits, cache] = await model.runWithCache(enc, opts)
    logits.dispose()
    result.n_cached = cache.keys().length
    for (const k of cache.keys()) cache.get(k).dispose()
  }, reps)
  log(`runWithCache 8x128: ${result.run_with_cache_8x128.median_ms.toFixed(1)} ms`)
  const prompt = batch(Tensor, 1, 128)
  result.generate_1x128_32 = await bench(async () => {
    const out = await model.generate(prompt, { maxNewTokens: 32, doSample: false, stopAtEos: false })
    out.dispose()
  }, Math.max(3, reps - 4), 1)
  log(`generate 1x128 +32 greedy: ${result.generate_1x128_32.median_ms.toFixed(1)} ms`)
  result.rss_mib = process.resourceUsage().maxRSS / 1024 // peak, as Python's ru_maxrss
  model.dispose()
  console.log(JSON.stringify(result))
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e)
  process.exit(1)
})
