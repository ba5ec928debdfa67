/**
 * TL's own checkpoints (NeelNanda/…) from the hub: config.json and the one `.pth` TL reads,
 * chosen from the repo's file list (the hub's /api/models/{repo}/revision/{rev}), and the
 * tokenizer their config names (`tokenizer_name`), against the local hub stand-in.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { ExecutionContext } from 'ava'

import { HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { HUB } from './helpers/fixtures'
import { startHubServer } from './helpers/hub-server'

delete process.env.HF_TOKEN
delete process.env.HUGGING_FACE_HUB_TOKEN
delete process.env.HF_HUB_OFFLINE
process.env.HF_TOKEN_PATH = path.join(os.tmpdir(), 'tl-no-such-token-file')

const MODEL = 'NeelNanda/Attn_Only_2L512W_C4_Code'
const snapshot = (id: string) => {
  const repo = path.join(HUB, `models--${id.replace('/', '--')}`)
  return path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
}

function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The fixture repo with config.json naming `gpt2`'s tokenizer (the fixture's own names none). */
function repoWithTokenizerName(t: ExecutionContext): string {
  const dir = tempDir(t, 'tl-neel-')
  fs.cpSync(snapshot(MODEL), dir, { recursive: true, dereference: true })
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, tokenizer_name: 'gpt2' }))
  return dir
}

const TOKENS = Tensor.from(BigInt64Array.from([5n, 17n, 30n, 2n, 9n]), [1, 5])

async function logits(m: HookedTransformer): Promise<number[]> {
  const out = Array.from((await m.forward(TOKENS)).toArray() as Float32Array)
  m.dispose()
  return out
}

test.serial('a NeelNanda model downloads config.json and *final.pth alone, and gets the tokenizer its config names', async (t) => {
  const server = await startHubServer({ repos: { [MODEL]: repoWithTokenizerName(t), gpt2: snapshot('gpt2') } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-cache-')
  const m = await HookedTransformer.fromPretrained(MODEL, { cacheDir, endpoint: server.endpoint })
  const hub = server.requests.filter((r) => r.server === 'hub').map((r) => r.path)
  t.true(hub.some((p) => p === `/api/models/${MODEL}/revision/${server.commit}`), hub.join('\n'))
  t.false(hub.some((p) => p.includes('/checkpoints/')), 'no training checkpoint fetched')
  const snap = path.join(cacheDir, `models--${MODEL.replace('/', '--')}`, 'snapshots', server.commit)
  t.deepEqual(fs.readdirSync(snap).sort(), ['config.json', 'model_final.pth'])
  // The tokenizer TL would load: gpt2's, as `setTokenizer('gpt2')` gives it.
  t.not(m.tokenizer, null)
  const ref = await HookedTransformer.fromPretrained('gpt2', { cacheDir: HUB, localFilesOnly: true })
  t.deepEqual(m.toTokens('Hello world').toArray(), ref.toTokens('Hello world').toArray())
  ref.dispose()
  // The same weights as the fixture cache's.
  const want = await logits(await HookedTransformer.fromPretrained(MODEL, { cacheDir: HUB, localFilesOnly: true }))
  t.deepEqual(await logits(m), want)
  // Cached now: loads again with the hub gone.
  await server.close()
  t.deepEqual(await logits(await HookedTransformer.fromPretrained(MODEL, { cacheDir, endpoint: server.endpoint })), want)
})

test.serial('checkpointIndex reads the labels from the hub file list and fetches that checkpoint alone', async (t) => {
  const server = await startHubServer({ repos: { [MODEL]: snapshot(MODEL) } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-cache-')
  const m = await HookedTransformer.fromPretrained(MODEL, { cacheDir, endpoint: server.endpoint, checkpointIndex: 1 })
  const snap = path.join(cacheDir, `models--${MODEL.replace('/', '--')}`, 'snapshots', server.commit)
  // Listed order (sorted as the hub lists): _1000, _20000, _5000 → index 1 is step 20000.
  t.deepEqual(fs.readdirSync(path.join(snap, 'checkpoints')), ['Attn_Only_2L512W_C4_Code_20000.pth'])
  t.is(m.cfg.checkpoint_index, 1)
  t.is(m.cfg.checkpoint_value, 20000)
  const want = await logits(await HookedTransformer.fromPretrained(MODEL, { cacheDir: HUB, localFilesOnly: true, checkpointIndex: 1 }))
  t.deepEqual(await logits(m), want)
  // A value the list does not have is TL's error; a hub without the list is a network error.
  const bad = await t.throwsAsync(HookedTransformer.fromPretrained(MODEL, { cacheDir, endpoint: server.endpoint, checkpointValue: 7 }))
  t.true(bad instanceof TransformerLensError)
})

test.serial('offline, a NeelNanda model missing from the cache is TL_MISSING_FILE; its missing tokenizer only warns', async (t) => {
  const cacheDir = tempDir(t, 'tl-cache-')
  const e = await t.throwsAsync(HookedTransformer.fromPretrained(MODEL, { cacheDir, localFilesOnly: true }))
  t.is((e as TransformerLensError).code, 'TL_MISSING_FILE')
  // A cached model naming a tokenizer that is not cached: the model loads without one.
  const repo = path.join(cacheDir, `models--${MODEL.replace('/', '--')}`)
  fs.mkdirSync(path.join(repo, 'refs'), { recursive: true })
  fs.writeFileSync(path.join(repo, 'refs', 'main'), 'c'.repeat(40))
  fs.cpSync(repoWithTokenizerName(t), path.join(repo, 'snapshots', 'c'.repeat(40)), { recursive: true })
  const warnings: string[] = []
  const onWarning = (w: Error) => warnings.push(w.message)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const m = await HookedTransformer.fromPretrained(MODEL, { cacheDir, localFilesOnly: true })
  await new Promise((r) => setImmediate(r))
  t.is(m.tokenizer, null)
  t.true(warnings.some((w) => w.includes("'gpt2'")), warnings.join('\n'))
  m.dispose()
})
