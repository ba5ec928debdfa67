'use strict'
// Shared by the bench runners: where the checkpoint and Python are, the offline environment
// the bench scripts run in, and how a bench script's JSON result is read.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')
const HUB = path.resolve(process.env.BENCH_HUB || path.join(__dirname, '.out', 'hub'))
const DEFAULT_VENV = '/work/pyenv/venv/bin/python'
const PYTHON = process.env.TL_PYTHON || (fs.existsSync(DEFAULT_VENV) ? DEFAULT_VENV : 'python3')

const env = {
  ...process.env,
  HF_HUB_CACHE: HUB,
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  HF_HUB_DISABLE_TELEMETRY: '1',
  TOKENIZERS_PARALLELISM: 'false',
}

// Runs a bench script (on `model`, BENCH_MODEL); stderr (progress) streams through, the last
// stdout line is its JSON.
function runBench(cmd, args, model = 'gpt2', extraEnv = {}) {
  const t0 = Date.now()
  const r = spawnSync(cmd, args, { cwd: ROOT, env: { ...env, ...extraEnv, BENCH_MODEL: model }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 })
  const secs = ((Date.now() - t0) / 1000).toFixed(0)
  if (r.error) return { error: `${cmd}: ${r.error.message}` }
  if (r.status !== 0) return { error: `${path.basename(args[0])} exited with ${r.status ?? r.signal} after ${secs}s` }
  const lines = (r.stdout || '').trim().split('\n')
  try {
    const out = JSON.parse(lines[lines.length - 1])
    out.wall_s = +secs
    return out
  } catch {
    return { error: `${path.basename(args[0])} printed no JSON result` }
  }
}

const CHECKPOINT_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']

// The benchmark shapes (bench/make_checkpoint.py SHAPES): shape name → model id in the cache.
const SHAPES = {
  gpt2: 'gpt2',
  'pythia-160m': 'EleutherAI/pythia-160m',
  llama: '01-ai/Yi-6B',
  gemma2: 'google/gemma-2-2b',
  mixtral: 'mistralai/Mixtral-8x7B-v0.1',
  't5-small': 'google-t5/t5-small',
  bert: 'google-bert/bert-base-cased',
}

function checkpointReady(modelId) {
  try {
    const repo = path.join(HUB, `models--${modelId.replace(/\//g, '--')}`)
    const rev = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim()
    return CHECKPOINT_FILES.every((f) => fs.existsSync(path.join(repo, 'snapshots', rev, f)))
  } catch {
    return false
  }
}

function pythonHas(modules) {
  const r = spawnSync(PYTHON, ['-c', `import ${modules}`], { env, encoding: 'utf8' })
  return r.status === 0
}

// Makes the random checkpoint of `shape` in HUB (once) with make_checkpoint.py; returns its id.
function ensureCheckpoint(shape = 'gpt2') {
  const modelId = SHAPES[shape]
  if (!modelId) {
    console.error(`[bench] unknown shape '${shape}' (one of ${Object.keys(SHAPES).join(', ')})`)
    process.exit(1)
  }
  if (checkpointReady(modelId)) return modelId
  console.error(`[bench] making the ${shape}-shaped random checkpoint in ${HUB} with ${PYTHON}`)
  if (!pythonHas('torch, transformers')) {
    console.error(`[bench] ${PYTHON} cannot import torch and transformers, which make_checkpoint.py needs.`)
    console.error('[bench] Set TL_PYTHON to a Python with scripts/reference/requirements.txt installed.')
    process.exit(1)
  }
  const r = spawnSync(PYTHON, [path.join(__dirname, 'make_checkpoint.py'), HUB, shape], { env, stdio: 'inherit' })
  if (r.status !== 0 || !checkpointReady(modelId)) {
    console.error('[bench] make_checkpoint.py failed')
    process.exit(1)
  }
  return modelId
}

module.exports = { ROOT, HUB, PYTHON, SHAPES, env, runBench, ensureCheckpoint, pythonHas }
