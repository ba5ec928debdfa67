/**
 * TL's utils against TransformerLens (golden/analysis/utils.* and the act-name cases of
 * golden/analysis/cache.json): lm_cross_entropy_loss, lm_accuracy, activation functions,
 * get_corner, remove_batch_dim, Slice, get_act_name, tokenize_and_concatenate.
 */
import test from 'ava'

import {
  getActName,
  getCorner,
  HookedTransformer,
  lmAccuracy,
  lmCrossEntropyLoss,
  removeBatchDim,
  Slice,
  SliceInput,
  SUPPORTED_ACTIVATIONS,
  Tensor,
  tokenizeAndConcatenate,
  TransformerLensError,
} from '../src/index'
import { analysis, camel, Case, input, resolveTensors } from './helpers/analysis'
import { assertClose } from './helpers/compare'
import { useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const LOSS_TOL = 1e-5
const ACT_TOL = 1e-4
const g = analysis('utils')
const cases: Case[] = g.json.cases
const byFn = (fn: string) => cases.filter((c) => c.fn === fn)

test('lmCrossEntropyLoss matches TL (mean, per token, attention mask)', async (t) => {
  const logits = input(g, 'lm.logits')
  const tokens = input(g, 'lm.tokens')
  const mine = byFn('lm_cross_entropy_loss').filter((c) => c.logits !== 'model')
  t.is(mine.length, 4)
  for (const [i, c] of mine.entries()) {
    const kwargs = resolveTensors(g, c.kwargs)
    const out = lmCrossEntropyLoss(logits, tokens, (i % 2 ? camel(kwargs) : kwargs) as any)
    assertClose(t, out, g.tensors.get(c.name), LOSS_TOL, `utils.${c.name}`)
  }
  // On the fixture model's own logits it is TL's loss too.
  const m = await HookedTransformer.fromPretrained('gpt2')
  const mt = input(g, 'lm.model_tokens')
  const ml = await m.forward(mt)
  assertClose(t, lmCrossEntropyLoss(ml, mt), g.tensors.get('lm_cross_entropy_loss.model'), LOSS_TOL, 'utils.lm_cross_entropy_loss.model')
  assertClose(t, lmAccuracy(ml, mt, { perToken: true }), g.tensors.get('lm_accuracy.model_per_token'), 0, 'utils.lm_accuracy.model_per_token')
  m.dispose()
})

test('lmAccuracy matches TL (mean and per token)', (t) => {
  const logits = input(g, 'lm.logits')
  const tokens = input(g, 'lm.tokens')
  const mean = lmAccuracy(logits, tokens)
  assertClose(t, mean, g.tensors.get('lm_accuracy.mean'), LOSS_TOL, 'utils.lm_accuracy.mean')
  t.true(mean.item() > 0) // the fixture plants some correct predictions
  assertClose(t, lmAccuracy(logits, tokens, { per_token: true } as any), g.tensors.get('lm_accuracy.per_token'), 0, 'utils.lm_accuracy.per_token')
})

test('activation functions match TL / torch', (t) => {
  const mine = byFn('activation')
  t.is(mine.length, 2 * Object.keys(SUPPORTED_ACTIVATIONS).length)
  for (const c of mine) {
    const fn = SUPPORTED_ACTIVATIONS[c.act_fn as string]
    t.truthy(fn, `${c.act_fn} is supported`)
    assertClose(t, fn(input(g, c.input as string)), g.tensors.get(c.name), c.act_fn === 'solu' || c.act_fn === 'solu_ln' ? 1e-5 : ACT_TOL, `utils.${c.name}`)
  }
})

test('getCorner and removeBatchDim match TL', (t) => {
  const x = input(g, 'corner.input')
  assertClose(t, getCorner(x), g.tensors.get('get_corner.3'), 0, 'utils.get_corner.3')
  assertClose(t, getCorner(x, 2), g.tensors.get('get_corner.2'), 0, 'utils.get_corner.2')
  assertClose(t, getCorner(x, 8), g.tensors.get('get_corner.8'), 0, 'utils.get_corner.8')
  for (const k of ['rbd.one', 'rbd.two']) assertClose(t, removeBatchDim(input(g, k)), g.tensors.get(`remove_batch_dim.${k}`), 0, `utils.remove_batch_dim.${k}`)
})

test('Slice: modes, indices() and apply() match TL', (t) => {
  const x = input(g, 'slice.input')
  const slices = g.json.slices as { input: SliceInput; mode: string; indices_10: number[]; indices_none?: number[] }[]
  t.true(slices.length >= 12)
  slices.forEach((c, i) => {
    const s = new Slice(c.input)
    t.is(s.mode as string, c.mode, `slice ${i}: mode`)
    t.deepEqual(s.indices(10), c.indices_10, `slice ${i}: indices(10)`)
    if (c.indices_none) t.deepEqual(s.indices(), c.indices_none, `slice ${i}: indices()`)
    else t.is((t.throws(() => s.indices()) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  })
  const applied = byFn('Slice.apply')
  t.true(applied.length >= 20)
  for (const c of applied) {
    const out = new Slice(c.slice as SliceInput).apply(x, c.dim as number)
    assertClose(t, out, g.tensors.get(c.name), 0, `utils.${c.name}`)
  }
  // Index lists also as typed arrays and tensors; unwrap keeps an int's dim.
  assertClose(t, new Slice(new Int32Array([0, 9, 3])).apply(x, -1), g.tensors.get('slice.7.dim-1'), 0, 'utils.slice.7.int32')
  assertClose(t, new Slice(Tensor.from(new BigInt64Array([0n, 9n, 3n]))).apply(x, 1), g.tensors.get('slice.7.dim1'), 0, 'utils.slice.7.tensor')
  const u = Slice.unwrap(2)
  t.is(u.mode, g.json.slice_unwrap_int.mode)
  t.deepEqual(u.indices(10), g.json.slice_unwrap_int.indices_10)
  t.is(Slice.from(u), u)
  // What torch refuses, and malformed inputs.
  t.is((t.throws(() => new Slice([null, null, -1]).apply(x, 1)) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is((t.throws(() => new Slice([1, 2, 3, 4] as never)) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is((t.throws(() => new Slice({ indices: [12] }).apply(x, 1)) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
  t.is((t.throws(() => new Slice(1.5)) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is(String(new Slice([1, null, 3])), 'Slice: slice(1, None, 3) Mode: slice ')
})

test('getActName matches TL', (t) => {
  const cacheGolden = analysis('cache')
  const names = cacheGolden.json.act_names as { args: [string, (number | string)?, string?]; name: string }[]
  t.true(names.length >= 15)
  for (const { args, name } of names) t.is(getActName(...args), name, JSON.stringify(args))
})

test('tokenizeAndConcatenate matches TL on in-memory texts (shards, BOS, padding, unicode)', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.is(m.tokenizer!.padTokenId, g.json.tokenizer.pad_token_id)
  const texts = g.json.tokenize_texts as Record<string, string[]>
  const mine = byFn('tokenize_and_concatenate')
  t.true(mine.length >= 6)
  for (const [i, c] of mine.entries()) {
    const rows = texts[c.texts as string]
    const kwargs = i % 2 ? camel(c.kwargs) : c.kwargs
    // Alternately the model and its TokenizerView, strings and { text } rows.
    const out = tokenizeAndConcatenate(i % 2 ? rows : rows.map((text) => ({ text })), i % 2 ? m : m.tokenizer!, kwargs as any)
    t.is(out.dtype, 'int64')
    assertClose(t, out, g.tensors.get(c.name), 0, `utils.${c.name}`)
  }
  const empty = tokenizeAndConcatenate(['   '], m, { maxLength: 8 })
  t.deepEqual(empty.shape, [0, 8])
  m.dispose()
})
