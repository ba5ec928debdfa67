#!/usr/bin/env node
'use strict'
// transformer-lens (Node) timings for bench/train.js: a train step of the demo model, a tuned-lens
// training step on the GPT-2-small-shaped checkpoint, and trajectory statistics over a 12-layer
// x 128-position cache. One JSON object on the last stdout line.
const path = require('node:path')

const L = require(path.resolve(process.env.BENCH_LIB || path.join(__dirname, '..', 'dist', 'index.js')))
const REPS = Number(process.env.BENCH_REPS || 5)
const log = (...a) => console.error('[js]', ...a)
const now = () => Number(process.hrtime.bigint()) / 1e6

function lcg(n, seed, vocab) {
  const out = new BigInt64Array(n)
  let x = (BigInt(seed) * 7919n + 12345n) & 0xffffffffn
  for (let i = 0; i < n; i++) {
    x = (1103515245n * x + 12345n) & 0x7fffffffn
    out[i] = (x >> 8n) % BigInt(vocab)
  }
  return out
}

async function timed(fn) {
  await fn()
  const ts = []
  for (let i = 0; i < REPS; i++) {
    const t0 = now()
    await fn()
    ts.push(now() - t0)
  }
  ts.sort((a, b) => a - b)
  return ts[ts.length >> 1]
}

async function trainStep() {
  const model = await L.HookedTransformer.fromPretrainedNoProcessing(path.join(__dirname, '..', 'models', 'demo-induction'))
  const { n_ctx, d_vocab } = model.cfg
  const steps = 4 * REPS + 4
  const toks = L.Tensor.from(lcg(32 * n_ctx * steps, 1, d_vocab), [32 * steps, n_ctx])
  // Steady-state time per step: the gaps between consecutive steps of one train() run.
  const at = []
  await L.train(model, { numEpochs: 1, batchSize: 32, lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1, printEvery: null, shuffle: false, progress: false, onStep: () => at.push(now()) }, toks)
  const gaps = at.slice(1).map((t, i) => t - at[i]).sort((a, b) => a - b)
  return gaps[gaps.length >> 1]
}

async function lensStep() {
  const model = await L.HookedTransformer.fromPretrainedNoProcessing('gpt2')
  const lens = L.TunedLens.fromModel(model)
  const toks = L.Tensor.from(lcg(2 * 128, 2, 512), [2, 128])
  return timed(() => L.trainTunedLens(lens, model, toks, { numSteps: 1, tokensPerStep: 256, progress: false }))
}

async function trajectory() {
  const model = await L.HookedTransformer.fromPretrainedNoProcessing('gpt2')
  const lens = L.TunedLens.fromModel(model)
  const raw = lcg(128, 3, 512)
  const ids = L.Tensor.from(raw, [1, 128])
  const targets = L.Tensor.from(BigInt64Array.from([...raw.slice(1), raw[0]]), [1, 128]) // the next token (wrapping)
  const [logits, cache] = await model.runWithCache(ids)
  return timed(() => {
    const t = L.PredictionTrajectory.fromLensAndCache(lens, ids, cache, logits, { targets })
    for (const s of [t.entropy(), t.forwardKl(), t.maxProbability(), t.rank()]) s.dispose?.()
    t.dispose?.()
  })
}

async function main() {
  const out = {}
  for (const [name, fn] of [['train_step_ms', trainStep], ['lens_step_ms', lensStep], ['trajectory_ms', trajectory]]) {
    log(name)
    out[name] = await fn()
  }
  console.log(JSON.stringify(out))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
