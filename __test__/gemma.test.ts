/**
 * Gemma and Gemma 2 beyond the generic family tests (parity, generation, families, analysis):
 * TL's hard-coded configs of every official Gemma name, Gemma 2's soft caps at work, its
 * ln1_post / ln2_post hooks where TL fires them, and its global / local layers. Goldens from
 * scripts/reference/gemma_fixtures.py (TL); the fixture checkpoints are reduced Gemmas under
 * the official ids (that script says how TL's config table is patched for them).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { getPretrainedModelConfig, HookedTransformer } from '../src/index'
import { FIXTURES, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const { configs } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', 'gemma_configs.json'), 'utf8')) as {
  configs: Record<string, Record<string, unknown>>
}

for (const [name, tl] of Object.entries(configs)) {
  test(`getPretrainedModelConfig(${name}) is TL's hard-coded config (no file read)`, async (t) => {
    const cfg = await getPretrainedModelConfig(name, { device: 'cpu', foldLn: false } as never)
    const want: Record<string, unknown> = { ...tl, dtype: String(tl.dtype).replace('torch.', '') }
    t.deepEqual(Object.keys(cfg).sort(), Object.keys(want).sort())
    for (const k of Object.keys(want)) t.deepEqual(cfg[k], want[k], `cfg.${k}`)
  })
}

const PROMPT = 'The quick brown fox jumps over the lazy dog. It was a sunny day.'

test('Gemma 2: attention scores and logits stay inside their soft caps, and reach into the tanh', async (t) => {
  const m = await HookedTransformer.fromPretrained('google/gemma-2-2b')
  const [logits, cache] = await m.runWithCache(m.toTokens(PROMPT))
  const attnCap = m.cfg.attn_scores_soft_cap as number
  const logitCap = m.cfg.output_logits_soft_cap as number
  t.true(attnCap > 0 && logitCap > 0)
  const maxAbs = (xs: ArrayLike<number>) => Array.from(xs).filter(Number.isFinite).reduce((a, x) => Math.max(a, Math.abs(x)), 0)
  for (let l = 0; l < m.cfg.n_layers; l++) {
    const s = maxAbs(cache.get(`blocks.${l}.attn.hook_attn_scores`).toArray() as Float32Array)
    t.true(s < attnCap && s > attnCap / 2, `layer ${l}: max |score| ${s} vs cap ${attnCap}`)
  }
  const lg = maxAbs(logits.toArray() as Float32Array)
  t.true(lg < logitCap && lg > logitCap / 2, `max |logit| ${lg} vs cap ${logitCap}`)
  m.dispose()
})

test("Gemma 2 has ln1_post / ln2_post hooks where TL fires them; Gemma 1 has none", async (t) => {
  const m2 = await HookedTransformer.fromPretrained('google/gemma-2-2b')
  const [, cache] = await m2.runWithCache(m2.toTokens(PROMPT))
  const keys = [...cache.keys()].filter((k) => k.startsWith('blocks.0.'))
  const at = (k: string) => keys.indexOf(`blocks.0.${k}`)
  t.deepEqual(
    keys.slice(at('attn.hook_z'), at('hook_attn_out') + 1).map((k) => k.slice('blocks.0.'.length)),
    ['attn.hook_z', 'ln1_post.hook_scale', 'ln1_post.hook_normalized', 'hook_attn_out'],
  )
  t.deepEqual(
    keys.slice(at('mlp.hook_post'), at('hook_mlp_out') + 1).map((k) => k.slice('blocks.0.'.length)),
    ['mlp.hook_post', 'ln2_post.hook_scale', 'ln2_post.hook_normalized', 'hook_mlp_out'],
  )
  // The post norms keep their weights under fold_ln (ln1 / ln2 are folded).
  const sd = m2.stateDict()
  t.true(sd.has('blocks.0.ln1_post.w') && sd.has('blocks.0.ln2_post.w'))
  t.false(sd.has('blocks.0.ln1.w'))
  m2.dispose()
  const m1 = await HookedTransformer.fromPretrained('google/gemma-2b')
  const [, c1] = await m1.runWithCache(m1.toTokens(PROMPT))
  t.false([...c1.keys()].some((k) => k.includes('ln1_post') || k.includes('ln2_post')))
  m1.dispose()
})

test('Gemma 2: layers alternate global and local (TL: global first), the local ones within the window', async (t) => {
  const m = await HookedTransformer.fromPretrained('google/gemma-2-2b')
  t.deepEqual(m.cfg.attn_types, ['global', 'local', 'global', 'local'])
  const w = m.cfg.window_size as number
  const [, cache] = await m.runWithCache(m.toTokens(PROMPT))
  for (let l = 0; l < m.cfg.n_layers; l++) {
    const pattern = cache.get(`blocks.${l}.attn.hook_pattern`) // [1, heads, q, k]
    const [, h, q, k] = pattern.shape
    const p = pattern.toArray()
    let outside = 0
    for (let i = 0; i < h * q * k; i++) {
      const qi = Math.floor(i / k) % q
      const ki = i % k
      if (ki <= qi - w) outside += Number(p[i])
    }
    if (l % 2 === 1) t.is(outside, 0, `local layer ${l} attends outside its window`)
    else t.true(outside > 0.1, `global layer ${l} attends only within the window`)
  }
  m.dispose()
})
