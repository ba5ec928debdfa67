#!/usr/bin/env node
'use strict'
// The `transformer-lens` command: see src/cli.ts (compiled to dist/cli.js).
const { main } = require('../dist/cli.js')

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e) => {
    process.stderr.write(`transformer-lens: TL_INTERNAL: ${e && e.stack ? e.stack : e}\n`)
    process.exitCode = 1
  },
)
