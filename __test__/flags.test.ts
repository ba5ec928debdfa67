/** TL's use_* flags and processing switches, against TL goldens. */
import test from 'ava'

import { HookedTransformer } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

for (const [fixture, setFlags] of [
  ['flags', (m: HookedTransformer) => (m.setUseAttnResult(true), m.setUseSplitQkvInput(true), m.setUseHookMlpIn(true))],
  ['attn_in', (m: HookedTransformer) => m.setUseAttnIn(true)],
] as const) {
  test(`gpt2 with ${fixture}: hook names, order and values match TL`, async (t) => {
    const g = golden('gpt2', fixture)
    const m = await HookedTransformer.fromPretrained('gpt2')
    setFlags(m)
    const [logits, cache] = await m.runWithCache(m.toTokens(g.json.prompt))
    assertClose(t, logits, g.tensors.get('logits'), 1e-4, `gpt2.${fixture}.logits`)
    t.deepEqual(cache.keys(), g.json.hook_names)
    for (const key of cache.keys()) assertClose(t, cache.get(key), g.tensors.get(`cache.${key}`), key.endsWith('pattern') ? 1e-5 : 1e-4, `gpt2.${fixture}.${key}`)
    m.dispose()
  })
}

test('use_attn_in and use_split_qkv_input cannot both be on', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  m.setUseAttnIn(true)
  t.is((t.throws(() => m.setUseSplitQkvInput(true)) as { code?: string }).code, 'TL_INVALID_ARGUMENT')
  m.dispose()
})

test("TL's setter assertions: use_attn_in with grouped-query attention, use_hook_mlp_in on an attn_only model", async (t) => {
  // TL asserts n_key_value_heads is None in set_use_attn_in, whatever the value (Qwen2 sets it
  // even for as many K/V heads as query heads).
  for (const model of ['01-ai/Yi-6B', 'Qwen/Qwen2-0.5B']) {
    const m = await HookedTransformer.fromPretrained(model)
    for (const on of [true, false]) t.is((t.throws(() => m.setUseAttnIn(on)) as { code?: string }).code, 'TL_INVALID_ARGUMENT')
    t.is(m.cfg.use_attn_in, false)
    m.dispose()
  }
  const a = HookedTransformer.fromConfig({ n_layers: 1, d_model: 8, d_head: 4, n_heads: 2, n_ctx: 8, d_vocab: 10, attn_only: true, act_fn: 'relu' })
  t.is((t.throws(() => a.setUseHookMlpIn(true)) as { code?: string }).code, 'TL_INVALID_ARGUMENT')
  a.dispose()
})

const VARIANTS = {
  fold_ln_off: { foldLn: false },
  center_writing_weights_off: { center_writing_weights: false },
  center_unembed_off: { centerUnembed: false },
  fold_value_biases_off: { fold_value_biases: false },
} as const

for (const [variant, options] of Object.entries(VARIANTS)) {
  test(`fromPretrained with ${variant} matches TL (logits and state dict)`, async (t) => {
    const g = golden('gpt2', 'processed_options')
    const processed = golden('gpt2', 'processed')
    const m = await HookedTransformer.fromPretrained('gpt2', options as never)
    const logits = await m.forward(m.toTokens(g.json.prompt))
    assertClose(t, logits, g.tensors.get(`${variant}.logits`), 1e-4, `gpt2.${variant}.logits`)
    const info = g.json.variants[variant]
    const sd = m.stateDict()
    const weights = [...sd.keys()].filter((k) => !k.endsWith('.mask') && !k.endsWith('.IGNORE'))
    t.deepEqual(weights, info.state_dict_keys)
    for (const key of weights) {
      const golden = g.tensors.get(`${variant}.state_dict.${key}`) ?? processed.tensors.get(`state_dict.${key}`)
      assertClose(t, sd.get(key)!, golden, 1e-5, `gpt2.${variant}.state_dict.${key}`)
    }
    m.dispose()
  })
}
