#!/usr/bin/env node
// The test command (`npm test`): engine unit tests (cargo) then the API tests (ava), and one
// closing line `N passed, N failed` with the counts of both runners.
'use strict'
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
let passed = 0
let failed = 0
let ok = true

function run(cmd, args, parse) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
  process.stdout.write(r.stdout ?? '')
  process.stderr.write(r.stderr ?? '')
  const counts = parse(`${r.stdout}\n${r.stderr}`)
  passed += counts.passed
  failed += counts.failed
  if (r.status !== 0) {
    ok = false
    if (counts.failed === 0) failed += 1 // a runner that died without counting counts as a failure
  }
}

// Engine unit tests, release profile so the addon's optimized dependencies are reused.
if (process.env.TL_SKIP_CARGO !== '1') {
  run('cargo', ['test', '--release', '-p', 'tl-engine'], (out) => {
    let p = 0
    let f = 0
    for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
      p += Number(m[1])
      f += Number(m[2])
    }
    return { passed: p, failed: f }
  })
}

// API tests against the TL goldens.
run(process.execPath, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap', ...process.argv.slice(2)], (out) => {
  const p = /^# pass (\d+)/m.exec(out)
  const f = /^# fail (\d+)/m.exec(out)
  return { passed: p ? Number(p[1]) : 0, failed: f ? Number(f[1]) : 0 }
})

console.log(`${passed} passed, ${failed} failed`)
process.exit(ok && failed === 0 ? 0 : 1)
