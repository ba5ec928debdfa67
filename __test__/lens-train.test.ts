// Tuned-lens training (tuned-lens's recipe, in Rust) on the embedded demo model: the lens it
// trains beats the logit lens (lower KL to the final distribution) at every layer.
import test from 'ava'
import * as path from 'node:path'

import { HookedTransformer, lensKlByLayer, PyRandom, Tensor, trainTunedLens, TunedLens } from '../src'

const { DEMO_WORDS, HALF } = require('../examples/demo-data.js')
const MODEL = path.join(__dirname, '..', 'models', 'demo-induction')

/** Rows of BOS + L random words + the same L again, then fresh words (as the demo trains on). */
function rows(n: number, seed: number): Tensor {
  const rng = new PyRandom(seed)
  const len = 1 + 2 * HALF
  const data = new BigInt64Array(n * len)
  for (let r = 0; r < n; r++) {
    const L = rng.randrange(4, HALF + 1)
    const words = Array.from({ length: L }, () => rng.randrange(1, DEMO_WORDS.length + 1))
    const row = [0, ...words, ...words]
    while (row.length < len) row.push(rng.randrange(1, DEMO_WORDS.length + 1))
    row.forEach((v, j) => (data[r * len + j] = BigInt(v)))
  }
  return Tensor.from(data, [n, len])
}

test('a tuned lens trained on the demo model beats the logit lens at every layer', async (t) => {
  const model = await HookedTransformer.fromPretrained(MODEL)
  const lens = TunedLens.fromModel(model)
  const heldOut = rows(64, 99)
  const identity = await lensKlByLayer(lens, model, heldOut)
  const logit = await lensKlByLayer(null, model, heldOut)
  identity.forEach((v, i) => t.true(Math.abs(v - logit[i]) < 1e-5, `identity translators are the logit lens (layer ${i})`))
  const { losses } = await trainTunedLens(lens, model, rows(512, 7), { numSteps: 40, tokensPerStep: 64 * 49, progress: false })
  t.is(losses.length, 40)
  t.is(losses[0].length, model.cfg.n_layers)
  const tuned = await lensKlByLayer(lens, model, heldOut)
  t.log(`KL by layer: logit lens ${logit.map((v) => v.toFixed(3))}, tuned lens ${tuned.map((v) => v.toFixed(3))}`)
  tuned.forEach((v, i) => t.true(v < logit[i], `layer ${i}: tuned ${v} vs logit ${logit[i]}`))
  t.true(lens.translators.some((tr) => tr.weight.abs().max().item() > 0), 'the translators were written back')
})
