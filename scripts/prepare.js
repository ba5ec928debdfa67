#!/usr/bin/env node
// Runs on `npm install` / `npm ci` in a clone: builds the native addon from source when no
// prebuilt binary matches this platform, then compiles the TypeScript to dist/.
'use strict'
const { execSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' })

function hasNative() {
  const local = fs.readdirSync(path.join(root, 'binding')).some((f) => f.endsWith('.node'))
  if (local) return true
  try {
    require(path.join(root, 'binding', 'index.js'))
    return true // a prebuilt platform package from optionalDependencies
  } catch {
    return false
  }
}

if (process.env.TL_SKIP_NATIVE_BUILD !== '1' && (process.env.TL_FORCE_NATIVE_BUILD === '1' || !hasNative())) {
  console.log('transformer-lens: no prebuilt binary for this platform; building the native addon (cargo, release)...')
  run('npx napi build --platform --release --output-dir binding --js index.js --dts index.d.ts')
}
run('npx tsc -p tsconfig.build.json')
