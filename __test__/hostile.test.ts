/**
 * Hostile and malformed model folders: every one is refused with a coded error naming what is
 * wrong (or, where Python's tokenizers would accept it, sanitised), never a crash or a silent
 * wrong answer. The fuzzer (crates/engine/tests/fuzz_load.rs) covers the same ground at random.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { maxAbsDiff } from './helpers/compare'
import { HUB, useFixtureHub } from './helpers/fixtures'
import { RawTensor, rewriteSafetensors } from './helpers/safetensors'

useFixtureHub()

const PROMPT = 'The quick brown fox jumps over the lazy dog.'
const flat = (t: Tensor) => Array.from(t.toArray() as Float32Array)

const snapshot = () => {
  const repo = path.join(HUB, 'models--gpt2')
  const rev = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim()
  return path.join(repo, 'snapshots', rev)
}

const copies: string[] = []
test.after.always(() => copies.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

/** A copy of the gpt2 fixture folder with `edit` applied. */
function brokenCopy(edit: (dir: string) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-hostile-'))
  copies.push(dir)
  for (const f of fs.readdirSync(snapshot())) fs.copyFileSync(path.join(snapshot(), f), path.join(dir, f))
  edit(dir)
  return dir
}

const editJson = (file: string, edit: (j: any) => void) => (dir: string) => {
  const f = path.join(dir, file)
  const j = JSON.parse(fs.readFileSync(f, 'utf8'))
  edit(j)
  fs.writeFileSync(f, JSON.stringify(j))
}
const editConfig = (edit: (j: any) => void) => editJson('config.json', edit)
const editWeights = (edit: (t: Map<string, RawTensor>) => void) => (dir: string) => rewriteSafetensors(path.join(dir, 'model.safetensors'), edit)

/** The error a load gives (code and message), or undefined when it loads. */
async function loadError(dir: string): Promise<TransformerLensError | undefined> {
  try {
    ;(await HookedTransformer.fromPretrained(dir)).dispose()
    return undefined
  } catch (e) {
    if (!(e instanceof TransformerLensError)) throw e
    return e
  }
}

async function refused(t: any, dir: string, code: string, names: RegExp): Promise<void> {
  const e = await loadError(dir)
  t.truthy(e, 'expected the load to be refused')
  t.is(e?.code, code, e?.message)
  t.regex(e?.message ?? '', names)
}

test('impossible config values are TL_CORRUPT_FILE naming the field', async (t) => {
  await refused(t, brokenCopy(editConfig((j) => (j.n_head = 0))), 'TL_CORRUPT_FILE', /n_head/)
  await refused(t, brokenCopy(editConfig((j) => (j.n_head = 5))), 'TL_CORRUPT_FILE', /n_embd.*n_head/)
  await refused(t, brokenCopy(editConfig((j) => (j.layer_norm_epsilon = -1e-5))), 'TL_CORRUPT_FILE', /layer_norm_epsilon/)
  await refused(t, brokenCopy(editConfig((j) => (j.layer_norm_epsilon = 0))), 'TL_CORRUPT_FILE', /layer_norm_epsilon/)
  await refused(t, brokenCopy(editConfig((j) => (j.layer_norm_epsilon = 'small'))), 'TL_CORRUPT_FILE', /layer_norm_epsilon/)
  await refused(t, brokenCopy(editConfig((j) => (j.n_layer = 0))), 'TL_CORRUPT_FILE', /n_layer/)
  await refused(t, brokenCopy(editConfig((j) => (j.vocab_size = 1.5))), 'TL_CORRUPT_FILE', /vocab_size/)
  await refused(t, brokenCopy(editConfig((j) => (j.activation_function = 'swoosh'))), 'TL_UNSUPPORTED', /swoosh/)
  // A key given twice: JSON parsers keep the last value, here 0.
  const dup = brokenCopy((dir) => {
    const f = path.join(dir, 'config.json')
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('"n_head": 4,', '"n_head": 4, "n_head": 0,'))
  })
  await refused(t, dup, 'TL_CORRUPT_FILE', /n_head/)
})

test('sizes the weight files cannot hold are refused before anything is allocated', async (t) => {
  await refused(t, brokenCopy(editConfig((j) => (j.n_layer = 2 ** 40))), 'TL_CORRUPT_FILE', /n_layer/)
  const huge = brokenCopy((dir) => {
    const f = path.join(dir, 'config.json')
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('"n_layer": 3', '"n_layer": 1000000000000000000'))
  })
  await refused(t, huge, 'TL_CORRUPT_FILE', /n_layer/)
  await refused(t, brokenCopy(editConfig((j) => (j.n_layer = 1e18))), 'TL_CORRUPT_FILE', /n_layer/)
  await refused(t, brokenCopy(editConfig((j) => ((j.n_embd = 2 ** 40), (j.n_head = 1)))), 'TL_CORRUPT_FILE', /d_model|n_embd/)
  await refused(t, brokenCopy(editConfig((j) => ((j.n_ctx = 2 ** 40), (j.n_positions = 2 ** 40)))), 'TL_CORRUPT_FILE', /n_ctx|wpe/)
  // More layers than the checkpoint has (but few enough to list): the first absent one is named.
  await refused(t, brokenCopy(editConfig((j) => (j.n_layer = 4))), 'TL_MISSING_WEIGHT', /h\.3\./)
})

test('every tensor is checked against the config: shape, dtype, presence, finite values', async (t) => {
  const cut = (name: string, shape: number[]) =>
    editWeights((m) => {
      const w = m.get(name)!
      m.set(name, { dtype: w.dtype, shape, bytes: w.bytes.subarray(0, shape.reduce((a, b) => a * b, 4)) })
    })
  // Shapes that broadcast, so a forward would run and give wrong logits.
  await refused(t, brokenCopy(cut('transformer.h.0.mlp.c_proj.bias', [1])), 'TL_CORRUPT_FILE', /h\.0\.mlp\.c_proj\.bias.*\[1\].*\[32\]/)
  await refused(t, brokenCopy(cut('transformer.h.1.attn.c_proj.weight', [32, 1])), 'TL_CORRUPT_FILE', /h\.1\.attn\.c_proj\.weight/)
  await refused(t, brokenCopy(cut('transformer.ln_f.weight', [1])), 'TL_CORRUPT_FILE', /ln_f\.weight/)
  const asInt = editWeights((m) => {
    const w = m.get('transformer.h.2.ln_1.bias')!
    m.set('transformer.h.2.ln_1.bias', { ...w, dtype: 'I32' })
  })
  await refused(t, brokenCopy(asInt), 'TL_CORRUPT_FILE', /h\.2\.ln_1\.bias.*I32/)
  await refused(t, brokenCopy(editWeights((m) => m.delete('transformer.h.1.ln_2.weight'))), 'TL_MISSING_WEIGHT', /h\.1\.ln_2\.weight/)
  for (const bad of [NaN, Infinity, -Infinity]) {
    const poisoned = editWeights((m) => m.get('transformer.h.1.mlp.c_fc.weight')!.bytes.writeFloatLE(bad, 4 * 17))
    await refused(t, brokenCopy(poisoned), 'TL_CORRUPT_FILE', /h\.1\.mlp\.c_fc\.weight.*NaN or infinite/)
  }
  // The same NaN stored as F16 goes through the converting path, and is refused there too.
  const half = editWeights((m) => {
    const w = m.get('transformer.ln_f.bias')!
    const bytes = Buffer.alloc(w.bytes.length / 2)
    bytes.writeUInt16LE(0x7e00, 0) // f16 NaN; the rest 0
    m.set('transformer.ln_f.bias', { dtype: 'F16', shape: w.shape, bytes })
  })
  await refused(t, brokenCopy(half), 'TL_CORRUPT_FILE', /ln_f\.bias.*NaN or infinite/)
})

test('shard indexes may only name files in the model folder', async (t) => {
  for (const shard of ['../model.safetensors', '/etc/passwd', '..', 'sub/model.safetensors']) {
    const dir = brokenCopy((d) => {
      fs.renameSync(path.join(d, 'model.safetensors'), path.join(d, 'model-00001-of-00001.safetensors'))
      fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'transformer.wte.weight': shard } }))
    })
    await refused(t, dir, 'TL_CORRUPT_FILE', /plain file name/)
  }
})

test('tokenizer.json: settings that would abort or panic are refused or dropped as transformers drops them', async (t) => {
  const base = await HookedTransformer.fromPretrained(snapshot())
  const expected = Array.from(base.toTokens(['hi', PROMPT]).toArray() as BigInt64Array)
  base.dispose()
  // Padding and truncation in tokenizer.json are overridden by transformers on every TL call:
  // huge ones are dropped, and tokens are TL's (padded to the longest row, cut at n_ctx).
  const sanitised = [
    editJson('tokenizer.json', (j) => (j.padding = { strategy: { Fixed: 2 ** 40 }, direction: 'Right', pad_to_multiple_of: null, pad_id: 0, pad_type_id: 0, pad_token: '<|endoftext|>' })),
    editJson('tokenizer.json', (j) => (j.padding = { strategy: 'BatchLongest', direction: 'Right', pad_to_multiple_of: 2 ** 40, pad_id: 0, pad_type_id: 0, pad_token: '<|endoftext|>' })),
    editJson('tokenizer.json', (j) => (j.truncation = { direction: 'Right', max_length: 2, strategy: 'LongestFirst', stride: 5 })),
  ]
  for (const edit of sanitised) {
    const m = await HookedTransformer.fromPretrained(brokenCopy(edit))
    t.deepEqual(Array.from(m.toTokens(['hi', PROMPT]).toArray() as BigInt64Array), expected)
    m.dispose()
  }
  const undefinedSpecial = editJson('tokenizer.json', (j) => {
    j.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: {},
    }
  })
  await refused(t, brokenCopy(undefinedSpecial), 'TL_CORRUPT_FILE', /<bos>/)
  const emptyReplace = editJson('tokenizer.json', (j) => (j.normalizer = { type: 'Replace', pattern: { String: '' }, content: 'x' }))
  await refused(t, brokenCopy(emptyReplace), 'TL_CORRUPT_FILE', /empty pattern/)
  await refused(t, brokenCopy(editJson('tokenizer.json', (j) => (j.model = 7))), 'TL_CORRUPT_FILE', /tokenizer\.json/)
})

test('dispose() during a run: the run finishes with the weights it started with, later calls are TL_DISPOSED', async (t) => {
  const ref = await HookedTransformer.fromPretrained('gpt2')
  const base = flat(await ref.forward(PROMPT))
  ref.dispose()

  // From a hook of a run on the JS thread.
  const m = await HookedTransformer.fromPretrained('gpt2')
  let fired = 0
  const out = (await m.runWithHooks(PROMPT, { fwdHooks: [['blocks.1.hook_resid_pre', () => void (fired++, m.dispose())]] })) as Tensor
  t.is(fired, 1)
  t.is(maxAbsDiff(flat(out), base), 0)
  t.true(m.disposed)
  await t.throwsAsync(m.forward(PROMPT), { instanceOf: TransformerLensError, code: 'TL_DISPOSED' } as never)

  // While an async forward is in flight.
  const m2 = await HookedTransformer.fromPretrained('gpt2')
  const pending = m2.forward(PROMPT)
  m2.dispose()
  t.is(maxAbsDiff(flat((await pending) as Tensor), base), 0)
  t.throws(() => m2.toTokens('hi'), { code: 'TL_DISPOSED' } as never)
})
