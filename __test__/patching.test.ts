/**
 * Activation patching (src/patching.ts) against TL 2.x goldens from
 * scripts/reference/make_patching_fixtures.py: every get_act_patch_* sweep on a clean/corrupted
 * token pair of the fabricated `gpt2`, with a logit-difference metric, and
 * generic_activation_patch with index rows.
 */
import test from 'ava'

import {
  ActivationCache,
  genericActivationPatch,
  getActPatchAttnHeadAllPosEvery,
  getActPatchAttnHeadByPosEvery,
  getActPatchAttnHeadKAllPos,
  getActPatchAttnHeadKByPos,
  getActPatchAttnHeadOutAllPos,
  getActPatchAttnHeadOutByPos,
  getActPatchAttnHeadPatternAllPos,
  getActPatchAttnHeadPatternByPos,
  getActPatchAttnHeadPatternDestSrcPos,
  getActPatchAttnHeadQAllPos,
  getActPatchAttnHeadQByPos,
  getActPatchAttnHeadVAllPos,
  getActPatchAttnHeadVByPos,
  getActPatchAttnOut,
  getActPatchBlockEvery,
  getActPatchMlpOut,
  getActPatchResidMid,
  getActPatchResidPre,
  HookedTransformer,
  layerHeadVectorPatchSetter,
  layerPosHeadVectorPatchSetter,
  layerPosPatchSetter,
  makeDfFromRanges,
  Tensor,
  TransformerLensError,
} from '../src/index'
import type { PatchingMetric, PatchProgress } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import type { Golden } from './helpers/safetensors'

useFixtureHub()

const TOL = 1e-4
const G = () => golden('patching', 'patching')

function tokensOf(g: Golden | undefined): Tensor {
  if (!g) throw new Error('missing golden tokens')
  return Tensor.from(BigInt64Array.from(Array.from(g.data as ArrayLike<number | bigint>, (x) => BigInt(x))), g.shape)
}

interface Setup {
  model: HookedTransformer
  clean: Tensor
  corrupted: Tensor
  cache: ActivationCache
  metric: PatchingMetric
}
let setup: Promise<Setup> | undefined
function load(): Promise<Setup> {
  setup ??= (async () => {
    const g = G()
    const model = await HookedTransformer.fromPretrained('gpt2')
    const clean = tokensOf(g.tensors.get('clean_tokens'))
    const corrupted = tokensOf(g.tensors.get('corrupted_tokens'))
    const [logits, cache] = await model.runWithCache(clean)
    logits.dispose()
    const last = clean.shape[1] - 1
    const { answer, wrong } = g.json
    const metric: PatchingMetric = (l) => l.get(0, last, answer).sub(l.get(0, last, wrong))
    return { model, clean, corrupted, cache, metric }
  })()
  return setup
}

test('the metric separates the clean and corrupted runs as in TL', async (t) => {
  const { model, clean, corrupted, metric } = await load()
  for (const [tok, key] of [[clean, 'clean_metric'], [corrupted, 'corrupted_metric']] as const) {
    const v = (await metric(await model.forward(tok))) as Tensor
    assertClose(t, v.reshape([1]), G().tensors.get(key), TOL, `patching.${key}`)
  }
})

const HELPERS = {
  resid_pre: getActPatchResidPre,
  resid_mid: getActPatchResidMid,
  attn_out: getActPatchAttnOut,
  mlp_out: getActPatchMlpOut,
  attn_head_out_by_pos: getActPatchAttnHeadOutByPos,
  attn_head_q_by_pos: getActPatchAttnHeadQByPos,
  attn_head_k_by_pos: getActPatchAttnHeadKByPos,
  attn_head_v_by_pos: getActPatchAttnHeadVByPos,
  attn_head_pattern_by_pos: getActPatchAttnHeadPatternByPos,
  attn_head_pattern_dest_src_pos: getActPatchAttnHeadPatternDestSrcPos,
  attn_head_out_all_pos: getActPatchAttnHeadOutAllPos,
  attn_head_q_all_pos: getActPatchAttnHeadQAllPos,
  attn_head_k_all_pos: getActPatchAttnHeadKAllPos,
  attn_head_v_all_pos: getActPatchAttnHeadVAllPos,
  attn_head_pattern_all_pos: getActPatchAttnHeadPatternAllPos,
  attn_head_all_pos_every: getActPatchAttnHeadAllPosEvery,
  attn_head_by_pos_every: getActPatchAttnHeadByPosEvery,
  block_every: getActPatchBlockEvery,
} as const

test('every TL get_act_patch_* helper has a port under test', (t) => {
  t.deepEqual(Object.keys(HELPERS).sort(), [...G().json.names].sort())
})

for (const [name, fn] of Object.entries(HELPERS)) {
  test(`get_act_patch_${name} matches TL (shape and values)`, async (t) => {
    const { model, corrupted, cache, metric } = await load()
    const out = await fn(model, corrupted, cache, metric)
    assertClose(t, out, G().tensors.get(name), TOL, `patching.${name}`)
    out.dispose()
  })
}

test('generic_activation_patch with index rows (arrays) returns a flat result and the rows, as TL', async (t) => {
  const { model, corrupted, cache, metric } = await load()
  const rows: number[][] = G().json['df.z.rows']
  const { result, indexDf } = await genericActivationPatch(model, corrupted, cache, metric, layerPosHeadVectorPatchSetter, 'z', {
    indexDf: rows,
    returnIndexDf: true,
  })
  assertClose(t, result, G().tensors.get('df.z'), TOL, 'patching.df.z')
  t.deepEqual(indexDf, rows)
})

test('index rows as objects (dataframe records) work with a get_act_patch_* helper', async (t) => {
  const { model, corrupted, cache, metric } = await load()
  const rows = (G().json['df.resid_pre.rows'] as number[][]).map(([layer, pos]) => ({ layer, pos }))
  const out = await getActPatchResidPre(model, corrupted, cache, metric, { indexDf: rows })
  assertClose(t, out, G().tensors.get('df.resid_pre'), TOL, 'patching.df.resid_pre')
  const viaGeneric = await genericActivationPatch(model, corrupted, cache, metric, layerPosPatchSetter, 'resid_pre', { indexDf: rows })
  assertClose(t, viaGeneric, G().tensors.get('df.resid_pre'), TOL, 'patching.df.resid_pre.generic')
})

test('the axis-names form returns TL index_df rows in order', async (t) => {
  const { model, corrupted, cache, metric } = await load()
  const { result, indexDf } = await genericActivationPatch(model, corrupted, cache, metric, layerHeadVectorPatchSetter, 'v', {
    indexAxisNames: ['layer', 'head'],
    returnIndexDf: true,
  })
  assertClose(t, result, G().tensors.get('axes.v'), TOL, 'patching.axes.v')
  const cols: string[] = G().json['axes.v.columns']
  t.deepEqual(
    indexDf.map((r) => cols.map((c) => (r as Record<string, number>)[c])),
    G().json['axes.v.rows'],
  )
  t.deepEqual(Object.keys(indexDf[0]), cols)
})

test('makeDfFromRanges enumerates like itertools.product', (t) => {
  t.deepEqual(makeDfFromRanges([2, 3], ['a', 'b']).map((r) => [r.a, r.b]), [
    [0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2],
  ])
})

test('onProgress reports every run, across the sub-sweeps of *_every', async (t) => {
  const { model, corrupted, cache, metric } = await load()
  const seen: PatchProgress[] = []
  const out = await getActPatchBlockEvery(model, corrupted, cache, metric, { onProgress: (p) => seen.push(p) })
  const total = 3 * model.cfg.n_layers * corrupted.shape[1]
  t.is(seen.length, total)
  t.deepEqual(seen[0], { done: 1, total })
  t.deepEqual(seen[seen.length - 1], { done: total, total })
  t.true(seen.every((p, i) => p.done === i + 1))
  out.dispose()
})

test('a string input is tokenized; numbers from the metric are accepted', async (t) => {
  const { model, cache, metric } = await load()
  const g = G()
  const text: string = g.json.clean
  // clean text against its own cache: every patch leaves the clean metric unchanged
  const num: PatchingMetric = (l) => (metric(l) as Tensor).item()
  const out = await getActPatchAttnOut(model, text, cache, num)
  const clean = Number((g.tensors.get('clean_metric')!.data as Float32Array)[0])
  t.deepEqual(out.shape, [model.cfg.n_layers, g.tensors.get('clean_tokens')!.shape[1]])
  t.true(Array.from(out.toArray() as Float32Array).every((v) => Math.abs(v - clean) < TOL))
})

test('errors: missing/both index forms, bad axis, abort', async (t) => {
  const { model, corrupted, cache, metric } = await load()
  const err = (p: Promise<unknown>, code: TransformerLensError["code"]) => t.throwsAsync(p, { instanceOf: TransformerLensError, message: /./ }).then((e) => t.is((e as TransformerLensError).code, code))
  await err(genericActivationPatch(model, corrupted, cache, metric, layerPosPatchSetter, 'resid_pre'), 'TL_INVALID_ARGUMENT')
  await err(genericActivationPatch(model, corrupted, cache, metric, layerPosPatchSetter, 'resid_pre', { indexAxisNames: ['layer', 'pos'], indexDf: [[0, 0]] }), 'TL_INVALID_ARGUMENT')
  await err(genericActivationPatch(model, corrupted, cache, metric, layerPosPatchSetter, 'resid_pre', { indexAxisNames: ['layer', 'nope' as any] }), 'TL_INVALID_ARGUMENT')
  await err(genericActivationPatch(model, corrupted, cache, metric, layerPosPatchSetter, 'resid_pre', { indexDf: [[0, 1, 2]] }), 'TL_INVALID_ARGUMENT')
  const ac = new AbortController()
  ac.abort()
  await err(getActPatchResidPre(model, corrupted, cache, metric, { signal: ac.signal }), 'TL_ABORTED')
})
