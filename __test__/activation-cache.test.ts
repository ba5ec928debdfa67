/**
 * ActivationCache against TransformerLens: every analysis method with the options that change
 * its result, on the fixture gpt2 (processed and unprocessed), single, batched and batch-less
 * caches. Expected values: golden/analysis/cache.* (scripts/reference/make_analysis_fixtures.py).
 */
import test from 'ava'

import { ActivationCache, HookedTransformer, Slice, Tensor, TransformerLensError } from '../src/index'
import { analysis, camel, Case, input, resolveTensors, split } from './helpers/analysis'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const ACT_TOL = 1e-4
const g = analysis('cache')
const cases: Case[] = g.json.cases

type Models = Record<'processed' | 'unprocessed', HookedTransformer>
let modelsP: Promise<Models> | null = null
function models(): Promise<Models> {
  modelsP ??= (async () => ({
    processed: await HookedTransformer.fromPretrained('gpt2'),
    unprocessed: await HookedTransformer.fromPretrainedNoProcessing('gpt2'),
  }))()
  return modelsP
}

/** A fresh cache of the kind a case names (TL's script also uses a fresh one per call). */
async function freshCache(m: HookedTransformer, which: string): Promise<ActivationCache> {
  const prompts = g.json.prompts
  const input = which === 'batch' ? m.toTokens(prompts.batch) : m.toTokens(prompts.single)
  const [logits, cache] = await m.runWithCache(input, { removeBatchDim: which === 'nobatch' })
  logits.dispose()
  input.dispose()
  return cache
}

function call(cache: ActivationCache, method: string, kwargs: Record<string, unknown>): Tensor | [Tensor, string[]] {
  const o = { ...kwargs } as any
  switch (method) {
    case 'accumulated_resid':
      return cache.accumulatedResid(o)
    case 'decompose_resid':
      return cache.decomposeResid(o)
    case 'stack_head_results':
      return cache.stackHeadResults(o)
    case 'get_full_resid_decomposition':
      return cache.getFullResidDecomposition(o)
    case 'stack_activation': {
      const { activation_name, activationName, ...rest } = o
      return cache.stackActivation(activation_name ?? activationName, rest)
    }
    case 'get_neuron_results': {
      const { layer, ...rest } = o
      return cache.getNeuronResults(layer, rest)
    }
    case 'stack_neuron_results': {
      const { layer, ...rest } = o
      return cache.stackNeuronResults(layer, rest)
    }
    default:
      throw new Error(`unknown method ${method}`)
  }
}

const REPLAYED = ['accumulated_resid', 'decompose_resid', 'stack_head_results', 'stack_activation', 'get_neuron_results', 'stack_neuron_results', 'get_full_resid_decomposition']

for (const method of REPLAYED) {
  test(`${method} matches TL for every recorded option set`, async (t) => {
    const ms = await models()
    const mine = cases.filter((c) => c.method === method)
    t.true(mine.length > 0)
    for (const [i, c] of mine.entries()) {
      const cache = await freshCache(ms[c.model as keyof Models], c.cache as string)
      // Half the cases with TL's snake_case option names, half with camelCase.
      const kwargs = i % 2 === 0 ? c.kwargs : camel(c.kwargs)
      const [out, labels] = split(call(cache, method, kwargs))
      assertClose(t, out, g.tensors.get(c.name), ACT_TOL, `cache.${c.name}`)
      t.deepEqual(labels, c.labels, `${c.name}: labels`)
      out.dispose()
      cache.dispose()
    }
  })
}

test('applyLnToStack matches TL (layers, mlpInput, posSlice, batchSlice)', async (t) => {
  const ms = await models()
  const mine = cases.filter((c) => c.method === 'apply_ln_to_stack')
  t.true(mine.length >= 6)
  for (const c of mine) {
    const cache = await freshCache(ms[c.model as keyof Models], 'batch')
    const stack = input(g, c.input as string)
    const out = cache.applyLnToStack(stack, c.kwargs as any)
    assertClose(t, out, g.tensors.get(c.name), ACT_TOL, `cache.${c.name}`)
    cache.dispose()
  }
})

test('logitAttrs matches TL (ids, strings, token tensors, incorrect tokens, slices)', async (t) => {
  const ms = await models()
  const mine = cases.filter((c) => c.method === 'logit_attrs')
  t.true(mine.length >= 6)
  for (const c of mine) {
    const cache = await freshCache(ms.processed, c.cache as string)
    const { tokens, ...rest } = resolveTensors(g, c.kwargs)
    const out = cache.logitAttrs(input(g, c.input as string), tokens as any, camel(rest) as any)
    assertClose(t, out, g.tensors.get(c.name), ACT_TOL, `cache.${c.name}`)
    cache.dispose()
  }
  const cache = await freshCache(ms.processed, 'single')
  const stack = input(g, 'input.single.decompose_last')
  const e = t.throws(() => cache.logitAttrs(stack, Tensor.from(new BigInt64Array([1n, 2n])), { incorrectTokens: 3, posSlice: -1 }))
  t.is((e as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
  cache.dispose()
})

test('shorthand keys resolve as TL (get_act_name rules, negative layers)', async (t) => {
  const ms = await models()
  const cache = await freshCache(ms.processed, 'single')
  for (const { args, name } of g.json.lookups as { args: [string, number?, string?]; name: string }[]) {
    t.is(cache.resolveName(...args), name, JSON.stringify(args))
    t.is(cache.get(...args), cache.get(name))
    t.true(cache.has(...args))
  }
  t.false(cache.has('blocks.9.hook_resid_pre'))
  t.is((t.throws(() => cache.get('resid_pre', 9)) as TransformerLensError).code, 'TL_UNKNOWN_HOOK')
  cache.dispose()
})

test('keys, values, entries, iteration and size follow firing order', async (t) => {
  const ms = await models()
  const cache = await freshCache(ms.processed, 'single')
  const names: string[] = golden('gpt2', 'processed').json.hook_names
  t.deepEqual(cache.keys(), names)
  t.deepEqual([...cache], names)
  t.is(cache.size, g.json.len_single)
  t.deepEqual(
    cache.entries().map(([k]) => k),
    names,
  )
  t.deepEqual(cache.items(), cache.entries())
  t.is(cache.values()[3], cache.get(names[3]))
  t.true(cache.hasEmbed && cache.hasPosEmbed)
  t.regex(String(cache), /^ActivationCache with keys \["hook_embed"/)
  t.is(cache.to('cpu'), cache)
  t.is((t.throws(() => cache.to('cuda')) as TransformerLensError).code, 'TL_UNSUPPORTED')
  cache.dispose()
})

test('computeHeadResults adds hook_result per layer after the run keys, as TL', async (t) => {
  const ms = await models()
  const cache = await freshCache(ms.processed, 'single')
  cache.computeHeadResults()
  t.deepEqual(cache.keys(), g.json.keys_after_compute_head_results)
  for (let l = 0; l < 3; l++) {
    assertClose(t, cache.get(`blocks.${l}.attn.hook_result`), g.tensors.get(`compute_head_results.${l}`), ACT_TOL, `compute_head_results.${l}`)
  }
  // Computing again changes nothing (TL warns and returns).
  const first = cache.get('result', 0)
  cache.computeHeadResults()
  t.is(cache.get('result', 0), first)
  cache.dispose()
})

test('removeBatchDim and applySliceToBatchDim match TL', async (t) => {
  const ms = await models()
  const key = g.json.batch_slice.key
  const nob = await freshCache(ms.processed, 'nobatch')
  t.is(nob.hasBatchDim, g.json.nobatch_has_batch_dim)
  assertClose(t, nob.get(key), g.tensors.get('nobatch.resid_post_1'), ACT_TOL, 'nobatch.resid_post_1')

  const batch = await freshCache(ms.processed, 'batch')
  t.is((t.throws(() => batch.removeBatchDim()) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
  for (const [mode, arg] of [
    ['int', 1],
    ['tuple', [1, 2]],
    ['array', { indices: [1, 0] }],
  ] as const) {
    const sliced = batch.applySliceToBatchDim(arg)
    t.is(sliced.hasBatchDim, g.json.batch_slice[mode].has_batch_dim, `${mode}: hasBatchDim`)
    assertClose(t, sliced.get(key), g.tensors.get(`slice_batch.${mode}.resid_post_1`), ACT_TOL, `slice_batch.${mode}`)
    if (mode === 'int') t.deepEqual(sliced.keys(), g.json.batch_slice.int.keys)
    sliced.dispose()
  }
  // The source cache is untouched by slicing and by disposing the slices.
  t.is(batch.get(key).shape[0], 2)
  // A cache without a batch dim takes no batch slice (TL asserts); identity is allowed here.
  t.is((t.throws(() => nob.applySliceToBatchDim(0)) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
  const same = nob.applySliceToBatchDim(new Slice(null))
  t.false(same.hasBatchDim)
  t.deepEqual(same.get(key).shape, nob.get(key).shape)
  same.dispose()
  nob.dispose()
  batch.dispose()
})

test('stackNeuronResults takes an int neuronSlice as that one neuron (TL raises)', async (t) => {
  const ms = await models()
  const cache = await freshCache(ms.processed, 'single')
  const [out, labels] = cache.stackNeuronResults(2, { neuronSlice: 5, posSlice: -1, returnLabels: true })
  t.deepEqual(labels, ['L0N5', 'L1N5'])
  const byList = cache.stackNeuronResults(2, { neuronSlice: { indices: [5] }, posSlice: -1 })
  t.deepEqual(out.shape, byList.shape)
  t.deepEqual(Array.from(out.toArray() as Float32Array), Array.from(byList.toArray() as Float32Array))
  cache.dispose()
})

test('analysis methods reject bad layers clearly', async (t) => {
  const ms = await models()
  const cache = await freshCache(ms.processed, 'single')
  t.is((t.throws(() => cache.accumulatedResid({ layer: -2 })) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is((t.throws(() => cache.decomposeResid({ mode: 'heads' as never })) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is((t.throws(() => cache.toggleAutodiff('yes' as never)) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  cache.dispose()
})

test.after.always(async () => {
  if (modelsP) {
    const ms = await modelsP
    ms.processed.dispose()
    ms.unprocessed.dispose()
  }
})
