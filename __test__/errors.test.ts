import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { HUB, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const snapshot = () => {
  const repo = path.join(HUB, 'models--gpt2')
  const rev = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim()
  return path.join(repo, 'snapshots', rev)
}

const copies: string[] = []
test.after.always(() => copies.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

/** A copy of the gpt2 fixture folder with `edit` applied (removed after the tests). */
function brokenCopy(edit: (dir: string) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-broken-'))
  copies.push(dir)
  for (const f of fs.readdirSync(snapshot())) fs.copyFileSync(path.join(snapshot(), f), path.join(dir, f))
  edit(dir)
  return dir
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return undefined
  } catch (e) {
    if (!(e instanceof TransformerLensError)) throw e
    return e.code
  }
}

test('unknown model name → TL_UNKNOWN_MODEL; aliases are case-insensitive', async (t) => {
  t.is(await code(HookedTransformer.fromPretrained('gpt-42-ultra')), 'TL_UNKNOWN_MODEL')
  const m = await HookedTransformer.fromPretrained('GPT2-Small')
  t.is(m.cfg.model_name, 'gpt2')
  m.dispose()
})

test('a known model missing from the cache → TL_MISSING_FILE', async (t) => {
  t.is(await code(HookedTransformer.fromPretrained('gpt2-xl')), 'TL_MISSING_FILE')
})

test('a local folder loads; missing weights → TL_MISSING_FILE; corrupt files → TL_CORRUPT_FILE', async (t) => {
  const m = await HookedTransformer.fromPretrained(snapshot())
  t.is(m.cfg.n_layers, 3)
  m.dispose()
  t.is(await code(HookedTransformer.fromPretrained(brokenCopy((d) => fs.rmSync(path.join(d, 'model.safetensors'))))), 'TL_MISSING_FILE')
  t.is(await code(HookedTransformer.fromPretrained(brokenCopy((d) => fs.writeFileSync(path.join(d, 'model.safetensors'), 'not a safetensors file')))), 'TL_CORRUPT_FILE')
  t.is(await code(HookedTransformer.fromPretrained(brokenCopy((d) => fs.writeFileSync(path.join(d, 'config.json'), '{ nope')))), 'TL_CORRUPT_FILE')
  const truncated = brokenCopy((d) => {
    const f = path.join(d, 'model.safetensors')
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 5000))
  })
  t.is(await code(HookedTransformer.fromPretrained(truncated)), 'TL_CORRUPT_FILE')
  const wrongShape = brokenCopy((d) => {
    const f = path.join(d, 'config.json')
    fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), n_embd: 48 }))
  })
  t.is(await code(HookedTransformer.fromPretrained(wrongShape)), 'TL_CORRUPT_FILE')
  const unsupported = brokenCopy((d) => {
    const f = path.join(d, 'config.json')
    fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), architectures: ['MambaForCausalLM'] }))
  })
  t.is(await code(HookedTransformer.fromPretrained(unsupported)), 'TL_UNSUPPORTED')
})

test('bad inputs: rank, dtype, length, out-of-vocabulary ids', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.is(await code(m.forward(Tensor.zeros([1, 2, 3], 'int64'))), 'TL_SHAPE_MISMATCH')
  t.is(await code(m.forward(Tensor.zeros([1, 4], 'float32'))), 'TL_DTYPE')
  t.is(await code(m.forward(Tensor.zeros([1, 65], 'int64'))), 'TL_SHAPE_MISMATCH')
  t.is(await code(m.forward(Tensor.from(new BigInt64Array([1n, 512n]), [1, 2]))), 'TL_INVALID_ARGUMENT')
  t.is(await code(m.forward(Tensor.zeros([1, 4], 'int64'), { startAtLayer: 1 })), 'TL_SHAPE_MISMATCH')
  t.is(await code(m.forward('hi', { returnType: 'nope' as never })), 'TL_INVALID_ARGUMENT')
  // 1-D tokens get a batch dim, as TL.
  t.deepEqual((await m.forward(Tensor.from(new Int32Array([511, 3, 4])))).shape, [1, 3, 512])
  m.dispose()
})

test('disposed models and tensors → TL_DISPOSED', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const x = Tensor.ones([2, 2])
  x.dispose()
  t.is((t.throws(() => x.sum()) as TransformerLensError).code, 'TL_DISPOSED')
  m.dispose()
  t.is(await code(m.forward('hello')), 'TL_DISPOSED')
})
