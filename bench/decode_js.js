#!/usr/bin/env node
'use strict'
// Greedy decode throughput of transformer-lens (Node) on the benchmark checkpoint.
// Usage: HF_HUB_CACHE=bench/.out/hub node bench/decode_js.js   (last stdout line: JSON)

const path = require('node:path')
const LIB = path.resolve(process.env.BENCH_LIB || path.join(__dirname, '..', 'dist', 'index.js'))
const { HookedTransformer, Tensor } = require(LIB)
const { promptIds, NEW_TOKENS, PROMPT_LEN, BATCHES } = require('./decode_common')

const log = (...a) => console.error('[js decode]', ...a)
const now = () => Number(process.hrtime.bigint()) / 1e6

// Single-threaded memcpy bandwidth (bytes read + written per second) over 256 MiB.
function copyBandwidth() {
  const n = 64 << 20
  const src = new Float32Array(n).fill(1)
  const dst = new Float32Array(n)
  dst.set(src)
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const t0 = now()
    dst.set(src)
    best = Math.min(best, now() - t0)
  }
  return (2 * n * 4) / (best / 1000)
}

async function main() {
  // BENCH_DTYPE: float32 (default), bfloat16 or float16; weights unprocessed, as decode_tl.py.
  const dtype = process.env.BENCH_DTYPE || 'float32'
  const model = await HookedTransformer.fromPretrainedNoProcessing(process.env.BENCH_MODEL || 'gpt2', { dtype })
  let weightBytes = 0
  for (const [name, t] of model.stateDict()) {
    // Decoding reads every weight once per step except the embedding rows it gathers.
    if (name !== 'embed.W_E' && name !== 'pos_embed.W_pos' && !name.endsWith('.mask') && !name.endsWith('.IGNORE')) {
      weightBytes += t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'float32' ? 4 : 2)
    }
    t.dispose()
  }
  const out = { weight_bytes: weightBytes, copy_bandwidth: copyBandwidth(), tokens_per_s: {} }
  for (const b of BATCHES) {
    const prompt = Tensor.from(promptIds(b), [b, PROMPT_LEN])
    const opts = { maxNewTokens: NEW_TOKENS, doSample: false, stopAtEos: false, returnType: 'tokens' }
    await model.generate(prompt, { ...opts, maxNewTokens: 4 }) // warm-up
    const times = []
    for (let r = 0; r < 2; r++) {
      const t0 = now()
      await model.generate(prompt, opts)
      times.push(now() - t0)
    }
    const best = Math.min(...times)
    out.tokens_per_s[b] = (b * NEW_TOKENS) / (best / 1000)
    log(`batch ${b}: ${best.toFixed(0)} ms for ${NEW_TOKENS} steps, ${out.tokens_per_s[b].toFixed(1)} tokens/s`)
  }
  console.log(JSON.stringify(out))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
