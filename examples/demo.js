#!/usr/bin/env node
// Induction heads in a model this library trained itself (models/demo-induction: 2 layers,
// attention only, trained by `npm run train:demo` on random words repeated once). Offline, no
// HF cache needed. Every number below is computed now, from the model. `npm run demo`
// Writes an HTML report to demo-report/index.html (or the folder in $DEMO_REPORT).
'use strict'
const path = require('node:path')

const { HookedTransformer, PyRandom, detectHead, attentionPatternHtmlFromCache, headScoresHtml, heatmapHtml, writeHtml } = require('../dist/index.js')
const { DEMO_WORDS } = require('./demo-data.js')

const MODEL_DIR = path.join(__dirname, '..', 'models', 'demo-induction')
const REPORT = process.env.DEMO_REPORT ?? path.join(process.cwd(), 'demo-report')
const L = 16 // words before the repeat

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
const fmt = (x) => x.toFixed(3)

/**
 * The report: one self-contained page per picture, and index.html showing them in frames (the
 * pages keep their own strict content policies; the index has no script).
 */
function writeReport(dir, title, intro, sections) {
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
  const frames = sections.map(([file, h, text, page, height]) => {
    writeHtml(path.join(dir, file), page)
    return `<h2>${esc(h)}</h2><p>${esc(text)} <a href="${file}">open</a></p><iframe src="${file}" style="width:100%;height:${height}px;border:1px solid #ddd"></iframe>`
  })
  const index = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:14px system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}pre{background:#f6f6f6;padding:.8em;overflow:auto}</style></head>
<body><h1>${esc(title)}</h1><pre>${esc(intro)}</pre>${frames.join('\n')}</body></html>`
  return writeHtml(path.join(dir, 'index.html'), index)
}

async function main() {
  const model = await HookedTransformer.fromPretrained(MODEL_DIR)
  const { n_layers, n_heads, d_model, d_vocab } = model.cfg
  const log = []
  const say = (s = '') => {
    console.log(s)
    log.push(s)
  }
  say(`Loaded ${model.cfg.model_name}: ${n_layers} layers x ${n_heads} heads, d_model ${d_model}, ${d_vocab} words, attention only`)

  // A sequence of random words, then the same words again.
  const rng = new PyRandom(2026)
  const words = Array.from({ length: L }, () => rng.choice(DEMO_WORDS))
  const prompt = [...words, ...words].join(' ')
  const tokens = model.toTokens(prompt) // BOS + 2L words
  say(`Prompt (BOS + ${L} random words + the same ${L} again): ${words.slice(0, 6).join(' ')} ... | ${words.slice(0, 6).join(' ')} ...`)

  // 1. Loss on the first half (unpredictable) versus the repeat (predictable by induction).
  const perToken = Array.from((await model.forward(tokens, { returnType: 'loss', lossPerToken: true })).toArray())
  const first = perToken.slice(0, L) // predicting words 2..L and the first repeat
  const repeat = perToken.slice(L + 1) // predicting repeated words 2..L
  say(`\n1. Loss per token: first half ${fmt(mean(first))} (ln ${d_vocab - 1} = ${fmt(Math.log(d_vocab - 1))}), repeated half ${fmt(mean(repeat))}`)

  // 2. Which heads do what: TL's head detector.
  const induction = await detectHead(model, prompt, 'induction_head')
  const previous = await detectHead(model, prompt, 'previous_token_head')
  const grid = (t) => Array.from({ length: n_layers }, (_, l) => Array.from(t.get(l).toArray()))
  const ind = grid(induction)
  const prev = grid(previous)
  say('\n2. detectHead scores (rows: layers, columns: heads)')
  say(`   induction:      ${ind.map((r) => r.map(fmt).join(' ')).join(' | ')}`)
  say(`   previous token: ${prev.map((r) => r.map(fmt).join(' ')).join(' | ')}`)
  const best = (g) => g.flatMap((r, l) => r.map((v, h) => [v, l, h])).sort((a, b) => b[0] - a[0])[0]
  const [indScore, il, ih] = best(ind)
  const [prevScore, pl, ph] = best(prev)
  say(`   induction head L${il}H${ih} (${fmt(indScore)}), previous-token head L${pl}H${ph} (${fmt(prevScore)})`)

  // 3. The induction head's attention: from each repeated word to the word after its first copy.
  const [, cache] = await model.runWithCache(tokens)
  const pattern = cache.get('pattern', il).get(0, ih) // [dest, src]
  const rows = pattern.toList()
  const onTarget = []
  for (let d = L + 1; d <= 2 * L; d++) onTarget.push(rows[d][d - L + 1])
  say(`\n3. L${il}H${ih} attention from repeated tokens to "the token after my earlier copy": mean ${fmt(mean(onTarget))}`)

  // 4. Ablations (zero a head's hook_z): the induction heads, then the previous-token head that
  //    feeds them; either breaks the repeat.
  const ablate = async (heads) => {
    const hooks = heads.map(([l, h]) => [`blocks.${l}.attn.hook_z`, (z) => z.sliceAssign([null, null, h], 0)])
    const out = await model.runWithHooks(tokens, { returnType: 'loss', lossPerToken: true, fwdHooks: hooks })
    return mean(Array.from(out.toArray()).slice(L + 1))
  }
  const inductionHeads = ind.flatMap((r, l) => r.map((v, h) => [v, l, h])).filter(([v]) => v >= 0.75 * indScore).map(([, l, h]) => [l, h])
  const names = (hs) => hs.map(([l, h]) => `L${l}H${h}`).join(', ')
  say(`\n4. Zero-ablation, repeated-half loss ${fmt(mean(repeat))} ->`)
  say(`   induction heads (${names(inductionHeads)}): ${fmt(await ablate(inductionHeads))}`)
  say(`   previous-token head L${pl}H${ph}: ${fmt(await ablate([[pl, ph]]))}`)
  say(`   a head that is neither (L${pl}H${(ph + 1) % n_heads}): ${fmt(await ablate([[pl, (ph + 1) % n_heads]]))}`)

  // 5. Logit lens: the residual stream read through the final norm and unembedding after each layer.
  const streams = [['embed', cache.get('resid_pre', 0)], ...Array.from({ length: n_layers }, (_, l) => [`after L${l}`, cache.get('resid_post', l)])]
  const target = tokens.get(0, [1, null]) // next tokens
  say('\n5. Logit lens: p(correct next word) on the repeated half, read from the residual stream')
  const lensRows = []
  const lensText = []
  for (const [label, r] of streams) {
    const x = r.get(0, [null, -1]) // [pos, d]
    const c = x.sub(x.mean(-1, { keepdim: true }))
    const normed = c.div(c.square().mean(-1, { keepdim: true }).add(model.cfg.eps).sqrt())
    const logp = normed.matmul(model.W_U).add(model.b_U).logSoftmax(-1)
    const p = logp.gather(1, target.unsqueeze(1)).squeeze(1).exp()
    const top = logp.argmax(-1)
    lensRows.push(Array.from(p.toArray()))
    lensText.push(Array.from(top.toArray(), (id) => model.toString([Number(id)])))
    say(`   ${label.padEnd(9)} ${fmt(mean(Array.from(p.toArray()).slice(L + 1)))}`)
  }

  // The report.
  const strTokens = model.toStrTokens(tokens)
  const index = writeReport(REPORT, 'transformer-lens demo: induction heads', log.join('\n'), [
    ['induction-scores.html', 'Induction scores (detectHead)', 'Per head: how much attention goes to the token after the previous copy of the current token.',
      headScoresHtml({ scores: ind, title: 'induction_head scores', rowLabel: 'layer', colLabel: 'head' }), 260],
    ['previous-token-scores.html', 'Previous-token scores (detectHead)', 'Per head: how much attention goes to the previous position.',
      headScoresHtml({ scores: prev, title: 'previous_token_head scores', rowLabel: 'layer', colLabel: 'head' }), 260],
    ['attention.html', `Attention patterns of layer ${il}`, 'Pick a head; the induction head attends along an off-diagonal stripe on the repeat.',
      attentionPatternHtmlFromCache(cache, il, { tokens: strTokens, title: `layer ${il} attention` }), 900],
    ['logit-lens.html', 'Logit lens', 'p(correct next word) read from the residual stream after each layer; cells show the top word.',
      heatmapHtml({ title: 'logit lens: p(next word)', rowLabels: streams.map((s) => s[0]), colLabels: strTokens.slice(0, -1), values: lensRows, cellText: lensText, colorScale: 'sequential', min: 0, max: 1, units: 'probability' }), 360],
  ])
  say(`\nReport: ${index}`)
  cache.dispose()
  model.dispose()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
