#!/usr/bin/env node
'use strict'
// `npm run bench:train`: training and tuned-lens timings, this library beside Python TL /
// tuned-lens on the same machine: one `train` step of the demo model (batch 32 x 49, AdamW,
// clipping), one tuned-lens training step on the GPT-2-small-shaped checkpoint (2 x 128 tokens,
// all 12 translators, tuned-lens's loop body), and PredictionTrajectory statistics (entropy,
// forward KL, max probability, rank) over a 12-layer x 128-position cache.
const path = require('node:path')
const { PYTHON, runBench, ensureCheckpoint } = require('./env')

ensureCheckpoint('gpt2')
const ours = runBench(process.execPath, [path.join(__dirname, 'train_js.js')])
const theirs = process.env.BENCH_SKIP_PYTHON === '1' ? {} : runBench(PYTHON, [path.join(__dirname, 'train_tl.py')])
if (ours.error) {
  console.error(ours.error)
  process.exit(1)
}
const fmt = (ms) => (ms == null ? 'n/a' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`)
const ratio = (a, b) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a')
console.log('| measurement | transformer-lens (Node) | Python (TL / tuned-lens) | speed-up |')
console.log('|---|---|---|---|')
for (const [k, label] of [
  ['train_step_ms', 'train step, demo model (32×49 tokens, AdamW)'],
  ['lens_step_ms', 'tuned-lens step, GPT-2-small shape (2×128 tokens, 12 translators)'],
  ['trajectory_ms', 'trajectory statistics, 12 layers × 128 positions (4 statistics)'],
]) {
  console.log(`| ${label} | ${fmt(ours[k])} | ${fmt(theirs[k])} | ${ratio(theirs[k], ours[k])} |`)
}
