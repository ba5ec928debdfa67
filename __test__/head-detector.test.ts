/**
 * detectHead (src/head-detector.ts) against TL 2.x goldens from
 * scripts/reference/make_patching_fixtures.py on the fabricated `gpt2`: the three built-in
 * patterns × both error measures × the exclude flags, a list of prompts, head subsets, a
 * passed-in cache and a custom pattern.
 */
import test from 'ava'

import {
  detectHead,
  getDuplicateTokenHeadDetectionPattern,
  getInductionHeadDetectionPattern,
  getPreviousTokenHeadDetectionPattern,
  HEAD_NAMES,
  HookedTransformer,
  Tensor,
  TransformerLensError,
} from '../src/index'
import type { HeadName } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import type { Golden } from './helpers/safetensors'

useFixtureHub()

const TOL = 1e-4
const G = () => golden('patching', 'head_detector')
let modelP: Promise<HookedTransformer> | undefined
const load = () => (modelP ??= HookedTransformer.fromPretrained('gpt2'))

function toTensor(g: Golden | undefined): Tensor {
  if (!g) throw new Error('missing golden')
  return Tensor.from(Float32Array.from(Array.from(g.data as ArrayLike<number | bigint>, Number)), g.shape)
}

const makers: Record<HeadName, (t: Tensor) => Tensor> = {
  previous_token_head: getPreviousTokenHeadDetectionPattern,
  duplicate_token_head: getDuplicateTokenHeadDetectionPattern,
  induction_head: getInductionHeadDetectionPattern,
}

for (const name of HEAD_NAMES) {
  test(`${name}: detection pattern matches TL's`, async (t) => {
    const m = await load()
    const tokens = m.toTokens(G().json.seq)
    assertClose(t, tokens, G().tensors.get('tokens'), 0, 'heads.tokens')
    assertClose(t, makers[name](tokens), G().tensors.get(`pattern.${name}`), 0, `heads.pattern.${name}`)
  })

  for (const em of ['mul', 'abs'] as const) {
    for (const bos of [false, true]) {
      for (const cur of [false, true]) {
        const key = `${name}.${em}.bos${Number(bos)}.cur${Number(cur)}`
        test(`detect_head ${key} matches TL`, async (t) => {
          const m = await load()
          const out = await detectHead(m, G().json.seq, name, { errorMeasure: em, excludeBos: bos, excludeCurrentToken: cur })
          assertClose(t, out, G().tensors.get(key), TOL, `heads.${key}`)
        })
      }
    }
  }

  test(`${name}: a list of prompts averages per-prompt default-option scores, as TL`, async (t) => {
    const m = await load()
    const out = await detectHead(m, G().json.seqs, name, { excludeBos: true, errorMeasure: 'abs' })
    assertClose(t, out, G().tensors.get(`${name}.list`), TOL, `heads.${name}.list`)
  })
}

test('head subsets: [layer, head] pairs and a layer → heads object (others -1)', async (t) => {
  const m = await load()
  const seq = G().json.seq
  const pairs = G().json['subset.list'] as [number, number][]
  assertClose(t, await detectHead(m, seq, 'induction_head', { heads: pairs }), G().tensors.get('subset.list'), TOL, 'heads.subset.list')
  const dict = G().json['subset.dict'] as Record<string, number[]>
  assertClose(t, await detectHead(m, seq, 'previous_token_head', { heads: dict, errorMeasure: 'abs' }), G().tensors.get('subset.dict'), TOL, 'heads.subset.dict')
  const map = new Map(Object.entries(dict).map(([k, v]) => [Number(k), v]))
  assertClose(t, await detectHead(m, seq, 'previous_token_head', { heads: map, errorMeasure: 'abs' }), G().tensors.get('subset.dict'), TOL, 'heads.subset.map')
})

test('custom patterns (Tensor and nested arrays) match TL, with and without the exclude flags', async (t) => {
  const m = await load()
  const seq = G().json.seq
  const pat = toTensor(G().tensors.get('custom.pattern'))
  const rows = pat.toList() as number[][]
  const warn = console.warn
  let warned = 0
  console.warn = () => void warned++
  try {
    for (const em of ['mul', 'abs'] as const) {
      assertClose(t, await detectHead(m, seq, pat, { errorMeasure: em }), G().tensors.get(`custom.${em}`), TOL, `heads.custom.${em}`)
      assertClose(t, await detectHead(m, seq, rows, { errorMeasure: em }), G().tensors.get(`custom.${em}`), TOL, `heads.custom.${em}.rows`)
      const k = `custom.${em}.bos1.cur1`
      assertClose(t, await detectHead(m, seq, pat, { errorMeasure: em, excludeBos: true, excludeCurrentToken: true }), G().tensors.get(k), TOL, `heads.${k}`)
    }
  } finally {
    console.warn = warn
  }
  t.is(warned, 3, "TL warns for non-0/1 patterns with 'mul' only")
})

test('a passed-in cache (no batch dim) is used and left unmodified', async (t) => {
  const m = await load()
  const seq = G().json.seq
  const [logits, cache] = await m.runWithCache(seq, { removeBatchDim: true })
  logits.dispose()
  const before = Array.from(cache.get('pattern', 0).toArray() as Float32Array)
  const out = await detectHead(m, seq, 'duplicate_token_head', { cache, errorMeasure: 'abs' })
  assertClose(t, out, G().tensors.get('cached.duplicate_token_head'), TOL, 'heads.cached')
  await detectHead(m, seq, 'previous_token_head', { cache, excludeBos: true, excludeCurrentToken: true })
  t.deepEqual(Array.from(cache.get('pattern', 0).toArray() as Float32Array), before)
})

test('errors: bad name, bad error measure, non-triangular / wrong-size pattern, too short', async (t) => {
  const m = await load()
  const seq = G().json.seq
  const n = (G().tensors.get('tokens')!.shape[1]) as number
  const code = async (p: Promise<unknown>) => ((await t.throwsAsync(p, { instanceOf: TransformerLensError })) as TransformerLensError).code
  t.is(await code(detectHead(m, seq, 'nope' as HeadName)), 'TL_INVALID_ARGUMENT')
  t.is(await code(detectHead(m, seq, 'induction_head', { errorMeasure: 'sq' as any })), 'TL_INVALID_ARGUMENT')
  t.is(await code(detectHead(m, seq, Tensor.ones([n, n]))), 'TL_INVALID_ARGUMENT')
  t.is(await code(detectHead(m, seq, Tensor.zeros([n - 1, n - 1]))), 'TL_INVALID_ARGUMENT')
  t.is(await code(detectHead(m, '', 'previous_token_head')), 'TL_INVALID_ARGUMENT')
})
