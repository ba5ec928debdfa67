#!/usr/bin/env node
'use strict'
// `npm run bench:decode`: greedy decode tokens/s (128 new tokens after a 16-token prompt) at
// batch 1 and 8, this library vs Python TL's generate, plus what memory bandwidth allows at
// batch 1 (every weight read once per token), for each shape in BENCH_SHAPES (see run.js) and
// each dtype in BENCH_DTYPES (default float32,bfloat16: TL's `dtype`, unprocessed weights).

const path = require('node:path')

const { PYTHON, SHAPES, runBench, ensureCheckpoint } = require('./env')

const shapes = (process.env.BENCH_SHAPES || Object.keys(SHAPES).join(',')).split(',').filter(Boolean)
const dtypes = (process.env.BENCH_DTYPES || 'float32,bfloat16').split(',').filter(Boolean)
for (const shape of shapes) for (const dtype of dtypes) {
  const model = ensureCheckpoint(shape)
  const ours = runBench(process.execPath, [path.join(__dirname, 'decode_js.js')], model, { BENCH_DTYPE: dtype })
  const tl = process.env.BENCH_SKIP_PYTHON ? null : runBench(PYTHON, [path.join(__dirname, 'decode_tl.py')], model, { BENCH_DTYPE: dtype })
  if (ours.error) {
    console.error(ours.error)
    process.exit(1)
  }
  const gb = (x) => (x / 1e9).toFixed(1)
  console.log(`## ${shape} (\`${model}\`), ${dtype}`)
  console.log()
  console.log(`weights read per decode step: ${(ours.weight_bytes / 2 ** 20).toFixed(0)} MiB; memcpy bandwidth (read + write): ${gb(ours.copy_bandwidth)} GB/s`)
  console.log()
  console.log('| greedy decode, 128 new tokens | transformer-lens (Node) | Python TL | ratio (ours / TL) | weight bytes/s (ours) |')
  console.log('|---|---:|---:|---:|---:|')
  for (const b of Object.keys(ours.tokens_per_s)) {
    const o = ours.tokens_per_s[b]
    const t = tl?.tokens_per_s?.[b]
    const steps = o / Number(b)
    console.log(`| batch ${b} | ${o.toFixed(1)} tok/s | ${t ? t.toFixed(1) + ' tok/s' : 'n/a'} | ${t ? (o / t).toFixed(2) + '×' : 'n/a'} | ${gb(steps * ours.weight_bytes)} GB/s |`)
  }
  console.log()
}
