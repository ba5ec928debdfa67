/**
 * `runWithCache({ inclBwd: true })` on a left-padded batch for the rotary, grouped-query, q/k-norm
 * and sliding-window families, against TL 2.16.1 goldens from
 * scripts/reference/make_padded_backward_fixtures.py: rotary positions moved by the padding,
 * masked loss, every activation and gradient in TL's order.
 */
import test from 'ava'

import { HookedTransformer, Tensor } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

for (const model of ['01-ai/Yi-6B', 'Qwen/Qwen3-0.6B', 'mistralai/Mistral-7B-v0.1']) {
  test(`${model}: runWithCache inclBwd on a left-padded batch gives TL's loss, activations and gradients`, async (t) => {
    const g = golden(model, 'backward_padded')
    const m = await HookedTransformer.fromPretrained(model)
    const [loss, cache] = await m.runWithCache(g.json.prompts as string[], { returnType: 'loss', inclBwd: true, paddingSide: 'left' })
    assertClose(t, loss as Tensor, g.tensors.get('loss'), 1e-5, `${model}.loss`)
    t.deepEqual(cache.keys(), g.json.keys)
    for (const k of g.json.keys as string[]) assertClose(t, cache.get(k), g.tensors.get(k), k.endsWith('_grad') ? 1e-5 : 1e-4, `${model}.${k}`)
    cache.dispose()
    m.dispose()
  })
}
