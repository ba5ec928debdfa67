/**
 * The pictures (src/viz/): the HTML they write (escaping of hostile text, nothing fetched from
 * anywhere, shape errors), then what headless Chromium RENDERS from them, driven over the
 * DevTools protocol (helpers/chromium.ts): cells, labels, computed colours against the scale
 * ends, NaN/±∞ cells, tooltips under a real mouse, the head selector, and no network request.
 * Without a browser (and no way to install one) the browser checks log why and pass.
 * TL_VIZ_SHOTS=dir saves a screenshot of each rendered page there.
 */
import test, { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'

import { attentionPatternHtml, attentionPatternHtmlFromCache, detectHead, headScoresHtml, heatmapHtml, HookedTransformer, Tensor, writeHtml } from '../src/index'
import type { HeatmapSpec } from '../src/index'
import { NAN_RGB, rgbString, scaleRgb, SCALE_STOPS } from '../src/viz/color'
import { showToken } from '../src/viz/html'
import { Browser, findChromium, Page } from './helpers/chromium'
import { useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-viz-'))
const SEQ_LO = rgbString(SCALE_STOPS.sequential[0])
const SEQ_HI = rgbString(SCALE_STOPS.sequential[4])
const HOSTILE = [
  '</script><script>window.__pwned=1</script>',
  '<img src=x onerror="window.__pwned=1">',
  `"'&amp;<b>bold</b>`,
  '\u2028line\u2029sep <!-- x',
  '${y} {{x}}',
  '\n\t',
]

let modelP: Promise<HookedTransformer> | undefined
const load = () => (modelP ??= HookedTransformer.fromPretrained('gpt2'))

// ---- the HTML itself ----

const TAGS = new Set(['html', 'head', 'meta', 'title', 'style', 'body', 'h1', 'div', 'span', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'b', 'button', 'canvas', 'script'])
const ATTRS = new Set(['hidden', 'lang', 'charset', 'http-equiv', 'content', 'name', 'class', 'id', 'style', 'scope', 'role', 'type', 'width', 'height'])

/**
 * Nothing in the page points anywhere: no URL, no attribute that loads (src, href, …), no CSS
 * url(); every `<` outside the page's own code opens a known tag with known attributes, so no
 * caller text became markup.
 */
function assertSelfContained(t: ExecutionContext, html: string): void {
  t.notRegex(html, /https?:|ftp:|\/\/[a-z0-9]/i, 'no URL')
  t.notRegex(html, /@import|url\(|<link|<img|<iframe/i, 'nothing loaded from anywhere')
  t.regex(html, /Content-Security-Policy" content="default-src 'none';/)
  t.is(html.match(/<script/g)?.length, html.match(/<\/script>/g)?.length, 'every script closes where it should')
  const markup = html.replace(/^<!DOCTYPE html>/, '').replace(/<script>[\s\S]*?<\/script>/g, '')
  const tags = [...markup.matchAll(/<\/?([a-zA-Z][\w-]*)([^<>]*)>/g)]
  t.is(tags.length, markup.match(/</g)?.length ?? 0, 'every < opens or closes a tag')
  for (const [, tag, attrs] of tags) {
    t.true(TAGS.has(tag), `unexpected tag <${tag}>`)
    const rest = attrs.replace(/\s([\w-]+)(="[^"]*")?/g, (_, name: string) => {
      t.true(ATTRS.has(name) || name.startsWith('data-') || name.startsWith('aria-'), `unexpected attribute ${name} on <${tag}>`)
      return ''
    })
    t.is(rest.trim(), '', `<${tag}${attrs}> parses as name="value" pairs`)
  }
}

const code = (html: string) => /<script>([\s\S]*?)<\/script>/.exec(html)?.[1]
const data = (html: string) => JSON.parse(/<script type="application\/json" id="tl-data">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? 'null')

const SPEC: HeatmapSpec = {
  title: 'Logit lens: top token',
  rowLabels: ['L0', 'L1', 'L2'],
  colLabels: ['0 "The"', ' fox', 'a', '\n'],
  values: [
    [0, 0.25, 0.5, 1],
    [NaN, 0.75, Infinity, 0.1],
    [-Infinity, 0.3, 0.6, 0.9],
  ],
  cellText: [
    ['the', ' cat', 'x', ' fox'],
    ['?', 'dog', 'big', 'y'],
    ['z', 'w', 'v', '\n'],
  ],
  hover: [
    ['', '', '', 'top-3:\n" fox" 0.81\n" dog" 0.10\n" cat" 0.02'],
    ['', '', '', ''],
    ['', '', '', ''],
  ],
  units: 'probability',
}

test('heatmapHtml: a self-contained page with a cell per value, labels, text, tooltips and a legend', (t) => {
  const html = heatmapHtml(SPEC)
  assertSelfContained(t, html)
  t.is(html.match(/<td /g)?.length, 12)
  t.true(html.includes('<title>Logit lens: top token</title>'))
  t.true(html.includes('>0 &quot;The&quot;</span>'))
  t.true(html.includes('>↵</span>'), 'a newline token is drawn visibly')
  t.true(html.includes('data-tip="L0 · ↵\nvalue 1 probability\n\ntop-3:'))
  t.true(html.includes('&quot; fox&quot; 0.81'))
  t.true(html.includes('<span class="units">probability</span>'))
  t.regex(html, /class="cell nan"/)
  t.is(html.match(/class="cell inf"/g)?.length, 2)
  t.is(html, heatmapHtml(SPEC), 'the same spec writes the same page')
})

test('hostile text is escaped everywhere and the executable script never depends on it', (t) => {
  const [a, b, c, d, e, f] = HOSTILE
  const hm = heatmapHtml({ title: a, rowLabels: [a, b], colLabels: [c, d, e], values: [[1, 2, 3], [4, 5, 6]], cellText: [[a, b, c], [d, e, f]], hover: [[a, b, c], [d, e, f]], units: b })
  const att = attentionPatternHtml({ tokens: HOSTILE, patterns: [Array.from({ length: 6 }, (_, i) => Array.from({ length: 6 }, (_, j) => (j <= i ? 1 / (i + 1) : 0)))], headLabels: [b], title: c })
  for (const html of [hm, att]) {
    assertSelfContained(t, html)
    t.false(html.includes('window.__pwned=1</script>'))
    t.false(html.includes('onerror="'))
    t.false(html.includes('<b>bold'))
  }
  t.notRegex(/id="tl-data">([\s\S]*?)<\/script>/.exec(att)?.[1] ?? '', /[<>\u2028\u2029]/, 'the data block is plain JSON text')
  t.deepEqual(data(att).tokens, HOSTILE, 'tokens survive the JSON round trip unchanged')
  const plain = attentionPatternHtml({ tokens: ['a', 'b'], patterns: [[[1, 0], [0.5, 0.5]]] })
  t.is(code(att), code(plain), 'the page script is the same for any data')
  t.is(code(hm), code(heatmapHtml({ title: 'x', rowLabels: ['r'], colLabels: ['c'], values: [[1]] })))
})

test('headScoresHtml: layers × heads, value text in each cell, diverging when a score is negative', (t) => {
  const html = headScoresHtml({ scores: [[0.5, -1], [0.25, 1]], title: 'Previous-token heads' })
  assertSelfContained(t, html)
  for (const v of ['0.50', '-1.00', '0.25', '1.00']) t.true(html.includes(`>${v}</td>`), v)
  t.true(html.includes('data-scale="diverging"'))
  t.true(html.includes('Layer 1 · Head 0'))
  t.true(html.includes('>Layer \\ Head</th>'))
  const seq = headScoresHtml({ scores: Tensor.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [2, 3]), title: 't', rowLabel: 'Src layer', colLabel: 'Src head', digits: 3 })
  t.true(seq.includes('data-scale="sequential"'))
  t.true(seq.includes('>0.600</td>'))
  t.true(seq.includes('Src layer 1 · Src head 2'))
})

test('shape and argument errors carry codes', (t) => {
  const code = (f: () => unknown) => (t.throws(f) as { code?: string }).code
  t.is(code(() => heatmapHtml({ ...SPEC, values: [[1, 2, 3, 4]] })), 'TL_SHAPE_MISMATCH')
  t.is(code(() => heatmapHtml({ ...SPEC, values: SPEC.values.map((r) => r.slice(1)) })), 'TL_SHAPE_MISMATCH')
  t.is(code(() => heatmapHtml({ ...SPEC, hover: [['x']] })), 'TL_SHAPE_MISMATCH')
  t.is(code(() => heatmapHtml({ ...SPEC, colorScale: 'rainbow' as 'sequential' })), 'TL_INVALID_ARGUMENT')
  t.is(code(() => heatmapHtml({ ...SPEC, min: 2, max: 1 })), 'TL_INVALID_ARGUMENT')
  t.is(code(() => heatmapHtml({ ...SPEC, values: [[1, 2, '3' as unknown as number, 4], [1, 2, 3, 4], [1, 2, 3, 4]] })), 'TL_INVALID_ARGUMENT')
  t.is(code(() => attentionPatternHtml({ tokens: ['a'], patterns: [[[1, 0], [0, 1]]] })), 'TL_SHAPE_MISMATCH')
  t.is(code(() => attentionPatternHtml({ tokens: ['a', 'b'], patterns: [[[1, 0], [0, 1]]], headLabels: ['x', 'y'] })), 'TL_SHAPE_MISMATCH')
  t.is(code(() => headScoresHtml({ scores: Tensor.zeros([2, 2, 2]), title: 't' })), 'TL_SHAPE_MISMATCH')
})

test('writeHtml creates the folders and returns the absolute path', (t) => {
  const rel = path.relative(process.cwd(), path.join(DIR, 'a', 'b', 'c.html'))
  const abs = writeHtml(rel, '<!DOCTYPE html>x')
  t.is(abs, path.join(DIR, 'a', 'b', 'c.html'))
  t.is(fs.readFileSync(abs, 'utf8'), '<!DOCTYPE html>x')
  t.is((t.throws(() => writeHtml(path.join(abs, 'under-a-file.html'), 'x')) as { code?: string }).code, 'TL_IO')
})

test('attentionPatternHtmlFromCache pulls blocks.{L}.attn.hook_pattern for a batch element and the chosen heads', async (t) => {
  const m = await load()
  const prompt = 'Hello world, hello world'
  const [logits, cache] = await m.runWithCache(prompt)
  try {
    const html = attentionPatternHtmlFromCache(cache, 1, { tokens: prompt, heads: [1, 0] })
    assertSelfContained(t, html)
    const d = data(html)
    t.deepEqual(d.labels, ['L1H1', 'L1H0'])
    t.deepEqual(d.tokens, m.toStrTokens(prompt))
    const pat = cache.get('blocks.1.attn.hook_pattern')
    const n = d.tokens.length
    const want = Array.from(pat.get(0, 1).toArray() as Float32Array)
    t.is(d.w[0].length, n * n)
    d.w[0].forEach((v: number, i: number) => t.true(Math.abs(v - want[i]) < 1e-5, `w[${i}]`))
    const last = data(attentionPatternHtmlFromCache(cache, -1))
    t.is(last.labels[0], `L${m.cfg.n_layers - 1}H0`)
    t.deepEqual(last.tokens, Array.from({ length: n }, (_, i) => String(i)), 'positions label the axes without tokens')
    t.is((t.throws(() => attentionPatternHtmlFromCache(cache, 0, { heads: [99] })) as { code?: string }).code, 'TL_INVALID_ARGUMENT')
  } finally {
    logits.dispose()
    cache.dispose()
  }
})

// ---- what the browser renders ----

let browser: Browser | null = null
let skipReason = ''

test.before(async (t) => {
  t.timeout(20 * 60_000) // a first run may install the browser
  const found = await findChromium()
  if (found.path) browser = await Browser.launch(found.path)
  else skipReason = found.reason ?? 'no browser'
})
test.after.always(async () => {
  await browser?.close()
  fs.rmSync(DIR, { recursive: true, force: true })
})

let shot = 0
/** Writes `html`, opens it in a fresh page, runs `check`, and checks the page fetched nothing and threw nothing. */
function rendered(title: string, html: () => string | Promise<string>, check: (t: ExecutionContext, page: Page) => Promise<void>): void {
  test.serial(`renders: ${title}`, async (t) => {
    if (!browser) {
      t.log(`browser checks skipped: ${skipReason}`)
      t.pass()
      return
    }
    const file = writeHtml(path.join(DIR, 'pages', `page-${++shot}.html`), await html())
    const page = await browser.newPage()
    try {
      await page.open(file)
      await check(t, page)
      if (process.env.TL_VIZ_SHOTS) await page.screenshot(path.join(process.env.TL_VIZ_SHOTS, `${title.replace(/[^\w]+/g, '-')}.png`))
      t.deepEqual(page.requests, [pathToFileURL(file).href], 'the page fetched nothing')
      t.deepEqual(page.errors, [], 'no script error or CSP refusal')
    } finally {
      await page.close()
    }
  })
}

const bg = (sel: string) => `getComputedStyle(document.querySelector(${JSON.stringify(sel)})).backgroundColor`
const text = (sel: string) => `document.querySelector(${JSON.stringify(sel)}).textContent`
const cell = (r: number, c: number) => `td[data-r="${r}"][data-c="${c}"]`
const tipShown = `(() => { const e = document.getElementById('tip'); return e.hidden || getComputedStyle(e).display === 'none' ? null : e.textContent })()`

rendered('heatmap cells, colours, NaN/inf and tooltip', () => heatmapHtml(SPEC), async (t, page) => {
  t.is(await page.eval('document.querySelectorAll("td.cell").length'), 12)
  t.deepEqual(await page.eval('[...document.querySelectorAll("thead th.col")].map(e => e.textContent)'), ['0 "The"', ' fox', 'a', '↵'])
  t.deepEqual(await page.eval('[...document.querySelectorAll("tbody th")].map(e => e.textContent)'), ['L0', 'L1', 'L2'])
  t.is(await page.eval(text(cell(0, 1))), ' cat')
  const lo = await page.eval(bg(cell(0, 0)))
  const hi = await page.eval(bg(cell(0, 3)))
  t.not(lo, hi)
  t.is(lo, SEQ_LO)
  t.is(hi, SEQ_HI)
  t.is(await page.eval(bg(cell(0, 2))), rgbString(SCALE_STOPS.sequential[2]), '0.5 is the middle stop')
  t.is(await page.eval(`getComputedStyle(document.querySelector('${cell(0, 3)}')).color`), 'rgb(255, 255, 255)', 'light text on dark cells')
  t.is(await page.eval(bg(cell(1, 0))), rgbString(NAN_RGB))
  t.regex(await page.eval<string>(`getComputedStyle(document.querySelector('${cell(1, 0)}')).backgroundImage`), /repeating-linear-gradient/)
  t.is(await page.eval(bg(cell(1, 2))), SEQ_HI, '+inf takes the top colour')
  t.is(await page.eval(bg(cell(2, 0))), SEQ_LO, '-inf takes the bottom colour')
  t.regex(await page.eval<string>(`getComputedStyle(document.querySelector('${cell(1, 2)}')).boxShadow`), /inset/)
  t.is(await page.eval(text('.legend .lo')), '0')
  t.is(await page.eval(text('.legend .hi')), '1')
  t.regex(await page.eval<string>(text('.legend')), /probability[\s\S]*NaN[\s\S]*±∞/)
  t.is(await page.eval(tipShown), null, 'no tooltip before hovering')
  await page.hover(cell(0, 3))
  const tip = await page.eval<string>(tipShown)
  t.truthy(tip)
  t.is(tip, 'L0 · ↵\nvalue 1 probability\n\ntop-3:\n" fox" 0.81\n" dog" 0.10\n" cat" 0.02')
  const box = await page.eval<{ l: number; r: number; b: number }>(`(() => { const r = document.getElementById('tip').getBoundingClientRect(); return { l: r.left, r: r.right, b: r.bottom } })()`)
  t.true(box.l >= 0 && box.r <= 1200 && box.b <= 900, 'the tooltip stays on screen')
  await page.hover(cell(1, 0))
  t.true((await page.eval<string>(tipShown)).includes('value NaN'))
  await page.hover('h1')
  t.is(await page.eval(tipShown), null, 'the tooltip goes away')
})

rendered('diverging heatmap: red, white and blue ends', () => heatmapHtml({ title: 'd', rowLabels: ['r'], colLabels: ['a', 'b', 'c'], values: [[-2, 0, 1]], colorScale: 'diverging' }), async (t, page) => {
  t.is(await page.eval(bg(cell(0, 0))), rgbString(SCALE_STOPS.diverging[0]))
  t.is(await page.eval(bg(cell(0, 1))), rgbString(SCALE_STOPS.diverging[2]), 'zero is white')
  t.is(await page.eval(bg(cell(0, 2))), rgbString(scaleRgb('diverging', 0.75)))
  t.is(await page.eval(text('.legend .lo')), '-2')
  t.is(await page.eval(text('.legend .hi')), '2')
})

rendered('hostile labels render as text and run nothing', () => heatmapHtml({ title: HOSTILE[0], rowLabels: HOSTILE.slice(0, 3), colLabels: HOSTILE.slice(3), values: [[1, 2, 3], [4, 5, 6], [7, 8, 9]], cellText: [HOSTILE.slice(0, 3), HOSTILE.slice(3), HOSTILE.slice(0, 3)], hover: [HOSTILE.slice(0, 3), HOSTILE.slice(3), HOSTILE.slice(0, 3)] }), async (t, page) => {
  t.is(await page.eval('window.__pwned'), undefined)
  t.is(await page.eval('document.querySelectorAll("img, iframe, object, embed").length'), 0)
  t.is(await page.eval('document.scripts.length'), 1)
  t.is(await page.eval('document.title'), HOSTILE[0])
  t.deepEqual(await page.eval('[...document.querySelectorAll("tbody th")].map(e => e.textContent)'), HOSTILE.slice(0, 3).map(showToken))
  t.is(await page.eval(text(cell(0, 1))), HOSTILE[1])
  await page.hover(cell(0, 1))
  t.true((await page.eval<string>(tipShown)).endsWith(HOSTILE[1]))
})

const TOKENS = ['<|endoftext|>', ' The', ' cat', ' sat', '\n']
const N = TOKENS.length
const causal = (f: (i: number, j: number) => number) => Array.from({ length: N }, (_, i) => Array.from({ length: N }, (_, j) => (j <= i ? f(i, j) : 0)))
const PATTERNS = [causal((i, j) => Number(i === j)), causal((i, j) => Number(j === Math.max(0, i - 1))), causal((i) => 1 / (i + 1))]
const att = (d: number, s: number) => `#grid td[data-dest="${d}"][data-src="${s}"]`

rendered('attention pattern: grid, head selector, keys, tooltip and thumbnails', () => attentionPatternHtml({ tokens: TOKENS, patterns: Tensor.from(PATTERNS.flat(2), [3, N, N]), headLabels: ['L1H0', 'L1H1', 'L1H2'], title: 'Layer 1' }), async (t, page) => {
  t.is(await page.eval('document.querySelectorAll("#grid td").length'), N * N)
  t.deepEqual(await page.eval('[...document.querySelectorAll("#grid thead th span")].map(e => e.textContent)'), TOKENS.map(showToken))
  t.deepEqual(await page.eval('[...document.querySelectorAll("#grid tbody th")].map(e => e.textContent)'), TOKENS.map(showToken))
  // head 0 attends to itself
  t.is(await page.eval(bg(att(3, 3))), SEQ_HI)
  t.is(await page.eval(bg(att(3, 2))), SEQ_LO)
  t.is(await page.eval(text('#head-name')), 'L1H0')
  t.deepEqual(await page.eval('[...document.querySelectorAll(".heads button")].map(b => b.getAttribute("aria-selected"))'), ['true', 'false', 'false'])
  // a click on the second thumbnail shows the previous-token head
  await page.click('.heads button[data-h="1"]')
  t.is(await page.eval(bg(att(3, 2))), SEQ_HI)
  t.is(await page.eval(bg(att(3, 3))), SEQ_LO)
  t.is(await page.eval(bg(att(0, 0))), SEQ_HI)
  t.is(await page.eval(text('#head-name')), 'L1H1')
  t.deepEqual(await page.eval('[...document.querySelectorAll(".heads button")].map(b => b.getAttribute("aria-selected"))'), ['false', 'true', 'false'])
  // the right arrow steps to the uniform head
  await page.key('ArrowRight')
  t.is(await page.eval(text('#head-name')), 'L1H2')
  t.is(await page.eval(bg(att(3, 0))), rgbString(scaleRgb('sequential', 0.25)))
  t.is(await page.eval(bg(att(1, 1))), rgbString(scaleRgb('sequential', 0.5)))
  // hovering a cell names both tokens and the weight, and lights their labels
  await page.hover(att(3, 2))
  const tip = await page.eval<string>(tipShown)
  t.is(tip, 'L1H2\ndest 3  " sat"\nsrc  2  " cat"\nweight 0.2500')
  t.deepEqual(await page.eval('[...document.querySelectorAll("#grid th.hl")].map(e => e.textContent)'), [' cat', ' sat'])
  await page.hover('h1')
  t.is(await page.eval(tipShown), null)
  t.is(await page.eval('document.querySelectorAll("#grid th.hl").length'), 0)
  // each thumbnail draws its own head
  const px = (h: number, x: number, y: number) => page.eval<number[]>(`[...document.querySelectorAll('.heads canvas')[${h}].getContext('2d').getImageData(${x}, ${y}, 1, 1).data].slice(0, 3)`)
  t.deepEqual(await px(0, 3, 3), [...SCALE_STOPS.sequential[4]])
  t.deepEqual(await px(1, 2, 3), [...SCALE_STOPS.sequential[4]])
  t.deepEqual(await px(1, 3, 3), [...SCALE_STOPS.sequential[0]])
})

rendered('attention pattern with hostile tokens and NaN weights', () => attentionPatternHtml({ tokens: HOSTILE, patterns: [Array.from({ length: 6 }, (_, i) => Array.from({ length: 6 }, (_, j) => (i === 5 && j === 0 ? NaN : j <= i ? 1 / (i + 1) : 0)))], headLabels: [HOSTILE[1]] }), async (t, page) => {
  t.is(await page.eval('window.__pwned'), undefined)
  t.is(await page.eval('document.querySelectorAll("img").length'), 0)
  t.is(await page.eval('document.scripts.length'), 2)
  t.deepEqual(await page.eval('[...document.querySelectorAll("#grid tbody th")].map(e => e.textContent)'), HOSTILE.map(showToken))
  t.is(await page.eval(text('.heads button span')), HOSTILE[1])
  t.is(await page.eval(bg(att(5, 0))), rgbString(NAN_RGB))
  await page.hover(att(5, 0))
  t.true((await page.eval<string>(tipShown)).endsWith('weight NaN'))
  await page.hover(att(1, 0))
  t.true((await page.eval<string>(tipShown)).includes(`src  0  ${JSON.stringify(HOSTILE[0])}`))
})

rendered('attention patterns of a real run, from the cache', async () => {
  const m = await load()
  const [logits, cache] = await m.runWithCache('The cat sat on the mat. The cat')
  try {
    return attentionPatternHtmlFromCache(cache, 0, { tokens: 'The cat sat on the mat. The cat' })
  } finally {
    logits.dispose()
    cache.dispose()
  }
}, async (t, page) => {
  const m = await load()
  const n = m.toStrTokens('The cat sat on the mat. The cat').length
  t.is(await page.eval('document.querySelectorAll("#grid td").length'), n * n)
  t.is(await page.eval('document.querySelectorAll(".heads button").length'), m.cfg.n_heads)
  t.is(await page.eval(bg(att(0, 0))), SEQ_HI, 'the first token attends only to itself')
  t.is(await page.eval(bg(att(0, n - 1))), SEQ_LO, 'nothing attends to the future')
})

rendered('head scores from detectHead', async () => {
  const m = await load()
  const scores = await detectHead(m, 'The cat sat on the mat. The cat sat on the mat.', 'previous_token_head')
  return headScoresHtml({ scores, title: 'Previous-token head scores' })
}, async (t, page) => {
  const m = await load()
  const scores = (await detectHead(m, 'The cat sat on the mat. The cat sat on the mat.', 'previous_token_head')).toList() as number[][]
  const [L, H] = [m.cfg.n_layers, m.cfg.n_heads]
  t.is(await page.eval('document.querySelectorAll("td.cell").length'), L * H)
  t.deepEqual(await page.eval('[...document.querySelectorAll("td.cell")].map(e => e.textContent)'), scores.flat().map((v) => v.toFixed(2)))
  t.is(await page.eval(text('th.corner')), 'Layer \\ Head')
  const flat = scores.flat()
  const scale = flat.some((v) => v < 0) ? 'diverging' : 'sequential'
  const at = (i: number) => cell(Math.floor(i / H), i % H)
  const iMax = flat.indexOf(Math.max(...flat))
  const iMin = flat.indexOf(Math.min(...flat))
  t.is(await page.eval(bg(at(iMax))), rgbString(SCALE_STOPS[scale][4]))
  t.not(await page.eval(bg(at(iMin))), await page.eval(bg(at(iMax))))
  if (scale === 'sequential') t.is(await page.eval(bg(at(iMin))), SEQ_LO)
  await page.hover(cell(L - 1, H - 1))
  t.true((await page.eval<string>(tipShown)).startsWith(`Layer ${L - 1} · Head ${H - 1}\nvalue `))
})
