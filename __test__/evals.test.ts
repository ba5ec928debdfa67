/**
 * TL's evals against TransformerLens (golden/evals/evals.*, from
 * scripts/reference/make_evals_fixtures.py on the fabricated gpt2): sanity_check,
 * induction_loss on saved first halves, IOIDataset prompts and ioi_eval, evaluate_on_dataset.
 */
import test from 'ava'

import {
  evaluateOnDataset,
  HookedTransformer,
  inductionLoss,
  IOIDataset,
  ioiEval,
  makeDataLoader,
  PyRandom,
  sanityCheck,
  Tensor,
  TokenDataLoader,
  TransformerLensError,
} from '../src/index'
import { input } from './helpers/analysis'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const LOSS_TOL = 1e-5
const TOL = 1e-4
const g = golden('evals', 'evals')
const scalar = (key: string) => Number(g.tensors.get(key)!.data[0])

let model: HookedTransformer
test.before(async () => {
  model = await HookedTransformer.fromPretrained('gpt2')
})
test.after.always(() => model?.dispose())

test('sanityCheck is TL sanity_check', async (t) => {
  const loss = await sanityCheck(model)
  assertClose(t, loss, g.tensors.get('sanity_check'), LOSS_TOL, 'evals.sanity_check')
  loss.dispose()
})

test('inductionLoss on given first halves is TL induction_loss (with and without BOS)', async (t) => {
  const first = input(g, 'induction.first_half')
  t.deepEqual(first.shape, [g.json.induction.batch_size, g.json.induction.subseq_len])
  const bos = await inductionLoss(model, { tokens: first })
  assertClose(t, bos, g.tensors.get('induction.bos'), LOSS_TOL, 'evals.induction.bos')
  const noBos = await inductionLoss(model, { tokens: first, prepend_bos: false } as any)
  assertClose(t, noBos, g.tensors.get('induction.no_bos'), LOSS_TOL, 'evals.induction.no_bos')
  t.true(Math.abs(bos.item() - noBos.item()) > 1e-3) // the BOS column matters
  first.dispose()
  bos.dispose()
  noBos.dispose()
})

test('inductionLoss draws seeded tokens in [100, d_vocab) and checks its input', async (t) => {
  const a = await inductionLoss(model, { batchSize: 2, subseqLen: 8, seed: 7 })
  const b = await inductionLoss(model, { batchSize: 2, subseqLen: 8, seed: 7 })
  const c = await inductionLoss(model, { batchSize: 2, subseqLen: 8, seed: 8 })
  t.deepEqual(a.shape, [])
  t.is(a.item(), b.item())
  t.not(a.item(), c.item())
  // the same draw, fed as tokens
  const rng = new PyRandom(7)
  const ids = Array.from({ length: 16 }, () => BigInt(rng.randrange(100, 512)))
  const tokens = Tensor.from(new BigInt64Array(ids), [2, 8])
  const d = await inductionLoss(model, { tokens })
  t.is(d.item(), a.item())
  const bad = Tensor.from(new BigInt64Array(4), [4])
  await t.throwsAsync(inductionLoss(model, { tokens: bad }), { instanceOf: TransformerLensError })
  for (const x of [a, b, c, d, tokens, bad]) x.dispose()
})

test('PyRandom draws as CPython random', (t) => {
  // Values from CPython 3.11: random.Random(42)
  const r = new PyRandom(42)
  t.is(r.random(), 0.6394267984578837)
  t.is(r.getrandbits(32), 107420369)
  t.is(r.randbelow(1000), 759)
  t.is(r.choice(['a', 'b', 'c']), 'b')
  t.deepEqual(r.sample([...Array(30).keys()], 3), [7, 4, 23])
  t.deepEqual(r.sample([1, 2, 3, 4, 5], 2), [1, 5])
  t.deepEqual(r.shuffle([1, 2, 3, 4, 5, 6]), [2, 3, 6, 1, 4, 5])
  t.is(new PyRandom(2 ** 40 + 7).random(), 0.6137037779936511)
})

for (const name of Object.keys(g.json.ioi)) {
  test(`IOIDataset '${name}' gives TL's samples and items, and ioiEval TL's result`, async (t) => {
    const c = g.json.ioi[name]
    const kw = c.kwargs
    const ds = new IOIDataset(model, {
      numSamples: kw.num_samples,
      symmetric: kw.symmetric,
      prependBos: kw.prepend_bos,
      templates: kw.templates,
      names: kw.names,
      nouns: kw.nouns,
    })
    t.deepEqual(ds.samples, c.samples)
    t.is(ds.length, c.samples.length)
    const items = [...ds]
    t.deepEqual(items.map((it) => it.prompt), c.prompts)
    t.deepEqual(items.map((it) => it.IO), c.IO)
    t.deepEqual(items.map((it) => it.S), c.S)
    t.deepEqual(ds.getItem(-1), items[items.length - 1])
    for (const batchSize of [2, 3]) {
      const res = await ioiEval(model, ds, { batchSize })
      t.true(Math.abs(res.logitDifference - c.result['Logit Difference']) <= TOL, `${name}: ${res.logitDifference} vs ${c.result['Logit Difference']}`)
      t.is(res.accuracy, c.result.Accuracy)
      t.is(res['Logit Difference'], res.logitDifference)
      t.is(res.Accuracy, res.accuracy)
    }
  })
}

test('ioiEval builds TL default dataset', async (t) => {
  const c = g.json.ioi_default_eval
  const res = await ioiEval(model, null, { numSamples: c.num_samples, symmetric: c.symmetric })
  t.true(Math.abs(res.logitDifference - c.result['Logit Difference']) <= TOL)
  t.is(res.accuracy, c.result.Accuracy)
})

test('IOIDataset without reseeding draws varied samples; bad items throw', async (t) => {
  const names = ['Ann', 'Ben', 'Cy', 'Dee', 'Eli']
  const ds = new IOIDataset(model, { numSamples: 20, names, reseedEachSample: false, seed: 3 })
  t.true(new Set(ds.samples.map((s) => s.text)).size > 1)
  const again = new IOIDataset(model, { numSamples: 20, names, reseedEachSample: false, seed: 3 })
  t.deepEqual(again.samples, ds.samples)
  t.throws(() => ds.getItem(20), { instanceOf: TransformerLensError })
  const same = { length: 1, getItem: () => ({ prompt: [1, 2, 3], IO: [5], S: [5] }) }
  await t.throwsAsync(ioiEval(model, same), { instanceOf: TransformerLensError })
})

test('evaluateOnDataset is TL evaluate_on_dataset (truncate counts as TL)', async (t) => {
  const rows = input(g, 'dataset.tokens')
  const d = g.json.dataset
  t.is(rows.shape[0], d.n_rows)
  const batches: Tensor[] = []
  for (let i = 0; i + d.batch_size <= d.n_rows; i += d.batch_size) batches.push(rows.get([i, i + d.batch_size]))
  const full = await evaluateOnDataset(model, batches)
  t.true(Math.abs(full - scalar('dataset.truncate100')) <= LOSS_TOL, `${full} vs ${scalar('dataset.truncate100')}`)
  // {tokens} rows, async iterable, truncate=1 -> two batches, as TL
  async function* gen() {
    for (const b of batches) yield { tokens: b }
  }
  const cut = await evaluateOnDataset(model, gen(), { truncate: 1 })
  t.true(Math.abs(cut - scalar('dataset.truncate1')) <= LOSS_TOL, `${cut} vs ${scalar('dataset.truncate1')}`)
  t.not(full, cut)
  await t.throwsAsync(evaluateOnDataset(model, []), { instanceOf: TransformerLensError })
  await t.throwsAsync(evaluateOnDataset(model, [{ nope: 1 } as any]), { instanceOf: TransformerLensError })
  batches.forEach((b) => b.dispose())
  rows.dispose()
})

test('makeDataLoader tokenizes in-memory text as TL and batches it', async (t) => {
  const d = g.json.dataset
  const loader = makeDataLoader(d.texts, model, { maxLength: d.max_length, batchSize: d.batch_size, shuffle: false })
  assertClose(t, loader.tokens, g.tensors.get('dataset.tokens'), 0, 'evals.dataset.tokens')
  t.is(loader.length, Math.floor(d.n_rows / d.batch_size))
  const loss = await evaluateOnDataset(model, loader)
  t.true(Math.abs(loss - scalar('dataset.truncate100')) <= LOSS_TOL)
  // shuffled passes: every row once per pass, in a seeded order
  const s1 = makeDataLoader(d.texts, model, { maxLength: d.max_length, batchSize: 3, seed: 5, dropLast: false })
  const s2 = new TokenDataLoader(s1.tokens.clone(), { batchSize: 3, seed: 5, dropLast: false })
  const firstCol = (l: TokenDataLoader) => [...l].flatMap((b) => Array.from(b.tokens.get(null, [0, 4]).toArray() as BigInt64Array, Number))
  const p1 = firstCol(s1)
  t.deepEqual(p1, firstCol(s2))
  t.is(p1.length, d.n_rows * 4)
  t.notDeepEqual(p1, firstCol(s1)) // a fresh order next pass
  const dropped = new TokenDataLoader(s1.tokens.clone(), { batchSize: 3 })
  t.is([...dropped].length, Math.floor(d.n_rows / 3))
  for (const l of [loader, s1, s2, dropped]) l.dispose()
})
