/**
 * HookedEncoder in 16 bits (`dtype: 'bfloat16' | 'float16'`) against TransformerLens run in the
 * same dtype on the BERT fixture (goldens from scripts/reference/encoder_dtype_fixtures.py) and
 * against TL's float32 goldens (encoder.safetensors, same inputs). The bounds are dtype.test.ts':
 * our distance to TL's float32 logits is at most twice TL's own 16-bit distance to them (plus one
 * ulp of the logit scale), our distance to TL's 16-bit logits is within the same bound, both stay
 * under a relative ceiling for the dtype; every cached activation has TL's dtype (attention scores,
 * patterns and LayerNorm statistics in float32, as TL's AbstractAttention and LayerNorm keep them)
 * and every weight the model's dtype.
 */
import test from 'ava'

import { BertNextSentencePrediction, HookedEncoder, Tensor } from '../src/index'
import { maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const MODEL = 'google-bert/bert-base-cased'
const BITS = { bfloat16: 8, float16: 11 } as const
const CEILING = { bfloat16: 2 ** -4, float16: 2 ** -7 } as const

const floats = (t: Tensor) => Array.from(t.to('float32').toArray() as Float32Array)
const goldFloats = (name: string, key: string) => {
  const t = golden(MODEL, name).tensors.get(key)
  if (!t) throw new Error(`no golden ${name}:${key}`)
  return Array.from(t.data as Float32Array)
}
const absMax = (xs: number[]) => xs.reduce((a, x) => Math.max(a, Math.abs(x)), 0)

for (const dtype of ['bfloat16', 'float16'] as const) {
  const name = `encoder_${dtype}`
  const tokensOf = (key: string) => {
    const t = golden(MODEL, name).tensors.get(key)!
    return Tensor.from(t.data as BigInt64Array, t.shape)
  }

  test(`${dtype}: MLM logits of a padded batch within TL's own 16-bit error; TL's activation and weight dtypes`, async (t) => {
    const g = golden(MODEL, name)
    const m = await HookedEncoder.fromPretrained(MODEL, { dtype })
    t.is(m.cfg.dtype, dtype)
    const [logits, cache] = await m.runWithCache(tokensOf('batch.tokens'), { oneZeroAttentionMask: tokensOf('batch.attention_mask') })
    t.is((logits as Tensor).dtype, dtype)
    const ours = floats(logits as Tensor)
    const tl16 = goldFloats(name, 'batch.logits')
    const tl32 = goldFloats('encoder', 'batch.logits')
    const scale = absMax(tl32)
    const ulp = scale * 2 ** -BITS[dtype]
    const [errTl, errOurs, vsTl16] = [maxAbsDiff(tl16, tl32), maxAbsDiff(ours, tl32), maxAbsDiff(ours, tl16)]
    const info = `scale ${scale.toFixed(3)}: |ours−TL32| ${errOurs.toFixed(4)}, |TL16−TL32| ${errTl.toFixed(4)}, |ours−TL16| ${vsTl16.toFixed(4)}`
    t.true(errTl > 0, `TL's ${dtype} run differs from float32 (${info})`)
    t.true(errOurs <= 2 * errTl + ulp, info)
    t.true(vsTl16 <= 2 * errTl + ulp, info)
    t.true(errOurs <= CEILING[dtype] * scale, info)

    const n = m.cfg.n_layers as number
    for (const [key, hook] of [['last_resid', `blocks.${n - 1}.hook_normalized_resid_post`], ['pattern0', 'blocks.0.attn.hook_pattern']]) {
      const want = goldFloats(name, `batch.${key}`)
      const got = floats(cache.get(hook))
      t.true(maxAbsDiff(got, want) <= CEILING[dtype] * absMax(want), `${hook}: ${maxAbsDiff(got, want)} at scale ${absMax(want)}`)
    }

    const hookDtypes = g.json.hook_dtypes as Record<string, string>
    t.deepEqual([...cache.keys()], Object.keys(hookDtypes), 'hook names in TL order')
    const wrong = Object.entries(hookDtypes).filter(([k, d]) => cache.get(k).dtype !== d)
    t.deepEqual(wrong.map(([k, d]) => `${k}: ${cache.get(k).dtype} (TL ${d})`), [])
    const sdDtypes = g.json.state_dict_dtypes as Record<string, string>
    const sd = m.stateDict()
    t.deepEqual([...sd.keys()], Object.keys(sdDtypes), "TL's state dict keys")
    for (const [k, w] of sd) {
      // Masks are uint8 here (no bool tensors), as in dtype.test.ts; TL's IGNORE is its own constant.
      if (sdDtypes[k] !== 'bool' && !k.endsWith('IGNORE')) t.is(w.dtype as string, sdDtypes[k], k)
      w.dispose()
    }
    cache.dispose()
    m.dispose()
  })

  test(`${dtype}: next-sentence logits within TL's own 16-bit error`, async (t) => {
    const m = await HookedEncoder.fromPretrained(MODEL, { dtype })
    const nsp = new BertNextSentencePrediction(m)
    const pair = golden(MODEL, 'encoder').json.inputs.pair as [string, string]
    const ours = floats((await nsp.forward(pair)) as Tensor)
    const tl16 = goldFloats(name, 'nsp.logits')
    const tl32 = goldFloats('encoder', 'nsp.logits')
    const ulp = absMax(tl32) * 2 ** -BITS[dtype]
    const errTl = maxAbsDiff(tl16, tl32)
    t.true(maxAbsDiff(ours, tl32) <= 2 * errTl + ulp, `|ours−TL32| ${maxAbsDiff(ours, tl32)}, |TL16−TL32| ${errTl}`)
    t.true(maxAbsDiff(ours, tl16) <= 2 * errTl + ulp, `|ours−TL16| ${maxAbsDiff(ours, tl16)}`)
    m.dispose()
  })
}
