/**
 * Parity with Python TransformerLens on fabricated GPT-2-family checkpoints: every golden here
 * was produced by TL 2.16.1 (scripts/reference/make_fixtures.py).
 */
import test from 'ava'

import { defaultDevice, HookedTransformer, Tensor } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, MODELS, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const LOGITS_TOL = 1e-4
const ACT_TOL = 1e-4
const SOFTMAX_TOL = 1e-5
const LOSS_TOL = 1e-5

const MODES = [
  ['processed', (m: string) => HookedTransformer.fromPretrained(m)],
  ['unprocessed', (m: string) => HookedTransformer.fromPretrainedNoProcessing(m)],
] as const

for (const model of MODELS) {
  for (const [mode, load] of MODES) {
    const name = `${model} ${mode}`

    test(`${name}: tokens, logits, loss and per-token loss match TL`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      const tokens = m.toTokens(g.json.prompts.single)
      assertClose(t, tokens, g.tensors.get('single.tokens'), 0, `${name}.single.tokens`)
      t.deepEqual(m.toStrTokens(g.json.prompts.single), g.json.str_tokens)
      const out = await m.forward(tokens, { returnType: 'both' })
      assertClose(t, out.logits, g.tensors.get('single.logits'), LOGITS_TOL, `${name}.single.logits`)
      assertClose(t, out.loss, g.tensors.get('single.loss'), LOSS_TOL, `${name}.single.loss`)
      const perToken = await m.forward(tokens, { returnType: 'loss', lossPerToken: true })
      assertClose(t, perToken, g.tensors.get('single.loss_per_token'), LOSS_TOL, `${name}.single.loss_per_token`)
      // A string input runs the same tokens.
      const fromString = await m.forward(g.json.prompts.single)
      assertClose(t, fromString, g.tensors.get('single.logits'), LOGITS_TOL, `${name}.single.logits.fromString`)
      m.dispose()
    })

    test(`${name}: every cached activation matches TL, in TL's order`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      const [, cache] = await m.runWithCache(m.toTokens(g.json.prompts.single))
      t.deepEqual(cache.keys(), g.json.hook_names)
      for (const key of cache.keys()) {
        const tol = key.endsWith('hook_pattern') ? SOFTMAX_TOL : ACT_TOL
        assertClose(t, cache.get(key), g.tensors.get(`single.cache.${key}`), tol, `${name}.cache.${key}`)
      }
      cache.dispose()
      m.dispose()
    })

    test(`${name}: batched prompts (right padding) match TL`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      const tokens = m.toTokens(g.json.prompts.batch)
      assertClose(t, tokens, g.tensors.get('batch.tokens'), 0, `${name}.batch.tokens`)
      const names: string[] = g.json.batch_cache_names
      const [logits, cache] = await m.runWithCache(tokens, { namesFilter: names })
      assertClose(t, logits, g.tensors.get('batch.logits'), LOGITS_TOL, `${name}.batch.logits`)
      t.deepEqual(cache.keys(), names)
      for (const key of names) assertClose(t, cache.get(key), g.tensors.get(`batch.cache.${key}`), ACT_TOL, `${name}.batch.cache.${key}`)
      const loss = await m.forward(tokens, { returnType: 'loss' })
      assertClose(t, loss, g.tensors.get('batch.loss'), LOSS_TOL, `${name}.batch.loss`)
      const perToken = await m.forward(tokens, { return_type: 'loss', loss_per_token: true } as never)
      assertClose(t, perToken, g.tensors.get('batch.loss_per_token'), LOSS_TOL, `${name}.batch.loss_per_token`)
      m.dispose()
    })

    test(`${name}: prependBos false, stopAtLayer and startAtLayer match TL`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      const nobos = m.toTokens(g.json.prompts.single, { prependBos: false })
      assertClose(t, nobos, g.tensors.get('nobos.tokens'), 0, `${name}.nobos.tokens`)
      assertClose(t, await m.forward(nobos), g.tensors.get('nobos.logits'), LOGITS_TOL, `${name}.nobos.logits`)
      const tokens = m.toTokens(g.json.prompts.single)
      const resid = (await m.forward(tokens, { stopAtLayer: 1 })) as Tensor
      assertClose(t, resid, g.tensors.get('stop1.resid'), ACT_TOL, `${name}.stop1.resid`)
      const logits = await m.forward(resid, { startAtLayer: 1 })
      assertClose(t, logits, g.tensors.get('start1.logits'), LOGITS_TOL, `${name}.start1.logits`)
      m.dispose()
    })

    test(`${name}: state dict has TL's keys, order, layouts and values`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      const sd = m.stateDict()
      t.deepEqual([...sd.keys()], g.json.state_dict_keys)
      // TL's n_ctx-sized buffers of models it caps at 2048 positions are stored cut to their first
      // rows/columns (`sliced`: the full shape TL has); ours must have that shape and those values.
      const sliced: Record<string, number[]> = g.json.sliced ?? {}
      for (const [key, value] of sd) {
        const want = g.tensors.get(`state_dict.${key}`)
        const full = sliced[`state_dict.${key}`]
        if (full && want) {
          t.deepEqual(value.shape, full, `${name}.state_dict.${key}: shape`)
          const head = value.get(...want.shape.map((n): [number, number] => [0, n]))
          assertClose(t, head, want, 1e-5, `${name}.state_dict.${key}[:${want.shape}]`)
        } else {
          assertClose(t, value, want, 1e-5, `${name}.state_dict.${key}`)
        }
      }
      m.dispose()
    })

    test(`${name}: cfg has TL's fields and values`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      // TL keeps the device it ran on (the goldens ran on the CPU); here the default device.
      const expected = { ...g.json.cfg, device: defaultDevice() }
      const actual: Record<string, unknown> = { ...m.cfg }
      // torch dtypes are objects in Python; here they are strings.
      t.is(expected.dtype, 'torch.float32')
      t.is(actual.dtype, 'float32')
      delete expected.dtype
      delete actual.dtype
      t.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort())
      for (const k of Object.keys(expected)) t.deepEqual(actual[k], expected[k], `cfg.${k}`)
      m.dispose()
    })
  }
}
