/**
 * tuned-lens's Unembed, LogitLens and TunedLens against tuned-lens 0.2.0 on the fixture gpt2
 * (and Yi for the RMS norms): logits and hidden states on TL's unprocessed residual stream, a
 * lens artifact saved by tuned-lens (translators randomised with a seed), its hub-cache layout,
 * the unembedding hash, and `save` writing what tuned-lens writes.
 * Expected values: golden/lens/lens.* (scripts/reference/make_lens_fixtures.py).
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { ExecutionContext } from 'ava'

import { HookedTransformer, LogitLens, readTorchFile, Tensor, TunedLens, Unembed } from '../src/index'
import { arrayStr } from '../src/lens/numpy-format'
import { assertClose, goldenOf } from './helpers/compare'
import { rejectionCode, codeOf } from './helpers/errors'
import { FIXTURES, useFixtureHub } from './helpers/fixtures'
import { readSafetensors } from './helpers/safetensors'

useFixtureHub()

const TOL = 1e-4
const DIR = path.join(FIXTURES, 'golden', 'lens')
const G = JSON.parse(fs.readFileSync(path.join(DIR, 'lens.json'), 'utf8'))
const T = readSafetensors(path.join(DIR, 'lens.safetensors'))
const LENS_DIR = path.join(FIXTURES, 'lens', 'gpt2')
const N_LAYERS = 3

const models = new Map<string, Promise<HookedTransformer>>()
function model(id: string, mode: 'processed' | 'unprocessed'): Promise<HookedTransformer> {
  const key = `${id}:${mode}`
  if (!models.has(key)) models.set(key, mode === 'processed' ? HookedTransformer.fromPretrained(id) : HookedTransformer.fromPretrainedNoProcessing(id))
  return models.get(key)!
}

function tokens(name: string): Tensor {
  const g = T.get(name)!
  return Tensor.from(g.data as BigInt64Array, g.shape)
}

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-lens-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Each layer's lens output on TL's unprocessed resid_pre, stacked: `[layers, batch, pos, ...]`. */
async function perLayer(f: (h: Tensor, l: number) => Tensor): Promise<Tensor> {
  const m = await model('gpt2', 'unprocessed')
  const [logits, cache] = await m.runWithCache(tokens('tokens'))
  logits.dispose()
  const outs = Array.from({ length: N_LAYERS }, (_, l) => f(cache.get('resid_pre', l), l))
  cache.dispose()
  const out = Tensor.stack(outs, 0)
  for (const o of outs) o.dispose()
  return out
}

test('numpy array_str(precision=1) and tuned-lens tensor_hash on fabricated arrays', (t) => {
  for (const c of G.hash_cases) {
    const a = T.get(`hash.${c.name}`)!
    const s = arrayStr(a.data as Float32Array, a.shape, 1)
    t.is(s, c.array_str, c.name)
    t.is(createHash('sha256').update(s).digest('hex'), c.hash, c.name)
  }
})

test('Unembed.unembeddingHash is tuned-lens unembedding_hash', async (t) => {
  const u = Unembed.fromModel(await model('gpt2', 'unprocessed'))
  t.is(u.unembeddingHash(), G.unembed_hash)
  u.dispose()
  for (const o of G.other_norms) {
    const v = Unembed.fromModel(await model(o.model_id, o.mode))
    t.is(v.normalizationType, o.normalization_type)
    t.is(v.unembeddingHash(), o.unembed_hash, o.key)
    v.dispose()
  }
})

test('Unembed of every norm kind (LN, LNPre, RMS, RMSPre) matches tuned-lens', async (t) => {
  for (const o of G.other_norms) {
    const m = await model(o.model_id, o.mode)
    const [logits, cache] = await m.runWithCache(tokens(`${o.key}.tokens`))
    logits.dispose()
    const u = Unembed.fromModel(m)
    const out = u.forward(cache.get('resid_pre', 1))
    assertClose(t, out.get(0, -1), T.get(`${o.key}.logits`), TOL, `${o.key}.logits`)
    out.dispose()
    u.dispose()
    cache.dispose()
  }
})

test('LogitLens logits on every layer match tuned-lens (LN, unprocessed gpt2)', async (t) => {
  const lens = LogitLens.fromModel(await model('gpt2', 'unprocessed'))
  const logits = await perLayer((h, l) => lens.forward(h, l))
  assertClose(t, logits, T.get('logit_lens.logits'), TOL, 'logit_lens.logits')
  const hidden = await perLayer((h, l) => lens.transformHidden(h, l))
  assertClose(t, hidden, T.get('logit_lens.hidden'), TOL, 'logit_lens.hidden')
  lens.dispose()
})

test('TunedLens.load reads tuned-lens params.pt: translators, transformHidden and forward match', async (t) => {
  const lens = await TunedLens.load(LENS_DIR, await model('gpt2', 'unprocessed'))
  t.is(lens.length, N_LAYERS)
  t.deepEqual(lens.config, G.config)
  lens.translators.forEach((tr, i) => {
    assertClose(t, tr.weight, T.get(`translator.${i}.weight`), 0, `translator.${i}.weight`)
    assertClose(t, tr.bias!, T.get(`translator.${i}.bias`), 0, `translator.${i}.bias`)
  })
  const hidden = await perLayer((h, l) => lens.transformHidden(h, l))
  assertClose(t, hidden, T.get('tuned_lens.hidden'), TOL, 'tuned_lens.hidden')
  const logits = await perLayer((h, l) => lens.forward(h, l))
  assertClose(t, logits, T.get('tuned_lens.logits'), TOL, 'tuned_lens.logits')
  // The translators matter: the tuned lens is far from the logit lens on these weights.
  const logit = LogitLens.fromModel(await model('gpt2', 'unprocessed'))
  const plain = await perLayer((h, l) => logit.forward(h, l))
  const diff = logits.sub(plain).abs().max().item()
  t.true(diff > 0.1, `tuned and logit lens differ by ${diff}`)
  lens.dispose()
  logit.dispose()
})

test('params.pt holds tuned-lens layer_translators keys', async (t) => {
  const sd = await readTorchFile(path.join(LENS_DIR, 'params.pt'))
  t.deepEqual([...sd.keys()], G.params_keys)
  for (const v of sd.values()) v.dispose()
})

test('TunedLens.fromModel: identity translators, so it is the logit lens', async (t) => {
  const m = await model('gpt2', 'unprocessed')
  const lens = TunedLens.fromModel(m)
  t.like(lens.config, { base_model_name_or_path: 'gpt2', d_model: 32, num_hidden_layers: N_LAYERS, bias: true, base_model_revision: null, lens_type: 'linear_tuned_lens' })
  t.is(lens.config.unembed_hash, G.unembed_hash)
  for (const tr of lens.translators) t.is(tr.weight.abs().max().item() + tr.bias!.abs().max().item(), 0)
  const logit = LogitLens.fromModel(m)
  const a = await perLayer((h, l) => lens.forward(h, l))
  const b = await perLayer((h, l) => logit.forward(h, l))
  assertClose(t, a, goldenOf(b), 1e-6, 'identity tuned lens')
  const noBias = TunedLens.fromModel(m, { bias: false, modelRevision: 'abc' })
  t.is(noBias.translators[0].bias, null)
  t.is(noBias.config.base_model_revision, 'abc')
  lens.dispose()
  logit.dispose()
  noBias.dispose()
})

test('fromUnembedAndPretrained finds a lens in the HF cache as tuned-lens lays it out (offline)', async (t) => {
  const m = await model('gpt2', 'unprocessed')
  const lens = await TunedLens.fromModelAndPretrained(m)
  assertClose(t, lens.translators[2].weight, T.get('translator.2.weight'), 0, 'hub translator')
  lens.dispose()
  // TUNED_LENS_REPO_ID is read at call time, and offline a lens not in the cache is TL_MISSING_FILE.
  const unembed = Unembed.fromModel(m)
  t.is(await rejectionCode(TunedLens.fromUnembedAndPretrained(unembed, 'gpt2', { repoId: 'nobody/no-lenses' })), 'TL_MISSING_FILE')
  t.is(await rejectionCode(TunedLens.fromUnembedAndPretrained(unembed, 'pythia-nothing')), 'TL_MISSING_FILE')
  unembed.dispose()
})

test('save writes config.json byte for byte as tuned-lens, params.pt and params.safetensors that read back', async (t) => {
  const m = await model('gpt2', 'unprocessed')
  const lens = await TunedLens.load(LENS_DIR, m)
  const dir = tempDir(t)
  await lens.save(dir)
  t.is(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), fs.readFileSync(path.join(LENS_DIR, 'config.json'), 'utf8'))
  const again = await TunedLens.load(dir, m)
  again.translators.forEach((tr, i) => assertClose(t, tr.weight, T.get(`translator.${i}.weight`), 0, `saved translator.${i}`))
  const st = readSafetensors(path.join(dir, 'params.safetensors'))
  t.deepEqual([...st.keys()].sort(), [...G.params_keys].sort())
  assertClose(t, lens.translators[1].bias!, st.get('1.bias'), 0, 'safetensors 1.bias')
  lens.dispose()
  again.dispose()
})

test('a params.pt that runs code, misses keys or has extra ones is refused with a code', async (t) => {
  const m = await model('gpt2', 'unprocessed')
  const dir = tempDir(t)
  fs.copyFileSync(path.join(LENS_DIR, 'config.json'), path.join(dir, 'config.json'))
  fs.copyFileSync(path.join(FIXTURES, 'pickle', 'hostile', 'posix_system.bin'), path.join(dir, 'params.pt'))
  t.is(await rejectionCode(TunedLens.load(dir, m)), 'TL_CORRUPT_FILE')
  const lens = TunedLens.fromModel(m)
  const sd = lens.translatorStateDict()
  const missing = new Map(sd)
  missing.delete('2.bias')
  t.is(codeOf(() => lens.loadTranslators(missing)), 'TL_MISSING_WEIGHT')
  const extra = new Map(sd).set('3.weight', sd.get('0.weight')!)
  t.is(codeOf(() => lens.loadTranslators(extra)), 'TL_CORRUPT_FILE')
  t.is(codeOf(() => lens.setTranslator(0, Tensor.zeros([4, 4]), Tensor.zeros([32]))), 'TL_SHAPE_MISMATCH')
  t.is(codeOf(() => lens.forward(Tensor.zeros([1, 2, 32]), 3)), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => lens.forward(Tensor.zeros([1, 2, 31]), 0)), 'TL_SHAPE_MISMATCH')
  for (const v of sd.values()) v.dispose()
  lens.dispose()
})

test('setTranslator replaces one layer: forward is unembed(h + h·Wᵀ + b)', async (t) => {
  const m = await model('gpt2', 'unprocessed')
  const lens = TunedLens.fromModel(m)
  const w = Tensor.randn([32, 32], { seed: 3, std: 0.1 })
  const b = Tensor.randn([32], { seed: 4 })
  lens.setTranslator(1, w.clone(), b.clone())
  const h = Tensor.randn([2, 3, 32], { seed: 5 })
  const want = lens.unembed.forward(h.add(h.matmul(w.T)).add(b))
  assertClose(t, lens.forward(h, 1), goldenOf(want), 1e-5, 'setTranslator forward')
  assertClose(t, lens.forward(h, 0), goldenOf(lens.unembed.forward(h)), 1e-6, 'other layers unchanged')
  lens.dispose()
})
