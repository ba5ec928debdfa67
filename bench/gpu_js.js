#!/usr/bin/env node
'use strict'
// transformer-lens (Node) GPU timings (see gpu.js). One JSON object on the last stdout line.

const fs = require('node:fs')
const path = require('node:path')
const { tokenIds, median, now } = require('./js_bench')

const shapes = JSON.parse(fs.readFileSync(process.env.BENCH_GPU_SHAPES || path.join(__dirname, 'gpu_shapes.json'), 'utf8'))

const LIB = path.resolve(process.env.BENCH_LIB || path.join(__dirname, '..', 'dist', 'index.js'))
const { HookedTransformer, Tensor, synchronize } = require(LIB)
const log = (...a) => console.error('[js]', ...a)

async function time(fn, reps, warmup = 2) {
  for (let i = 0; i < warmup; i++) await fn()
  const ts = []
  for (let i = 0; i < reps; i++) {
    synchronize('cuda')
    const t0 = now()
    await fn()
    synchronize('cuda')
    ts.push(now() - t0)
  }
  return median(ts)
}

const ids = (b, n) => Tensor.from(tokenIds(b * n), [b, n])

async function main() {
  const reps = +(process.env.BENCH_REPS || 10)
  const out = { impl: 'transformer-lens-node', device: null, rows: {} }
  const loads = []
  let model = null
  for (let i = 0; i < 3; i++) {
    model?.dispose()
    synchronize('cuda')
    const t0 = now()
    model = await HookedTransformer.fromPretrained('gpt2', { device: 'cuda' })
    synchronize('cuda')
    loads.push(now() - t0)
  }
  out.device = model.device
  out.rows.load = median(loads)
  log('load', out.rows.load.toFixed(1), 'ms')
  for (const [name, b, n] of shapes.forward) {
    const t = ids(b, n)
    out.rows[`forward ${b}×${n}`] = await time(async () => (await model.forward(t)).dispose(), reps)
    log(`forward ${b}×${n}`, out.rows[`forward ${b}×${n}`].toFixed(2), 'ms')
  }
  for (const [, b, n] of shapes.cache) {
    const t = ids(b, n)
    out.rows[`runWithCache ${b}×${n}`] = await time(async () => {
      const [l, c] = await model.runWithCache(t)
      l.dispose()
      c.dispose()
    }, reps)
    log(`runWithCache ${b}×${n}`, out.rows[`runWithCache ${b}×${n}`].toFixed(2), 'ms')
  }
  for (const [, b, prompt, steps] of shapes.decode) {
    const t = ids(b, prompt)
    const ms = await time(async () => {
      const r = await model.generate(t, { maxNewTokens: steps, doSample: false, verbose: false, returnType: 'tokens', stopAtEos: false })
      r.dispose()
    }, Math.max(3, reps >> 1), 1)
    out.rows[`decode b${b}`] = (b * steps) / (ms / 1000)
    log(`decode b${b}`, out.rows[`decode b${b}`].toFixed(1), 'tok/s')
  }
  model.dispose()
  console.log(JSON.stringify(out))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
