/**
 * HookedEncoder in 16 bits (`dtype: 'bfloat16' | 'float16'`) against TransformerLens run in the
 * same dtype on the BERT fixture (goldens from scripts/reference/encoder_dtype_fixtures.py) and
 * against TL's float32 goldens (encoder.safetensors, same inputs), with dtype.test.ts' bounds
 * (helpers/half.ts): logits within TL's own 16-bit error, every cached activation with TL's dtype
 * (attention scores, patterns and LayerNorm statistics in float32, as TL's AbstractAttention and
 * LayerNorm keep them) and every weight in the model's dtype.
 */
import test from 'ava'

import { BertNextSentencePrediction, HookedEncoder, Tensor } from '../src/index'
import { maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import { absMax, CEILING, floats, tlDtypes, withinTlHalfError } from './helpers/half'

useFixtureHub()

const MODEL = 'google-bert/bert-base-cased'

const goldFloats = (name: string, key: string) => {
  const t = golden(MODEL, name).tensors.get(key)
  if (!t) throw new Error(`no golden ${name}:${key}`)
  return Array.from(t.data as Float32Array)
}

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
    withinTlHalfError(t, dtype, floats(logits as Tensor), goldFloats(name, 'batch.logits'), goldFloats('encoder', 'batch.logits'), 'MLM logits')
    const n = m.cfg.n_layers as number
    for (const [key, hook] of [['last_resid', `blocks.${n - 1}.hook_normalized_resid_post`], ['pattern0', 'blocks.0.attn.hook_pattern']]) {
      const want = goldFloats(name, `batch.${key}`)
      const got = floats(cache.get(hook))
      t.true(maxAbsDiff(got, want) <= CEILING[dtype] * absMax(want), `${hook}: ${maxAbsDiff(got, want)} at scale ${absMax(want)}`)
    }
    const sd = m.stateDict()
    t.deepEqual([...sd.keys()], Object.keys(g.json.state_dict_dtypes), "TL's state dict keys")
    tlDtypes(t, cache, sd, g.json.hook_dtypes, g.json.state_dict_dtypes)
    cache.dispose()
    m.dispose()
  })

  test(`${dtype}: next-sentence logits within TL's own 16-bit error`, async (t) => {
    const m = await HookedEncoder.fromPretrained(MODEL, { dtype })
    const nsp = new BertNextSentencePrediction(m)
    const pair = golden(MODEL, 'encoder').json.inputs.pair as [string, string]
    const ours = floats((await nsp.forward(pair)) as Tensor)
    withinTlHalfError(t, dtype, ours, goldFloats(name, 'nsp.logits'), goldFloats('encoder', 'nsp.logits'), 'NSP logits')
    m.dispose()
  })
}
