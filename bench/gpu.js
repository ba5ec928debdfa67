#!/usr/bin/env node
'use strict'
// `npm run bench:gpu`: transformer-lens (Node) against Python TransformerLens on one CUDA GPU,
// GPT-2-small-shaped random weights in float32 (the checkpoint of `npm run bench`). Needs a CUDA
// build of the addon (see README) and a Python with transformer-lens and CUDA torch (TL_PYTHON).

const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { HUB, PYTHON, runBench, ensureCheckpoint } = require('./env')

const fmt = (k, v) => (v == null ? 'n/a' : k.startsWith('decode') ? `${v.toFixed(1)} tok/s` : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(2)} ms`)

function main() {
  const gpu = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader'], { encoding: 'utf8' })
  console.log('# transformer-lens (Node) vs Python TransformerLens, on a GPU')
  console.log()
  console.log(`GPU: ${(gpu.stdout || 'unknown').trim()}; checkpoint: ${HUB}`)
  ensureCheckpoint()
  const ours = runBench(process.execPath, [path.join(__dirname, 'gpu_js.js')])
  if (ours.error) {
    console.error(ours.error)
    process.exit(1)
  }
  const tl = process.env.BENCH_SKIP_PYTHON === '1' ? { error: 'skipped' } : runBench(PYTHON, [path.join(__dirname, 'gpu_tl.py')])
  if (tl.versions) console.log(`Python TL ${tl.versions.transformer_lens}, torch ${tl.versions.torch}; float32, TF32 off on both sides; median of runs after warm-ups, each timed between device synchronisations.`)
  console.log()
  console.log('| | transformer-lens (Node) | Python TL | ratio |')
  console.log('|---|---:|---:|---:|')
  for (const k of Object.keys(ours.rows)) {
    const a = ours.rows[k]
    const b = tl.rows?.[k]
    const r = b == null ? 'n/a' : k.startsWith('decode') ? `${(a / b).toFixed(2)}×` : `${(b / a).toFixed(2)}×`
    console.log(`| ${k} | ${fmt(k, a)} | ${fmt(k, b)} | ${r} |`)
  }
  console.log()
  console.log('ratio: above 1 means the Node library is faster. load: in-process, median of 3 (weights to the GPU included).')
  if (tl.error) console.log(`Python TL: ${tl.error}`)
}

main()
