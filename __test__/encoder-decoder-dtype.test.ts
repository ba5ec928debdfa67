/**
 * HookedEncoderDecoder (T5) in 16 bits against TransformerLens run in the same dtype with its
 * decoder self-attention made HF's (goldens from scripts/reference/t5_dtype_fixtures.py; the port
 * computes the decoder as HF does, see encoder-decoder.test.ts) and against the float32 goldens
 * (t5.safetensors, same inputs). The bounds are dtype.test.ts': our distance to the float32
 * logits is at most twice TL's own 16-bit distance (plus one ulp of the logit scale), our distance
 * to TL's 16-bit logits is within the same bound, both under a relative ceiling; every cached
 * activation and weight has TL's dtype; greedy generation gives TL's tokens while TL's top-two
 * gap is wider than four times that error.
 */
import test from 'ava'

import { HookedEncoderDecoder, Tensor } from '../src/index'
import { maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import { absMax, CEILING, floats, tlDtypes, withinTlHalfError } from './helpers/half'

useFixtureHub()

const ID = 'google-t5/t5-small'
const f32 = (name: string, key: string) => {
  const t = golden(ID, name).tensors.get(key)
  if (!t) throw new Error(`no golden ${name}:${key}`)
  return Array.from(t.data as Float32Array)
}

for (const dtype of ['bfloat16', 'float16'] as const) {
  const name = `t5_${dtype}`
  const ints = (key: string) => {
    const t = golden(ID, name).tensors.get(key)!
    return Tensor.from(t.data as BigInt64Array, t.shape)
  }

  test(`${dtype}: logits within TL's own 16-bit error; TL's activation and weight dtypes`, async (t) => {
    const g = golden(ID, name)
    const m = await HookedEncoderDecoder.fromPretrained(ID, { dtype })
    t.is(m.cfg.dtype, dtype)
    const [logits, cache] = await m.runWithCache(ints('tokens'), { decoderInput: ints('decoder_input'), oneZeroAttentionMask: ints('mask') })
    t.is(logits.dtype, dtype)
    withinTlHalfError(t, dtype, floats(logits), f32(name, 'logits'), f32('t5', 'logits'), 'logits')
    const batch = await m.forward(ints('batch.tokens'), { decoderInput: ints('batch.decoder_input'), oneZeroAttentionMask: ints('batch.mask') })
    withinTlHalfError(t, dtype, floats(batch), f32(name, 'batch.logits'), f32('t5', 'batch.logits'), 'batch logits')

    const n = m.cfg.n_layers as number
    for (const [key, hook] of [['enc_last', `encoder.${n - 1}.hook_resid_post`], ['dec_last', `decoder.${n - 1}.hook_resid_post`], ['pattern0', 'decoder.0.attn.hook_pattern']]) {
      const want = f32(name, key)
      const got = floats(cache.get(hook))
      t.true(maxAbsDiff(got, want) <= CEILING[dtype] * absMax(want), `${hook}: ${maxAbsDiff(got, want)} at scale ${absMax(want)}`)
    }

    tlDtypes(t, cache, m.stateDict(), g.json.hook_dtypes, g.json.state_dict_dtypes)
    cache.dispose()
    m.dispose()
  })

  test(`${dtype}: greedy generation gives TL's tokens while TL's top-two gap exceeds the error`, async (t) => {
    const g = golden(ID, name)
    const m = await HookedEncoderDecoder.fromPretrained(ID, { dtype })
    const out = await m.generate(ints('batch.tokens'), { oneZeroAttentionMask: ints('batch.mask'), maxNewTokens: g.json.generate[0].length - 1, doSample: false, stopAtEos: false })
    const rows = (out as Tensor).shape[1]
    const ours = Array.from((out as Tensor).toArray() as BigInt64Array, Number)
    const want = g.json.generate as number[][]
    const margin = 4 * maxAbsDiff(f32(name, 'logits'), f32('t5', 'logits'))
    const gaps = g.json.generate_top_gaps as number[][]
    let checked = 0
    for (let r = 0; r < want.length; r++) {
      t.is(ours[r * rows], want[r][0], `row ${r}: the start token`)
      for (let i = 0; i < gaps.length && gaps[i][r] > margin; i++, checked++) t.is(ours[r * rows + i + 1], want[r][i + 1], `row ${r}, new token ${i}`)
    }
    t.log(`${checked} of ${gaps.length * want.length} new tokens decided by a gap over ${margin.toFixed(3)}`)
    t.true(checked > 0, 'some tokens are decided')
    m.dispose()
  })
}
