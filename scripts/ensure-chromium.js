#!/usr/bin/env node
// Makes a headless Chromium available to the browser checks of the pictures (__test__/viz.test.ts).
// Uses $TL_CHROMIUM, else /usr/bin/chromium; when neither is there and we are root on Linux with
// apt-get, installs Debian's `chromium` (running `apt-get update` first if the plain install
// fails). Prints the browser's path, or why there is none, and exits 0 either way: without a
// browser the browser checks skip and say so. TL_SKIP_BROWSER=1 skips the install.
'use strict'
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK)
    return fs.statSync(p).isFile()
  } catch {
    return false
  }
}

/** The browser to use, or null. */
function chromiumPath() {
  const env = process.env.TL_CHROMIUM
  if (env) return isExecutable(env) ? env : null
  return CANDIDATES.find(isExecutable) ?? null
}

/** `{ path }` of a usable browser, installing one if we may; else `{ path: null, reason }`. */
function ensureChromium() {
  const found = chromiumPath()
  if (found) return { path: found }
  if (process.env.TL_CHROMIUM) return { path: null, reason: `TL_CHROMIUM=${process.env.TL_CHROMIUM} is not an executable file` }
  if (process.env.TL_SKIP_BROWSER === '1') return { path: null, reason: 'TL_SKIP_BROWSER=1' }
  if (process.platform !== 'linux') return { path: null, reason: `no Chromium found (${process.platform}): set TL_CHROMIUM to a Chromium or Chrome binary` }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { path: null, reason: 'no /usr/bin/chromium and not root: run `apt-get install -y chromium` (or set TL_CHROMIUM)' }
  }
  if (!isExecutable('/usr/bin/apt-get')) return { path: null, reason: 'no /usr/bin/chromium and no apt-get to install it: set TL_CHROMIUM' }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const apt = (args) => spawnSync('apt-get', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 })
  const install = () => apt(['install', '-y', '--no-install-recommends', 'chromium', 'fonts-dejavu-core'])
  console.error('ensure-chromium: installing Debian chromium with apt-get (once) ...')
  let r = install()
  if (r.status !== 0) {
    apt(['update'])
    r = install()
  }
  const got = chromiumPath()
  if (got) return { path: got }
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n')
  return { path: null, reason: `apt-get install chromium failed (exit ${r.status}):\n${tail}` }
}

module.exports = { chromiumPath, ensureChromium }

if (require.main === module) {
  const r = ensureChromium()
  if (r.path) console.log(`chromium: ${r.path}`)
  else console.log(`chromium: none (${r.reason}); the browser checks of the pictures will skip`)
}
