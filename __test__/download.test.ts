/**
 * Downloading from the hub into the HF cache, against a local stand-in for the hub
 * (helpers/hub-server.ts, 127.0.0.1 only) that serves the gpt2 fixture snapshot.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { ExecutionContext } from 'ava'

import { downloadModel, DownloadProgress, ensureModel, HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { FIXTURES, HUB } from './helpers/fixtures'
import { FAKE_COMMIT, gitSha1, HubServer, HubServerOptions, isLfs, sha256, startHubServer } from './helpers/hub-server'
import { shardSafetensors } from './helpers/safetensors'

// Hermetic: no token from the environment, never the real hub.
delete process.env.HF_TOKEN
delete process.env.HUGGING_FACE_HUB_TOKEN
delete process.env.HF_HUB_OFFLINE
process.env.HF_TOKEN_PATH = path.join(os.tmpdir(), 'tl-no-such-token-file')
process.env.HF_ENDPOINT = 'http://127.0.0.1:9'

const PROMPT = 'The quick brown fox jumps over the lazy dog.'
const FIXTURE = (() => {
  const repo = path.join(HUB, 'models--gpt2')
  return path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
})()
const FIXTURE_FILES = fs.readdirSync(FIXTURE).sort()

function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function serve(t: ExecutionContext, options: Partial<HubServerOptions> = {}): Promise<HubServer> {
  const server = await startHubServer({ repos: { gpt2: FIXTURE }, ...options })
  t.teardown(() => server.close())
  return server
}

/** A repo folder: the fixture's files minus `drop`, plus `edit`'s additions. */
function repoCopy(t: ExecutionContext, drop: string[], edit: (dir: string) => void = () => {}): string {
  const dir = tempDir(t, 'tl-repo-')
  for (const f of FIXTURE_FILES) if (!drop.includes(f)) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f))
  edit(dir)
  return dir
}

async function failure(p: Promise<unknown>): Promise<TransformerLensError> {
  try {
    await p
  } catch (e) {
    if (e instanceof TransformerLensError) return e
    throw e
  }
  throw new Error('expected a TransformerLensError')
}

async function logitBytes(model: HookedTransformer): Promise<Buffer> {
  const logits = (await model.forward(PROMPT)) as Tensor
  const a = logits.toArray() as Float32Array
  logits.dispose()
  model.dispose()
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}

let fixtureLogits: Promise<Buffer> | undefined
function expectedLogits(): Promise<Buffer> {
  fixtureLogits ??= HookedTransformer.fromPretrained('gpt2', { cacheDir: HUB, localFilesOnly: true }).then(logitBytes)
  return fixtureLogits
}

/** Every file under `dir` (relative paths), for checking what a failed download left. */
function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()
}

// ---- tests that set process.env run first, one at a time ----

test.serial('HF_HUB_OFFLINE=1: no request, TL_MISSING_FILE', async (t) => {
  const server = await serve(t)
  const cacheDir = tempDir(t, 'tl-cache-')
  process.env.HF_HUB_OFFLINE = '1'
  try {
    const e = await failure(HookedTransformer.fromPretrained('gpt2', { cacheDir, endpoint: server.endpoint }))
    t.is(e.code, 'TL_MISSING_FILE')
    t.regex(e.message, /HF_HUB_OFFLINE/)
  } finally {
    delete process.env.HF_HUB_OFFLINE
  }
  t.is(server.requests.length, 0)
  t.deepEqual(walk(cacheDir), [])
})

test.serial('HF_ENDPOINT and HF_TOKEN (then the token file) are read at call time', async (t) => {
  const server = await serve(t, { token: 'hf_env' })
  const saved = process.env.HF_TOKEN_PATH
  process.env.HF_ENDPOINT = server.endpoint
  process.env.HF_TOKEN = 'hf_env'
  try {
    await downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-') })
    delete process.env.HF_TOKEN
    const tokenFile = path.join(tempDir(t, 'tl-home-'), 'token')
    fs.writeFileSync(tokenFile, 'hf_env\n')
    process.env.HF_TOKEN_PATH = tokenFile
    await downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-') })
  } finally {
    process.env.HF_ENDPOINT = 'http://127.0.0.1:9'
    process.env.HF_TOKEN_PATH = saved
    delete process.env.HF_TOKEN
  }
  const hub = server.requests.filter((r) => r.server === 'hub')
  t.true(hub.length > 0)
  t.true(hub.every((r) => r.authorization === 'Bearer hf_env'))
})

// ---- concurrent tests: each has its own server and cache, and passes options ----

test('downloads gpt2 in huggingface_hub\'s cache layout and loads the logits of the fixture cache; a second load makes no request', async (t) => {
  // The hub serves gpt2 under its new name and answers the old one with a relative redirect.
  const server = await serve(t, { repos: { 'openai-community/gpt2': FIXTURE }, renamed: { gpt2: 'openai-community/gpt2' } })
  const cacheDir = tempDir(t, 'tl-cache-')
  const model = await HookedTransformer.fromPretrained('gpt2', { cacheDir, endpoint: server.endpoint })
  t.true((await logitBytes(model)).equals(await expectedLogits()))

  t.deepEqual(fs.readdirSync(cacheDir), ['models--gpt2'])
  const repo = path.join(cacheDir, 'models--gpt2')
  t.deepEqual(fs.readdirSync(repo).sort(), ['blobs', 'refs', 'snapshots'])
  t.deepEqual(fs.readdirSync(path.join(repo, 'refs')), ['main'])
  t.is(fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8'), FAKE_COMMIT)
  t.deepEqual(fs.readdirSync(path.join(repo, 'snapshots')), [FAKE_COMMIT])
  const snapshot = path.join(repo, 'snapshots', FAKE_COMMIT)
  t.deepEqual(fs.readdirSync(snapshot).sort(), FIXTURE_FILES)
  const etags: string[] = []
  for (const f of FIXTURE_FILES) {
    const bytes = fs.readFileSync(path.join(FIXTURE, f))
    const etag = isLfs(f) ? sha256(bytes) : gitSha1(bytes)
    etags.push(etag)
    t.true(fs.lstatSync(path.join(snapshot, f)).isSymbolicLink(), f)
    t.is(fs.readlinkSync(path.join(snapshot, f)), `../../blobs/${etag}`)
    t.true(fs.readFileSync(path.join(repo, 'blobs', etag)).equals(bytes), f)
  }
  t.deepEqual(fs.readdirSync(path.join(repo, 'blobs')).sort(), etags.sort())

  const hub = server.requests.filter((r) => r.server === 'hub')
  t.true(hub.every((r) => /^transformer-lens\//.test(r.userAgent ?? '')))
  t.true(hub.some((r) => r.path.startsWith('/openai-community/gpt2/resolve/')), 'the relative redirect was followed')
  t.is(server.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').length, 1, 'the LFS file came from the CDN')

  const before = server.requests.length
  const again = await HookedTransformer.fromPretrained('gpt2', { cacheDir, endpoint: server.endpoint })
  again.dispose()
  t.is(server.requests.length, before)
})

test('sharded weights: the index and every shard it names are downloaded and load the same logits', async (t) => {
  const repoDir = repoCopy(t, ['model.safetensors'], (dir) => shardSafetensors(path.join(FIXTURE, 'model.safetensors'), dir, 2))
  const server = await serve(t, { repos: { gpt2: repoDir } })
  const cacheDir = tempDir(t, 'tl-cache-')
  const model = await HookedTransformer.fromPretrained('gpt2', { cache_dir: cacheDir, endpoint: server.endpoint } as object)
  t.true((await logitBytes(model)).equals(await expectedLogits()))
  const repo = path.join(cacheDir, 'models--gpt2')
  const files = fs.readdirSync(path.join(repo, 'snapshots', FAKE_COMMIT)).sort()
  t.deepEqual(files, fs.readdirSync(repoDir).sort())
  t.true(files.includes('model-00001-of-00002.safetensors') && files.includes('model-00002-of-00002.safetensors'))
  t.true(fs.existsSync(path.join(repo, '.no_exist', FAKE_COMMIT, 'model.safetensors')), 'the absence is recorded as huggingface_hub does')
})

test('a repo with only pytorch_model.bin downloads it and loads it (read without running pickle code)', async (t) => {
  const bin = path.join(FIXTURES, 'pickle', 'gpt2-bin', 'pytorch_model.bin')
  const repoDir = repoCopy(t, ['model.safetensors'], (dir) => fs.copyFileSync(bin, path.join(dir, 'pytorch_model.bin')))
  const server = await serve(t, { repos: { gpt2: repoDir } })
  const cacheDir = tempDir(t, 'tl-cache-')
  const model = await HookedTransformer.fromPretrained('gpt2', { cache_dir: cacheDir, endpoint: server.endpoint } as object)
  t.true((await logitBytes(model)).equals(await expectedLogits()))
  t.true(fs.existsSync(path.join(cacheDir, 'models--gpt2', 'snapshots', FAKE_COMMIT, 'pytorch_model.bin')))
  // A pickle that calls anything but a tensor rebuild is refused, never run.
  const hostile = repoCopy(t, ['model.safetensors'], (dir) => fs.copyFileSync(path.join(FIXTURES, 'pickle', 'hostile', 'posix_system.bin'), path.join(dir, 'pytorch_model.bin')))
  const server2 = await serve(t, { repos: { gpt2: hostile } })
  const e = await failure(HookedTransformer.fromPretrained('gpt2', { cache_dir: tempDir(t, 'tl-cache-'), endpoint: server2.endpoint } as object))
  t.is(e.code, 'TL_CORRUPT_FILE')
  // No weights of either kind: TL_MISSING_FILE.
  const none = repoCopy(t, ['model.safetensors'])
  const server3 = await serve(t, { repos: { gpt2: none } })
  t.is((await failure(downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-'), endpoint: server3.endpoint }))).code, 'TL_MISSING_FILE')
})

test('the token goes to the hub as a Bearer header and never to the CDN; no or a wrong token → TL_AUTH', async (t) => {
  const server = await serve(t, { token: 'hf_secret' })
  await downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-'), endpoint: server.endpoint, token: 'hf_secret' })
  t.true(server.requests.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_secret'))
  const cdn = server.requests.filter((r) => r.server === 'cdn')
  t.true(cdn.length > 0 && cdn.every((r) => r.authorization === undefined))

  for (const token of [false, 'hf_wrong'] as const) {
    const e = await failure(downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-'), endpoint: server.endpoint, token }))
    t.is(e.code, 'TL_AUTH')
    t.regex(e.message, /HF_TOKEN/)
    t.regex(e.message, /gpt2/)
  }
})

test('an unknown repo or revision → TL_UNKNOWN_MODEL naming it; nothing is written', async (t) => {
  const server = await serve(t)
  const cacheDir = tempDir(t, 'tl-cache-')
  const repo = await failure(HookedTransformer.fromPretrained('distilgpt2', { cacheDir, endpoint: server.endpoint }))
  t.is(repo.code, 'TL_UNKNOWN_MODEL')
  t.regex(repo.message, /'distilgpt2'/)
  const rev = await failure(downloadModel('gpt2', { cacheDir, endpoint: server.endpoint, revision: 'v9.9' }))
  t.is(rev.code, 'TL_UNKNOWN_MODEL')
  t.regex(rev.message, /'v9\.9'/)
  t.true(server.requests.some((r) => r.path === '/gpt2/resolve/v9.9/config.json'))
  t.deepEqual(walk(cacheDir), [])
})

test('an endpoint that refuses connections → TL_NETWORK naming it', async (t) => {
  const server = await startHubServer({ repos: {} })
  await server.close()
  const e = await failure(downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-'), endpoint: server.endpoint }))
  t.is(e.code, 'TL_NETWORK')
  t.true(e.message.includes(server.endpoint), e.message)
})

test('localFilesOnly (or local_files_only): no request, TL_MISSING_FILE', async (t) => {
  const server = await serve(t)
  const cacheDir = tempDir(t, 'tl-cache-')
  for (const opts of [{ localFilesOnly: true }, { local_files_only: true }]) {
    const e = await failure(HookedTransformer.fromPretrained('gpt2', { cacheDir, endpoint: server.endpoint, ...opts }))
    t.is(e.code, 'TL_MISSING_FILE')
    t.regex(e.message, /localFilesOnly/)
  }
  t.is(server.requests.length, 0)
})

test('a body cut short fails and leaves no blob; the next call completes the snapshot, fetching only what is missing', async (t) => {
  const cacheDir = tempDir(t, 'tl-cache-')
  const blobs = path.join(cacheDir, 'models--gpt2', 'blobs')
  const lfsEtag = sha256(fs.readFileSync(path.join(FIXTURE, 'model.safetensors')))
  for (const [file, fault] of [['tokenizer.json', 'short'], ['model.safetensors', 'cut'], ['model.safetensors', 'short']] as const) {
    const server = await serve(t, { faults: { [file]: fault } })
    const e = await failure(ensureModel('gpt2', { cacheDir, endpoint: server.endpoint }))
    t.is(e.code, 'TL_NETWORK', `${file} ${fault}`)
    t.regex(e.message, new RegExp(file.replace('.', '\\.')))
    t.false(walk(blobs).some((f) => f.endsWith('.incomplete') || f === lfsEtag), `${file} ${fault}`)
    await server.close()
  }
  const server = await serve(t)
  const { dir } = await ensureModel('gpt2', { cacheDir, endpoint: server.endpoint })
  t.deepEqual(fs.readdirSync(dir).sort(), FIXTURE_FILES)
  const gets = server.requests.filter((r) => r.method === 'GET').map((r) => r.path)
  t.deepEqual(gets.map((p) => p.split('/').pop()?.split('?')[0]).sort(), ['config.json', lfsEtag].sort())
})

test('progress: loaded grows to total for each file, at a modest rate', async (t) => {
  const server = await serve(t, { chunkDelayMs: 25 })
  const seen: DownloadProgress[] = []
  await downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-'), endpoint: server.endpoint, onProgress: (p) => seen.push(p) })
  t.deepEqual([...new Set(seen.map((p) => p.file))].sort(), FIXTURE_FILES)
  for (const f of FIXTURE_FILES) {
    const calls = seen.filter((p) => p.file === f)
    const size = fs.statSync(path.join(FIXTURE, f)).size
    t.true(calls.every((p, i) => i === 0 || p.loaded > calls[i - 1].loaded), f)
    t.deepEqual(calls[calls.length - 1], { file: f, loaded: size, total: size })
  }
  const weights = seen.filter((p) => p.file === 'model.safetensors')
  t.true(weights.length >= 2, `${weights.length} calls while model.safetensors streamed`)
  t.true(weights.length < 15, 'throttled, not once per chunk')
})

test('an AbortSignal stops a download mid-file (TL_ABORTED, no blob); an aborted one sends nothing', async (t) => {
  const server = await serve(t, { chunkDelayMs: 25 })
  const cacheDir = tempDir(t, 'tl-cache-')
  const ctl = new AbortController()
  const onProgress = (p: DownloadProgress) => p.file === 'model.safetensors' && p.loaded < (p.total ?? 0) && ctl.abort()
  const e = await failure(HookedTransformer.fromPretrained('gpt2', { cacheDir, endpoint: server.endpoint, signal: ctl.signal, onProgress }))
  t.is(e.code, 'TL_ABORTED')
  const lfsEtag = sha256(fs.readFileSync(path.join(FIXTURE, 'model.safetensors')))
  t.false(walk(path.join(cacheDir, 'models--gpt2', 'blobs')).some((f) => f.endsWith('.incomplete') || f === lfsEtag))

  const before = server.requests.length
  const e2 = await failure(downloadModel('gpt2', { cacheDir: tempDir(t, 'tl-cache-'), endpoint: server.endpoint, signal: AbortSignal.abort() }))
  t.is(e2.code, 'TL_ABORTED')
  t.is(server.requests.length, before)
})

test('a server that stops sending → TL_NETWORK after timeoutMs, no blob', async (t) => {
  const server = await serve(t, { faults: { 'model.safetensors': 'stall' } })
  const cacheDir = tempDir(t, 'tl-cache-')
  const started = Date.now()
  const e = await failure(downloadModel('gpt2', { cacheDir, endpoint: server.endpoint, timeoutMs: 300 }))
  t.is(e.code, 'TL_NETWORK')
  t.regex(e.message, /timed out/)
  t.true(Date.now() - started < 5000)
  t.false(walk(cacheDir).some((f) => f.endsWith('.incomplete')))
})
