/**
 * HookedTransformer's weight properties (TL's W_Q ... W_U, stacked over layers), accumulated
 * bias, tokens_to_residual_directions and all_head_labels, against TransformerLens
 * (golden/analysis/weights.*; W_U / W_E / W_pos / W_E_pos against the TL state dict in
 * golden/gpt2/processed.*, where TL's script checked they are bit-identical).
 */
import test from 'ava'

import { HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { analysis, Case, input } from './helpers/analysis'
import { assertClose, maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const TOL = 1e-4
const g = analysis('weights')
const cases: Case[] = g.json.cases

const load = (mode: string) => (mode === 'processed' ? HookedTransformer.fromPretrained('gpt2') : HookedTransformer.fromPretrainedNoProcessing('gpt2'))

for (const mode of ['processed', 'unprocessed']) {
  test(`${mode}: stacked weight properties match TL`, async (t) => {
    const m = await load(mode)
    const props = cases.filter((c) => c.model === mode && c.property)
    t.true(props.length >= 5)
    for (const c of props) {
      const w = (m as unknown as Record<string, Tensor>)[c.property as string]
      assertClose(t, w, g.tensors.get(c.name), TOL, `weights.${c.name}`)
      w.dispose()
    }
    t.is(m.W_gate, null)
    m.dispose()
  })

  test(`${mode}: accumulatedBias matches TL (options object and TL's positional booleans)`, async (t) => {
    const m = await load(mode)
    const mine = cases.filter((c) => c.model === mode && c.method === 'accumulated_bias')
    t.true(mine.length >= 6)
    for (const [i, c] of mine.entries()) {
      const { mlp_input, include_mlp_biases } = c.kwargs as { mlp_input: boolean; include_mlp_biases: boolean }
      const out =
        i % 2 === 0
          ? m.accumulatedBias(c.layer as number, { mlpInput: mlp_input, includeMlpBiases: include_mlp_biases })
          : m.accumulatedBias(c.layer as number, mlp_input, include_mlp_biases)
      assertClose(t, out, g.tensors.get(c.name), TOL, `weights.${c.name}`)
    }
    t.is((t.throws(() => m.accumulatedBias(3, { mlpInput: true })) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
    m.dispose()
  })
}

test('W_U, W_E, W_pos and W_E_pos are TL state-dict weights (W_E_pos = cat[W_E, W_pos])', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const sd = golden('gpt2', 'processed').tensors
  const { prefix, properties } = g.json.same_as_state_dict as { prefix: string; properties: Record<string, string[]> }
  for (const [prop, keys] of Object.entries(properties)) {
    const w = (m as unknown as Record<string, Tensor>)[prop]
    const parts = keys.map((k) => sd.get(prefix + k)!)
    t.deepEqual(w.shape, [parts.reduce((a, p) => a + p.shape[0], 0), ...parts[0].shape.slice(1)], `${prop}: shape`)
    const expected = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0))
    let o = 0
    for (const p of parts) {
      expected.set(p.data as Float32Array, o)
      o += p.data.length
    }
    // Within TL's tolerance: this model's weights are processed in Rust (not bit-identical).
    t.true(maxAbsDiff(w.toArray() as Float32Array, expected) <= TOL, prop)
    w.dispose()
  }
  m.dispose()
})

test('tokensToResidualDirections matches TL (id, string, 2-D / 1-D / one-element / 0-d tensors)', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const mine = cases.filter((c) => c.method === 'tokens_to_residual_directions')
  t.is(mine.length, 6)
  for (const c of mine) {
    const arg = c.tokens as number | string | { tensor: string }
    const tokens = typeof arg === 'object' ? input(g, arg.tensor) : arg
    assertClose(t, m.tokensToResidualDirections(tokens), g.tensors.get(c.name), TOL, `weights.${c.name}`)
  }
  // A plain array of ids is a 1-D tensor of ids.
  const c3 = mine[3]
  const ids = Array.from(input(g, (c3.tokens as { tensor: string }).tensor).toArray() as BigInt64Array, Number)
  assertClose(t, m.tokensToResidualDirections(ids), g.tensors.get(c3.name), TOL, 'weights.tokens_to_residual_directions.array')
  t.is((t.throws(() => m.tokensToResidualDirections('quick brown fox')) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  m.dispose()
})

test('allHeadLabels matches TL', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.deepEqual(m.allHeadLabels(), g.json.all_head_labels)
  m.dispose()
})

test('weight tensors are the caller’s: disposing one does not break the model, disposing the model frees them', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const a = m.W_U
  a.dispose()
  const b = m.W_U
  t.deepEqual(b.shape, [32, 512])
  const q = m.W_Q
  q.dispose()
  t.deepEqual(m.W_Q.shape, [3, 4, 32, 8])
  m.dispose()
  t.is((t.throws(() => m.W_U) as TransformerLensError).code, 'TL_DISPOSED')
  // A tensor taken before dispose stays readable (it holds its own reference to the storage).
  t.is(b.shape[1], 512)
})
