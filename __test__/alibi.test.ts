/**
 * ALiBi (`positional_embedding_type: 'alibi'`, Bloom) beyond the Bloom fixture's 4 heads: the
 * bias `hook_attn_scores` carries equals TL's `create_alibi_bias` for head counts that are not
 * powers of two (TL's multipliers, not HF's interleaved ones), and cached generation (queries
 * offset by the cache) equals uncached; as in TL, a layer's bias table stays at the largest key
 * length the model instance has run, so a shorter run after a longer one shows shifted scores.
 * Goldens: golden/bigscience__bloom-560m/alibi.* from scripts/reference/make_family_fixtures.py
 * (golden_alibi).
 */
import test from 'ava'

import { HookedTransformer, Tensor } from '../src/index'
import { assertClose, maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const G = () => golden('bigscience/bloom-560m', 'alibi')

function alibiModel(nHeads: number): HookedTransformer {
  return HookedTransformer.fromConfig(
    {
      n_layers: 2, d_model: nHeads * 4, d_head: 4, n_heads: nHeads, n_ctx: 32, d_vocab: 40, act_fn: 'gelu_fast',
      normalization_type: 'LN', positional_embedding_type: 'alibi', post_embedding_ln: true,
    },
    { seed: 7 },
  )
}

for (const n of [3, 6, 12]) {
  test(`ALiBi with ${n} heads: hook_attn_scores - q.k / sqrt(d_head) is TL's create_alibi_bias`, async (t) => {
    const g = G()
    const ctx = g.json.ctx as number
    const want = g.tensors.get(`bias.${n}`)!
    const m = alibiModel(n)
    const tokens = Tensor.from([3, 14, 15, 9, 2, 6, 5].slice(0, ctx), [1, ctx], 'int64')
    const [, cache] = await m.runWithCache(tokens)
    for (const layer of [0, 1]) {
      const q = cache.get(`blocks.${layer}.attn.hook_q`).permute([0, 2, 1, 3])
      const k = cache.get(`blocks.${layer}.attn.hook_k`).permute([0, 2, 3, 1])
      const raw = q.matmul(k).div(2).toArray() as Float32Array
      const scores = cache.get(`blocks.${layer}.attn.hook_attn_scores`).toArray() as Float32Array
      const got: number[] = []
      const exp: number[] = []
      const w = want.data as Float32Array
      for (let h = 0; h < n; h++) {
        for (let i = 0; i < ctx; i++) {
          for (let j = 0; j <= i; j++) {
            const at = (h * ctx + i) * ctx + j
            got.push(scores[at] - raw[at])
            exp.push(w[at])
          }
        }
      }
      t.true(maxAbsDiff(got, exp) < 1e-5, `layer ${layer}: ${maxAbsDiff(got, exp)}`)
      // Future keys stay masked.
      t.is(scores[1], -Infinity)
    }
    cache.dispose()
    m.dispose()
  })

  test(`ALiBi with ${n} heads: greedy generation with the KV cache equals generation without`, async (t) => {
    const m = alibiModel(n)
    const prompt = Tensor.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [2, 9], 'int64')
    const o = { maxNewTokens: 10, doSample: false, stopAtEos: false, returnType: 'tokens' as const }
    const kv = (await m.generate(prompt, o)) as Tensor
    const nokv = (await m.generate(prompt, { ...o, useKvCache: false })) as Tensor
    t.deepEqual(kv.toList(), nokv.toList())
    // The logits of a run in two halves through the cache equal the full run's.
    const full = (await m.forward(prompt)) as Tensor
    const cache = m.initKvCache(2)
    await m.forward(prompt.get([0, 2], [0, 5]), { pastKvCache: cache })
    const tail = (await m.forward(prompt.get([0, 2], [5, 9]), { pastKvCache: cache })) as Tensor
    const fullTail = full.get([0, 2], [5, 9])
    t.true(maxAbsDiff(tail.toArray() as Float32Array, fullTail.toArray() as Float32Array) < 1e-4)
    m.dispose()
  })
}

test("Bloom: a run after a longer one (stopped after layer 0) shows TL's scores: layer 0 shifted, later layers fresh", async (t) => {
  const g = G()
  const m = await HookedTransformer.fromPretrained('bigscience/bloom-560m')
  const ids = (key: string) => { const x = g.tensors.get(key)!; return Tensor.from(x.data as BigInt64Array, x.shape, 'int64') }
  await m.forward(ids('history.long_tokens'), { stopAtLayer: 1 })
  const [, cache] = await m.runWithCache(ids('history.tokens'))
  for (let l = 0; l < m.cfg.n_layers; l++) {
    assertClose(t, cache.get(`blocks.${l}.attn.hook_attn_scores`), g.tensors.get(`history.attn_scores.${l}`), 1e-4, `bloom.history.attn_scores.${l}`)
  }
  cache.dispose()
  m.dispose()
})
