'use strict'
// The T5-small row of `npm run bench` (run.js): bench/t5_js.js and bench/t5_tl.py side by side.

const path = require('node:path')
const { PYTHON, runBench, pythonHas } = require('./env')

function benchT5(model, text, { fmtMs, fmtMiB, ratio }) {
  console.error('[bench] t5-small: transformer-lens (Node) ...')
  const ours = runBench(process.execPath, [path.join(__dirname, 't5_js.js')], model)
  if (ours.error) {
    console.error(`[bench] ${ours.error}`)
    process.exit(1)
  }
  let tl = null
  if (process.env.BENCH_SKIP_PYTHON !== '1' && pythonHas('transformer_lens, torch')) {
    console.error('[bench] t5-small: Python TransformerLens ...')
    tl = runBench(PYTHON, [path.join(__dirname, 't5_tl.py')], model)
    if (tl.error) {
      console.error(`[bench] ${tl.error}`)
      tl = null
    }
  }
  console.log()
  console.log(`## t5-small (\`${model}\`)`)
  console.log()
  console.log(`Model: ${text}, random weights, float32, CPU; median of ${ours.reps} runs after 2 warm-ups (generate: fewer).`)
  console.log('Encoder input and decoder input both 8×128; generate: greedy, 32 new tokens from a 1×128 prompt (ours through the decoder KV cache; TL re-runs the whole model each step).')
  console.log()
  const rows = [
    ['load (median of 3 fresh processes)', (r) => r.load.median_ms],
    ['forward 8×128', (r) => r.forward_8x128.median_ms],
    ['runWithCache 8×128 (all hooks)', (r) => r.run_with_cache_8x128.median_ms],
    ['generate 1×128 + 32 tokens', (r) => r.generate_1x128_32.median_ms],
    ['peak RSS (all of the above, one process)', (r) => r.rss_mib, fmtMiB],
  ]
  if (tl) {
    console.log('| | transformer-lens (Node) | Python TL | ratio (TL / ours) |')
    console.log('|---|---:|---:|---:|')
    for (const [name, get, fmt = fmtMs] of rows) console.log(`| ${name} | ${fmt(get(ours))} | ${fmt(get(tl))} | ${ratio(get(tl), get(ours))} |`)
    console.log(`Cached activations: ours ${ours.n_cached}, TL ${tl.n_cached}. Bench wall time: ours ${ours.wall_s}s, TL ${tl.wall_s}s.`)
  } else {
    console.log('| | transformer-lens (Node) |')
    console.log('|---|---:|')
    for (const [name, get, fmt = fmtMs] of rows) console.log(`| ${name} | ${fmt(get(ours))} |`)
  }
}

module.exports = { benchT5 }
