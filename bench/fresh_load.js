'use strict'
// Load timings as the bench takes them for every shape (ours and TL's alike): the checkpoint's
// files are read once first, so that no side pays for a cold page cache that the other then
// finds warm, and each load runs in a fresh process (`<script> --child load`, which prints
// `{ import_ms, load_ms }` on its last stdout line); the result is their median.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

// Reads every file of `model`'s snapshot in HF_HUB_CACHE (best effort).
function warmPageCache(model) {
  const hub = process.env.HF_HUB_CACHE
  if (!hub) return
  try {
    const repo = path.join(hub, `models--${model.replace(/\//g, '--')}`)
    const rev = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim()
    const dir = path.join(repo, 'snapshots', rev)
    const buf = Buffer.allocUnsafe(64 << 20)
    for (const name of fs.readdirSync(dir)) {
      const fd = fs.openSync(path.join(dir, name), 'r')
      while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
      fs.closeSync(fd)
    }
  } catch {
    // best effort: a missing file shows up as a load error instead
  }
}

// Runs `script --child <mode>` in a fresh Node process; its last stdout line parsed.
function runChild(script, mode) {
  const r = spawnSync(process.execPath, [script, '--child', mode], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`child ${mode} failed (${r.status ?? r.signal}):\n${(r.stderr || '').slice(-4000)}`)
  const lines = r.stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1])
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

// `reps` loads of `model` by `script`, each in a fresh process after warming the page cache.
function freshLoads(script, model, reps, log = () => {}) {
  warmPageCache(model)
  const loads = []
  for (let i = 0; i < reps; i++) {
    const r = runChild(script, 'load')
    log(`load ${i + 1}/${reps}: ${(r.load_ms / 1000).toFixed(2)}s (require ${(r.import_ms / 1000).toFixed(2)}s)`)
    loads.push(r)
  }
  return {
    median_ms: median(loads.map((r) => r.load_ms)),
    runs_ms: loads.map((r) => +r.load_ms.toFixed(1)),
    import_median_ms: median(loads.map((r) => r.import_ms)),
  }
}

module.exports = { warmPageCache, runChild, freshLoads, median }
