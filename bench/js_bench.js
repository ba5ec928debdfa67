#!/usr/bin/env node
'use strict'
// transformer-lens (Node) timings on the benchmark checkpoint (see bench/README.md).
//
// Usage:  HF_HUB_CACHE=bench/.out/hub node bench/js_bench.js [--reps N] [--load-reps N]
//
// Prints progress on stderr and one JSON object on the last stdout line.
// Internal modes (child processes): --child load | --child rss.

const path = require('node:path')

const fresh = require('./fresh_load')

const MODEL = process.env.BENCH_MODEL || 'gpt2'
const SEED_VOCAB = 512 // the fixture tokenizer's vocab; ids stay below it

const log = (...a) => console.error('[js]', ...a)
const now = () => Number(process.hrtime.bigint()) / 1e6 // ms

// BENCH_LIB overrides the library entry point (default: the built dist/index.js).
const LIB = path.resolve(process.env.BENCH_LIB || path.join(__dirname, '..', 'dist', 'index.js'))
function lib() {
  return require(LIB)
}

// Fixed pseudo-random ids in [0, 512): same LCG as tl_bench.py.
function tokenIds(n, seed = 0) {
  const out = new BigInt64Array(n)
  let x = (BigInt(seed) * 7919n + 12345n) & 0xffffffffn
  for (let i = 0; i < n; i++) {
    x = (1103515245n * x + 12345n) & 0x7fffffffn
    out[i] = (x >> 8n) % BigInt(SEED_VOCAB)
  }
  return out
}

function tokens(Tensor, n, seed = 0) {
  return Tensor.from(tokenIds(n, seed), [1, n])
}

const median = fresh.median

function disposeAll(x) {
  if (x == null) return
  if (Array.isArray(x)) return x.forEach(disposeAll)
  if (typeof x.dispose === 'function') x.dispose()
}

function cacheSize(cache) {
  if (cache == null) return null
  if (typeof cache.size === 'number') return cache.size
  if (typeof cache.keys === 'function') return [...cache.keys()].length
  if (typeof cache.length === 'number') return cache.length
  return null
}

async function load() {
  const { HookedTransformer } = lib()
  return HookedTransformer.fromPretrained(MODEL)
}

async function child(mode) {
  let t0 = now()
  const { Tensor } = lib()
  const importMs = now() - t0
  t0 = now()
  const model = await load()
  const out = { import_ms: importMs, load_ms: now() - t0 }
  if (mode === 'rss') {
    const toks = tokens(Tensor, 128)
    const [logits, cache] = await model.runWithCache(toks)
    out.n_cached = cacheSize(cache)
    out.maxrss_kib = process.resourceUsage().maxRSS
    disposeAll(logits)
    disposeAll(cache)
    toks.dispose()
  }
  model.dispose()
  console.log(JSON.stringify(out))
}

const runChild = (mode) => fresh.runChild(__filename, mode)

async function bench(fn, reps, warmup = 2) {
  for (let i = 0; i < warmup; i++) await fn()
  const ts = []
  for (let i = 0; i < reps; i++) {
    const t0 = now()
    await fn()
    ts.push(now() - t0)
  }
  return { median_ms: median(ts), min_ms: Math.min(...ts), runs_ms: ts.map((t) => +t.toFixed(2)) }
}

function arg(name, dflt) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : dflt
}

async function main() {
  const mode = arg('--child')
  if (mode) return child(mode)
  const reps = +arg('--reps', process.env.BENCH_REPS || 7)
  const loadReps = +arg('--load-reps', process.env.BENCH_LOAD_REPS || 3)

  const pkg = require(path.join(__dirname, '..', 'package.json'))
  const result = {
    impl: 'transformer-lens-node',
    versions: { node: process.version, 'transformer-lens': pkg.version, napi: process.versions.napi },
    reps,
  }

  result.load = fresh.freshLoads(__filename, MODEL, loadReps, log)

  // Before this process grows: Linux carries a parent's peak RSS over into a spawned child's.
  const r = runChild('rss')
  result.peak_rss = { kib: r.maxrss_kib, mib: r.maxrss_kib / 1024, n_cached: r.n_cached }
  log(`peak RSS (load + runWithCache 1x128): ${result.peak_rss.mib.toFixed(0)} MiB`)

  const { Tensor } = lib()
  const model = await load()
  const t128 = tokens(Tensor, 128)
  const t1024 = tokens(Tensor, 1024, 1)

  const fwd = (t) => async () => disposeAll(await model.forward(t))
  result.forward_128 = await bench(fwd(t128), reps)
  log(`forward 1x128: ${result.forward_128.median_ms.toFixed(1)} ms`)
  result.forward_1024 = await bench(fwd(t1024), Math.max(3, reps - 2))
  log(`forward 1x1024: ${result.forward_1024.median_ms.toFixed(1)} ms`)

  result.run_with_cache_128 = await bench(async () => {
    const [logits, cache] = await model.runWithCache(t128)
    disposeAll(logits)
    disposeAll(cache)
  }, reps)
  log(`runWithCache 1x128: ${result.run_with_cache_128.median_ms.toFixed(1)} ms`)

  result.incl_bwd_128 = await bench(async () => {
    const [loss, cache] = await model.runWithCache(t128, { returnType: 'loss', inclBwd: true })
    disposeAll(loss)
    disposeAll(cache)
  }, reps)
  log(`runWithCache 1x128 loss + inclBwd: ${result.incl_bwd_128.median_ms.toFixed(1)} ms`)

  const nLayers = model.cfg?.n_layers ?? model.cfg?.nLayers ?? 12
  const noop = (_t, _hook) => undefined
  const fwdHooks = []
  for (let l = 0; l < nLayers; l++) fwdHooks.push([`blocks.${l}.hook_resid_post`, noop])
  const hooked = async () => disposeAll(await model.runWithHooks(t128, { fwdHooks }))
  const plain = fwd(t128)
  // Interleave plain and hooked runs so drift affects both alike.
  for (let i = 0; i < 2; i++) {
    await plain()
    await hooked()
  }
  const pairs = 2 * reps - 1
  const tp = []
  const th = []
  for (let i = 0; i < pairs; i++) {
    let t0 = now()
    await plain()
    tp.push(now() - t0)
    t0 = now()
    await hooked()
    th.push(now() - t0)
  }
  result.hooks_12_noop_128 = {
    n_hooks: fwdHooks.length,
    pairs,
    plain_median_ms: median(tp),
    hooked_median_ms: median(th),
    // median of the per-pair differences: steadier than a difference of medians
    overhead_ms: median(th.map((t, i) => t - tp[i])),
  }
  log(`12 no-op hooks overhead: ${result.hooks_12_noop_128.overhead_ms.toFixed(2)} ms`)
  t128.dispose()
  t1024.dispose()
  model.dispose()

  console.log(JSON.stringify(result))
}

if (require.main === module) main().catch((e) => {
  console.error(e && e.stack ? e.stack : e)
  process.exit(1)
})

module.exports = { bench, tokenIds, median, now }
