import { spawnSync } from 'node:child_process'
import * as path from 'node:path'

import test from 'ava'

test('tensors, caches and runs that are never disposed are reclaimed by the GC (external memory)', (t) => {
  const child = path.join(__dirname, 'helpers', 'leak-child.ts')
  const r = spawnSync(process.execPath, ['--import=tsx', child], { encoding: 'utf8', timeout: 240_000 })
  t.is(r.status, 0, r.stderr)
  const { growthMiB } = JSON.parse(r.stdout.trim().split('\n').pop()!)
  // 3.2 GiB were allocated; without external-memory accounting RSS grows by gigabytes.
  t.true(growthMiB < 1024, `RSS grew by ${growthMiB.toFixed(0)} MiB`)
})
