import test from 'ava'

import { HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const PROMPT = 'The quick brown fox jumps over the lazy dog.'
const flat = (t: Tensor) => Array.from(t.toArray() as Float32Array)

test('a hook sees every firing in TL order and a no-op hook changes nothing', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const base = await m.forward(PROMPT)
  const seen: string[] = []
  const out = (await m.runWithHooks(PROMPT, { fwdHooks: [[() => true, (_x, hook) => void seen.push(hook.name)]] })) as Tensor
  // TL's forward hooks as recorded by make_backward_fixtures.py (ln1's fire three times per block).
  t.deepEqual(seen, golden('backward', 'hooks').json.fwd_fired)
  t.deepEqual([...new Set(seen)], golden('gpt2', 'processed').json.hook_names)
  t.is(maxAbsDiff(flat(out), flat(base)), 0)
  m.dispose()
})

test('a replacement flows downstream, and the cache records the replaced value', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const base = await m.forward(PROMPT)
  m.addHook('blocks.1.attn.hook_z', (z) => z.sliceAssign([null, null, 2], 0))
  const [logits, cache] = await m.runWithCache(PROMPT, { namesFilter: (n) => n.endsWith('hook_z') })
  t.true(maxAbsDiff(flat(logits), flat(base)) > 1e-3)
  const z = cache.get('z', 1)
  t.is(maxAbsDiff(flat(z.get(null, null, 2)), new Array(z.shape[1] * z.shape[3]).fill(0)), 0)
  m.resetHooks()
  t.is(maxAbsDiff(flat(await m.forward(PROMPT)), flat(base)), 0)
  m.dispose()
})

test('hook layer() and name; hooks on a filter fire once per matching point', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const layers: number[] = []
  await m.runWithHooks(PROMPT, { fwdHooks: [[(n) => n.endsWith('hook_resid_post'), (_x, h) => void layers.push(h.layer())]] })
  t.deepEqual(layers, [0, 1, 2])
  m.dispose()
})

test('permanent hooks survive resetHooks, prepend runs first, hooks() scopes', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const order: string[] = []
  m.addHook('hook_embed', () => void order.push('perm'), { isPermanent: true })
  m.addHook('hook_embed', () => void order.push('temp'))
  m.addHook('hook_embed', () => void order.push('first'), { prepend: true })
  await m.forward(PROMPT)
  t.deepEqual(order, ['first', 'perm', 'temp'])
  m.resetHooks()
  order.length = 0
  await m.forward(PROMPT)
  t.deepEqual(order, ['perm'])
  order.length = 0
  await m.hooks({ fwdHooks: [['hook_embed', () => void order.push('scoped')]] }, async (mm) => {
    await mm.forward(PROMPT)
  })
  await m.forward(PROMPT)
  t.deepEqual(order, ['perm', 'scoped', 'perm'])
  m.resetHooks({ includingPermanent: true })
  order.length = 0
  await m.forward(PROMPT)
  t.deepEqual(order, [])
  m.dispose()
})

test('a hook returning the wrong shape is TL_SHAPE_MISMATCH naming the hook', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const err = await t.throwsAsync(
    m.runWithHooks(PROMPT, { fwdHooks: [['blocks.0.hook_resid_pre', (x) => x.get(null, [0, 2])]] }),
    { instanceOf: TransformerLensError },
  )
  t.is(err?.code, 'TL_SHAPE_MISMATCH')
  t.regex(err?.message ?? '', /blocks\.0\.hook_resid_pre/)
  m.dispose()
})

test('an error thrown in a hook reaches the caller unchanged', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  class Mine extends Error {}
  await t.throwsAsync(m.runWithHooks(PROMPT, { fwdHooks: [['hook_embed', () => { throw new Mine('boom') }]] }), { instanceOf: Mine, message: 'boom' })
  // The model still works afterwards.
  t.deepEqual((await m.forward(PROMPT)).shape.length, 3)
  m.dispose()
})

test('unknown hook names are TL_UNKNOWN_HOOK', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.is((t.throws(() => m.addHook('blocks.0.attn.hook_nope', () => undefined)) as TransformerLensError).code, 'TL_UNKNOWN_HOOK')
  const e = await t.throwsAsync(m.runWithHooks(PROMPT, { fwdHooks: [['blocks.9.hook_resid_pre', () => undefined]] }))
  t.is((e as TransformerLensError).code, 'TL_UNKNOWN_HOOK')
  const [, cache] = await m.runWithCache(PROMPT, { namesFilter: ['hook_embed'] })
  t.is((t.throws(() => cache.get('pattern', 0)) as TransformerLensError).code, 'TL_UNKNOWN_HOOK')
  m.dispose()
})

test('cache shorthands follow get_act_name, negative layers included', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const [, cache] = await m.runWithCache(PROMPT)
  t.is(cache.resolveName('resid_post', -1), 'blocks.2.hook_resid_post')
  t.is(cache.resolveName('k6'), 'blocks.6.attn.hook_k')
  t.is(cache.resolveName('scale4ln1'), 'blocks.4.ln1.hook_scale')
  t.is(cache.resolveName('embed'), 'hook_embed')
  t.is(cache.resolveName('normalized'), 'ln_final.hook_normalized')
  t.is(cache.get('pattern', 0), cache.get('blocks.0.attn.hook_pattern'))
  const [, small] = await m.runWithCache(PROMPT, { namesFilter: 'hook_embed', removeBatchDim: true })
  t.deepEqual(small.get('embed').shape.length, 2)
  m.dispose()
})

test('an AbortSignal already aborted stops the run with TL_ABORTED', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const ac = new AbortController()
  ac.abort()
  const e = await t.throwsAsync(m.forward(PROMPT, { signal: ac.signal }))
  t.is((e as TransformerLensError).code, 'TL_ABORTED')
  m.dispose()
})
