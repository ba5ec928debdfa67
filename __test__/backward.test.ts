/**
 * Backward passes against TL 2.x goldens from scripts/reference/make_backward_fixtures.py on the
 * fabricated `gpt2`: `runWithCache({ inclBwd: true })` (keys in TL's order, every activation
 * and gradient), left padding, the split-input flags, unprocessed weights, and backward hooks
 * (observing and replacing gradients) during `metric(model(tokens)).backward()`.
 */
import test from 'ava'

// Hooks are registered on one shared model: the tests run one at a time.

import { HookedTransformer, HookPoint, Tensor, TransformerLensError } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const ACT_TOL = 1e-4
const GRAD_TOL = 1e-5

let processed: Promise<HookedTransformer> | null = null
const model = () => (processed ??= HookedTransformer.fromPretrained('gpt2'))

function checkCache(t: any, keys: string[], cache: { keys(): string[]; get(k: string): Tensor }, set: ReturnType<typeof golden>, label: string) {
  t.deepEqual(cache.keys(), keys, `${label}: keys in TL's order`)
  for (const k of keys) assertClose(t, cache.get(k), set.tensors.get(k), k.endsWith('_grad') ? GRAD_TOL : ACT_TOL, `${label}.${k}`)
}

test.serial('runWithCache inclBwd: loss, activations and gradients as TL, in TL order', async (t) => {
  const m = await model()
  const g = golden('backward', 'incl_bwd')
  const tokens = m.toTokens('The quick brown fox jumps over the lazy dog. It was a sunny day.')
  assertClose(t, tokens, g.tensors.get('tokens'), 0, 'tokens')
  const [loss, cache] = await m.runWithCache(tokens, { returnType: 'loss', inclBwd: true })
  assertClose(t, loss, g.tensors.get('loss'), 1e-5, 'loss')
  checkCache(t, g.json.keys, cache, g, 'incl_bwd')
})

test.serial('runWithCache inclBwd on a left-padded batch (masked loss)', async (t) => {
  const m = await model()
  const g = golden('backward', 'padded')
  const [loss, cache] = await m.runWithCache(['Hello there, how are you', 'The quick brown fox jumps over'], { returnType: 'loss', inclBwd: true, paddingSide: 'left' })
  assertClose(t, loss, g.tensors.get('loss'), 1e-5, 'padded.loss')
  checkCache(t, g.json.keys, cache, g, 'padded')
})

test.serial('runWithCache inclBwd with use_attn_result and split QKV inputs, names filtered', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  m.setUseAttnResult(true)
  m.setUseSplitQkvInput(true)
  const g = golden('backward', 'flags')
  const tokens = Tensor.from(g.tensors.get('tokens')!.data as BigInt64Array, g.tensors.get('tokens')!.shape, 'int64')
  const [, cache] = await m.runWithCache(tokens, {
    returnType: 'loss',
    inclBwd: true,
    namesFilter: (n: string) => n.startsWith('blocks.1.') || n === 'hook_embed',
  })
  checkCache(t, g.json.keys, cache, g, 'flags')
  m.dispose()
})

test.serial('runWithCache inclBwd on unprocessed weights', async (t) => {
  const m = await HookedTransformer.fromPretrainedNoProcessing('gpt2')
  const g = golden('backward', 'unprocessed')
  const tokens = Tensor.from(g.tensors.get('tokens')!.data as BigInt64Array, g.tensors.get('tokens')!.shape, 'int64')
  const [loss, cache] = await m.runWithCache(tokens, { returnType: 'loss', inclBwd: true })
  assertClose(t, loss, g.tensors.get('loss'), 1e-5, 'unprocessed.loss')
  checkCache(t, g.json.keys, cache, g, 'unprocessed')
  m.dispose()
})

/** Backward hooks on every hook point; returns the gradients seen (last per name) and the order. */
async function hookedBackward(m: HookedTransformer, name: string, modify?: string) {
  const g = golden('backward', name)
  const tokens = Tensor.from(g.tensors.get('tokens')!.data as BigInt64Array, g.tensors.get('tokens')!.shape, 'int64')
  const fired: string[] = []
  const fwdFired: string[] = []
  const grads = new Map<string, Tensor>()
  const save = (grad: Tensor, hook: HookPoint) => {
    fired.push(hook.name)
    grads.set(hook.name, grad)
  }
  const bwdHooks: [string | ((n: string) => boolean), (x: Tensor, h: HookPoint) => any][] = [[() => true, save]]
  if (modify) bwdHooks.push([modify, (grad: Tensor) => [grad.mul(0.5)]])
  const metric = await m.hooks({ fwdHooks: [[() => true, (_x, h) => void fwdFired.push(h.name)]], bwdHooks }, async () => {
    const logits = (await m.forward(tokens)) as Tensor
    const v = logits.get(0, -1, g.json.answer).sub(logits.get(0, -1, g.json.wrong))
    v.backward()
    return v
  })
  return { g, fired, fwdFired, grads, metric }
}

test.serial('backward hooks see each hook point gradient as TL (metric.backward())', async (t) => {
  const m = await model()
  const { g, fired, fwdFired, grads, metric } = await hookedBackward(m, 'hooks')
  assertClose(t, metric, g.tensors.get('metric'), 1e-4, 'hooks.metric')
  t.deepEqual(fwdFired, g.json.fwd_fired, 'forward hooks fire as TL (ln1 three times per block)')
  // Every tap fires, each after all of its uses; independent branches may come in another order.
  t.deepEqual([...fired].sort(), [...g.json.fired].sort())
  for (const name of new Set<string>(g.json.fired)) {
    if (!name.includes('.ln1.')) assertClose(t, grads.get(name)!, g.tensors.get(name), GRAD_TOL, `hooks.${name}`)
  }
  // ln1's three uses each fire their own gradient; TL's dict kept the one fired last (Q's).
  for (const name of ['blocks.0.ln1.hook_normalized', 'blocks.2.ln1.hook_scale']) {
    t.is(fired.filter((f) => f === name).length, 3)
  }
})

test.serial('a backward hook that returns a gradient changes what flows upstream, as TL', async (t) => {
  const m = await model()
  const { g, grads } = await hookedBackward(m, 'modified', 'blocks.1.hook_resid_mid')
  const plain = golden('backward', 'hooks')
  // Upstream of the halved point the gradients differ from the unmodified run, and match TL's.
  for (const name of ['hook_embed', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_pre', 'blocks.1.attn.hook_pattern', 'blocks.2.hook_resid_pre']) {
    assertClose(t, grads.get(name)!, g.tensors.get(name), GRAD_TOL, `modified.${name}`)
  }
  const a = grads.get('hook_embed')!.toArray() as Float32Array
  const b = plain.tensors.get('hook_embed')!.data as Float32Array
  t.true(a.some((x, i) => Math.abs(x - b[i]) > 1e-6), 'the replacement reached hook_embed')
})

test.serial('backward hooks registered at forward time fire after resetHooks, as torch', async (t) => {
  const m = await model()
  let n = 0
  const out = (await m.runWithHooks('hi there', { bwdHooks: [['hook_embed', () => void n++]] })) as Tensor
  t.is(n, 0)
  out.sum().backward()
  t.is(n, 1)
  m.addHook('hook_pos_embed', () => void n++, { dir: 'bwd' })
  const out2 = (await m.forward('hi there')) as Tensor
  m.resetHooks()
  out2.sum().backward()
  t.is(n, 2)
})

test.serial('resetHooks direction removes only that direction', async (t) => {
  const m = await model()
  let fwd = 0
  let bwd = 0
  m.addHook('hook_embed', () => void fwd++)
  m.addHook('hook_embed', () => void bwd++, { dir: 'bwd' })
  m.resetHooks({ direction: 'bwd' })
  const out = (await m.forward('hi')) as Tensor
  t.is(fwd, 1)
  t.throws(() => out.sum().backward(), { instanceOf: TransformerLensError, code: 'TL_INVALID_ARGUMENT' })
  m.resetHooks({ direction: 'fwd' })
  await m.forward('hi')
  t.is(fwd, 1)
  t.is(bwd, 0)
  t.throws(() => m.resetHooks({ direction: 'sideways' as any }), { code: 'TL_INVALID_ARGUMENT' })
  t.throws(() => m.addHook('hook_embed', () => undefined, { dir: 'up' as any }), { code: 'TL_INVALID_ARGUMENT' })
})

test.serial('backward errors: no graph, not a scalar, non-scalar inclBwd, bad and throwing hooks', async (t) => {
  const m = await model()
  const logits = (await m.forward('hi there')) as Tensor
  t.throws(() => logits.sum().backward(), { instanceOf: TransformerLensError, code: 'TL_INVALID_ARGUMENT', message: /gradient graph/ })
  await t.throwsAsync(() => m.runWithCache('hi there', { inclBwd: true }), { code: 'TL_INVALID_ARGUMENT', message: /scalar/ })

  const out = (await m.runWithHooks('hi there', { bwdHooks: [['hook_embed', () => undefined]] })) as Tensor
  t.throws(() => out.backward(), { code: 'TL_SHAPE_MISMATCH', message: /scalar/ })

  const boom = new Error('boom in a backward hook')
  const out2 = (await m.runWithHooks('hi there', { bwdHooks: [['blocks.0.hook_resid_post', () => { throw boom }]] })) as Tensor
  t.throws(() => out2.sum().backward(), { is: boom })

  const out3 = (await m.runWithHooks('hi there', { bwdHooks: [['blocks.0.hook_resid_post', () => Tensor.zeros([1, 2])]] })) as Tensor
  t.throws(() => out3.sum().backward(), { code: 'TL_HOOK', message: /shape/ })

  const kv = m.initKvCache(1)
  await t.throwsAsync(() => m.runWithCache('hi there', { returnType: 'loss', inclBwd: true, pastKvCache: kv }), { code: 'TL_UNSUPPORTED' })
})

test.serial('a run without backward hooks builds no graph; with them, fused and differentiable paths agree', async (t) => {
  const m = await model()
  const plain = (await m.forward('The cat sat on the mat')) as Tensor
  const withGrad = (await m.runWithHooks('The cat sat on the mat', { bwdHooks: [['hook_embed', () => undefined]] })) as Tensor
  assertClose(t, withGrad, { shape: plain.shape, data: plain.toArray() as Float32Array } as any, 1e-4, 'grad-path logits')
})
