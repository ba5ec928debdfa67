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

// Runs a bench script; stderr (progress) streams through, the last stdout line is its JSON.
function runBench(cmd, args) {
  const t0 = Date.now()
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 })
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

module.exports = { ROOT, HUB, PYTHON, env, runBench }
