/**
 * The analysis surface on every decoder family (goldens from TL via
 * scripts/reference/make_family_analysis_fixtures.py): stacked weight properties (grouped K/V
 * expanded as TL's W_K / W_V), QK / OV circuits, and the cache's residual decompositions.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { HookedTransformer, Tensor } from '../src/index'
import { assertClose } from './helpers/compare'
import { FIXTURES, golden, slug, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const WEIGHTS = ['W_Q', 'W_K', 'W_V', 'W_O', 'b_Q', 'b_K', 'b_V', 'b_O', 'W_in', 'W_out', 'W_U', 'W_E', 'W_gate'] as const
const MODELS = fs
  .readdirSync(path.join(FIXTURES, 'golden'))
  .filter((d) => fs.existsSync(path.join(FIXTURES, 'golden', d, 'analysis.json')))
  .map((d) => JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', d, 'analysis.json'), 'utf8')).model_id as string)

test('every family with analysis goldens is covered', (t) => {
  t.true(MODELS.length >= 4, MODELS.join(', '))
  for (const m of MODELS) t.true(fs.existsSync(path.join(FIXTURES, 'golden', slug(m), 'processed.json')))
})

for (const model of MODELS) {
  test(`${model}: weight properties, QK/OV and residual decompositions match TL`, async (t) => {
    const g = golden(model, 'analysis')
    const m = await HookedTransformer.fromPretrained(model)
    for (const name of WEIGHTS) {
      const want = g.tensors.get(`weights.${name}`)
      const got = (m as unknown as Record<string, Tensor | null>)[name]
      if (want === undefined) {
        t.true(got === null || got === undefined, `${name} is absent in TL`)
        continue
      }
      assertClose(t, got as Tensor, want, 1e-5, `${model}.${name}`)
    }
    assertClose(t, m.QK.get(0, 0).AB, g.tensors.get('circuits.QK.AB'), 1e-4, `${model}.QK[0,0].AB`)
    assertClose(t, m.OV.get(0, 0).AB, g.tensors.get('circuits.OV.AB'), 1e-4, `${model}.OV[0,0].AB`)
    const [, cache] = await m.runWithCache(m.toTokens(g.json.prompt))
    const [acc, accLabels] = cache.accumulatedResid({ returnLabels: true })
    assertClose(t, acc, g.tensors.get('cache.accumulated_resid'), 1e-4, `${model}.accumulated_resid`)
    t.deepEqual(accLabels, g.json.labels.accumulated_resid)
    const [dec, decLabels] = cache.decomposeResid({ returnLabels: true })
    assertClose(t, dec, g.tensors.get('cache.decompose_resid'), 1e-4, `${model}.decompose_resid`)
    t.deepEqual(decLabels, g.json.labels.decompose_resid)
    const [heads, headLabels] = cache.stackHeadResults({ returnLabels: true })
    assertClose(t, heads, g.tensors.get('cache.stack_head_results'), 1e-4, `${model}.stack_head_results`)
    t.deepEqual(headLabels, g.json.labels.stack_head_results)
    cache.dispose()
    m.dispose()
  })
}
