#!/usr/bin/env node
'use strict'
// `npm run bench`: times transformer-lens (Node) against Python TransformerLens on random
// checkpoints of GPT-2 small's, Pythia-160m's and a ~110M Llama's shape, and prints a markdown
// table per shape. See bench/README.md.
//
// Env: TL_PYTHON (Python with transformer-lens; default /work/pyenv/venv/bin/python if
// present, else python3), BENCH_HUB (checkpoint cache dir; default bench/.out/hub),
// BENCH_REPS (timed runs per measurement, default 7), BENCH_LOAD_REPS (default 3),
// BENCH_SKIP_PYTHON=1 (our column only), BENCH_SHAPES (comma-separated, default
// gpt2,pythia-160m,llama,gemma2,mixtral,bert,t5-small; bert is HookedEncoder's row, t5-small
// HookedEncoderDecoder's).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { ROOT, PYTHON, runBench, ensureCheckpoint, pythonHas } = require('./env')
function machine() {
  let cpu = os.cpus()[0]?.model || 'unknown'
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)
    if (m) cpu = m[1].trim()
  } catch {}
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
  return { cpu, cores, memGiB: os.totalmem() / 2 ** 30, platform: `${os.platform()} ${os.release()} ${os.arch()}` }
}

const fmtMs = (ms) => (ms == null || Number.isNaN(ms) ? 'n/a' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`)
const fmtMiB = (mib) => (mib == null ? 'n/a' : `${mib.toFixed(0)} MiB`)
const ratio = (theirs, ours) => (theirs > 0 && ours > 0 ? `${(theirs / ours).toFixed(2)}×` : 'n/a')

const SHAPE_TEXT = {
  gpt2: 'GPT-2 small shape (12 layers, d_model 768, vocab 50257)',
  'pythia-160m': 'Pythia-160m shape (GPT-NeoX: 12 layers, d_model 768, parallel attention + MLP, rotary on 16 of 64 dims, vocab 50304)',
  llama: 'Llama shape, ~110M parameters (12 layers, d_model 768, 12 query / 4 K/V heads, gated SiLU MLP 2048, RMSNorm, vocab 32000)',
  gemma2: 'Gemma-2 shape, reduced (12 layers, d_model 768, 8 query / 4 K/V heads of 96, GELU-tanh gated MLP 3072, pre- and post-norms, soft caps 50 / 30, local / global layers, vocab 32000)',
  mixtral: 'Mixtral shape, reduced (8 layers, d_model 768, 12 query / 4 K/V heads, 8 experts of d_mlp 1024, top-2 routing, vocab 32000)',
  't5-small': 'T5-small shape (HookedEncoderDecoder: 6 + 6 layers, d_model 512, 8 heads of 64, ReLU MLP 2048, vocab 32128)',
  bert: 'BERT-base shape (HookedEncoder: 12 layers, d_model 768, 12 heads, MLP 3072, vocab 28996, MLM + NSP heads)',
}

function main() {
  const m = machine()
  console.log(`# transformer-lens (Node) vs Python TransformerLens`)
  console.log()
  console.log(`Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB.toFixed(0)} GiB RAM, ${m.platform}`)

  const lib = path.resolve(process.env.BENCH_LIB || path.join(ROOT, 'dist', 'index.js'))
  if (!fs.existsSync(lib)) {
    console.error(`${path.relative(ROOT, lib)} is missing: run \`npm run build\` first.`)
    process.exit(1)
  }
  const shapes = (process.env.BENCH_SHAPES || 'gpt2,pythia-160m,llama,gemma2,mixtral,bert,t5-small').split(',').filter(Boolean)
  for (const shape of shapes) benchShape(shape)
}

function benchShape(shape) {
  if (shape === 'bert') return benchEncoder()
  const model = ensureCheckpoint(shape)
  if (shape === 't5-small') return require('./t5_table').benchT5(model, SHAPE_TEXT[shape], { fmtMs, fmtMiB, ratio })

  console.error(`[bench] ${shape}: transformer-lens (Node) ...`)
  const ours = runBench(process.execPath, [path.join(__dirname, 'js_bench.js')], model)
  if (ours.error) {
    console.error(`[bench] ${ours.error}`)
    process.exit(1)
  }

  let tl = null
  let tlMissing = null
  if (process.env.BENCH_SKIP_PYTHON === '1') tlMissing = 'skipped (BENCH_SKIP_PYTHON=1)'
  else if (!pythonHas('transformer_lens, torch')) tlMissing = `${PYTHON} cannot import transformer_lens`
  else {
    console.error(`[bench] ${shape}: Python TransformerLens ...`)
    tl = runBench(PYTHON, [path.join(__dirname, 'tl_bench.py')], model)
    if (tl.error) {
      tlMissing = tl.error
      tl = null
    }
  }

  console.log()
  console.log(`## ${shape} (\`${model}\`)`)
  console.log()
  const v = ours.versions
  const versions = [`node ${v.node}`, `transformer-lens (Node) ${v['transformer-lens']}`]
  if (tl) {
    const pv = tl.versions
    versions.push(`Python ${pv.python}`, `TransformerLens ${pv.transformer_lens}`, `torch ${pv.torch} (${tl.threads} threads)`, `transformers ${pv.transformers}`)
  }
  console.log(`Versions: ${versions.join(', ')}`)
  console.log(
    `Model: ${SHAPE_TEXT[shape] ?? shape}, random weights, float32, CPU; ` +
      `median of ${ours.reps} runs after 2 warm-ups (1×1024: ${Math.max(3, ours.reps - 2)}), load: median of 3 fresh processes.`,
  )
  console.log()
  const rows = [
    ['load (`fromPretrained` / `from_pretrained`)', (r) => r.load.median_ms, fmtMs],
    ['forward 1×128', (r) => r.forward_128.median_ms, fmtMs],
    ['forward 1×1024', (r) => r.forward_1024.median_ms, fmtMs],
    ['runWithCache 1×128 (all hooks)', (r) => r.run_with_cache_128.median_ms, fmtMs],
    ['runWithCache 1×128, loss + inclBwd (all grads)', (r) => r.incl_bwd_128?.median_ms, fmtMs],
    ['no-op hook per layer, overhead at 1×128', (r) => r.hooks_12_noop_128.overhead_ms, fmtMs],
    ['peak RSS (load + runWithCache 1×128)', (r) => r.peak_rss.mib, fmtMiB],
  ]
  if (tl) {
    console.log('| | transformer-lens (Node) | Python TL | ratio (TL / ours) |')
    console.log('|---|---:|---:|---:|')
    for (const [name, get, fmt] of rows) console.log(`| ${name} | ${fmt(get(ours))} | ${fmt(get(tl))} | ${ratio(get(tl), get(ours))} |`)
    console.log()
    console.log('ratio = Python TL / transformer-lens (Node): above 1 means the Node library is faster (or, for RSS, smaller).')
    const h = (r) => r.hooks_12_noop_128
    console.log(
      `Hook overhead = median over ${h(ours).pairs} back-to-back pairs of (run with 12 no-op hooks on blocks.*.hook_resid_post − plain forward); ` +
        `medians hooked / plain: ours ${fmtMs(h(ours).hooked_median_ms)} / ${fmtMs(h(ours).plain_median_ms)}, ` +
        `TL ${fmtMs(h(tl).hooked_median_ms)} / ${fmtMs(h(tl).plain_median_ms)}. It is small next to the run-to-run noise of a forward.`,
    )
  } else {
    console.log(`Python TransformerLens unavailable: ${tlMissing}. Our column only.`)
    console.log()
    console.log('| | transformer-lens (Node) |')
    console.log('|---|---:|')
    for (const [name, get, fmt] of rows) console.log(`| ${name} | ${fmt(get(ours))} |`)
  }
  const imp = (r) => fmtMs(r.load.import_median_ms)
  console.log(`Not in "load": \`require('transformer-lens')\` ${imp(ours)}${tl ? `; \`import transformer_lens\` (with torch) ${imp(tl)}` : ''}.`)
  const n = (r) => r.peak_rss.n_cached
  if (n(ours) != null || (tl && n(tl) != null)) {
    console.log(`Cached activations in the RSS run: ours ${n(ours) ?? '?'}${tl ? `, TL ${n(tl)}` : ''}.`)
  }
  console.log(`Bench wall time: ours ${ours.wall_s}s${tl ? `, TL ${tl.wall_s}s` : ''}.`)
}

// The encoder (HookedEncoder) row: forward and runWithCache at batch 8 × 128 (bench/encoder_js.js,
// bench/encoder_tl.py).
function benchEncoder() {
  const model = ensureCheckpoint('bert')
  console.error('[bench] bert: transformer-lens (Node) ...')
  const ours = runBench(process.execPath, [path.join(__dirname, 'encoder_js.js')], model)
  if (ours.error) {
    console.error(`[bench] ${ours.error}`)
    process.exit(1)
  }
  let tl = null
  let tlMissing = null
  if (process.env.BENCH_SKIP_PYTHON === '1') tlMissing = 'skipped (BENCH_SKIP_PYTHON=1)'
  else if (!pythonHas('transformer_lens, torch')) tlMissing = `${PYTHON} cannot import transformer_lens`
  else {
    console.error('[bench] bert: Python TransformerLens ...')
    tl = runBench(PYTHON, [path.join(__dirname, 'encoder_tl.py')], model)
    if (tl.error) [tlMissing, tl] = [tl.error, null]
  }
  console.log()
  console.log(`## bert (\`${model}\`)`)
  console.log()
  console.log(`Model: ${SHAPE_TEXT.bert}, random weights, float32, CPU; median of ${ours.reps} runs after 2 warm-ups; load: median of 3 fresh processes.`)
  console.log()
  const rows = [
    ['load (`HookedEncoder.fromPretrained` / `from_pretrained`)', (r) => r.load.median_ms, fmtMs],
    ['forward 8×128 (MLM logits)', (r) => r.forward_8x128.median_ms, fmtMs],
    ['runWithCache 8×128 (all hooks)', (r) => r.run_with_cache_8x128.median_ms, fmtMs],
    ['peak RSS (load, forward and runWithCache, one process)', (r) => r.rss_mib, fmtMiB],
  ]
  if (tl) {
    console.log('| | transformer-lens (Node) | Python TL | ratio (TL / ours) |')
    console.log('|---|---:|---:|---:|')
    for (const [name, get, fmt] of rows) console.log(`| ${name} | ${fmt(get(ours))} | ${fmt(get(tl))} | ${ratio(get(tl), get(ours))} |`)
  } else {
    console.log(`Python TransformerLens unavailable: ${tlMissing}. Our column only.`)
    console.log()
    console.log('| | transformer-lens (Node) |')
    console.log('|---|---:|')
    for (const [name, get, fmt] of rows) console.log(`| ${name} | ${fmt(get(ours))} |`)
  }
  console.log(`Cached activations: ours ${ours.run_with_cache_8x128.n_cached}${tl ? `, TL ${tl.run_with_cache_8x128.n_cached}` : ''}. Bench wall time: ours ${ours.wall_s}s${tl ? `, TL ${tl.wall_s}s` : ''}.`)
}

main()
