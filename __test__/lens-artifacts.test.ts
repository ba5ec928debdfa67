/**
 * Downloading a tuned lens from tuned-lens's hub layout (a *space* repo holding
 * `lens/{model}/config.json` and `params.pt`) into the HF cache, against the local stand-in for
 * the hub (helpers/hub-server.ts, 127.0.0.1 only): the space URL prefix, the cache folder
 * huggingface_hub uses (`spaces--{org}--{name}`), TUNED_LENS_REPO_ID / TUNED_LENS_REPO_TYPE,
 * the cache reused without a request, and offline behaviour.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { ExecutionContext } from 'ava'

import { HookedTransformer, loadLensArtifacts, TunedLens } from '../src/index'
import { rejectionCode } from './helpers/errors'
import { FIXTURES, HUB } from './helpers/fixtures'
import { FAKE_COMMIT, startHubServer } from './helpers/hub-server'

// Hermetic: the models come from the fixture cache by path, lenses from the stand-in hub only.
delete process.env.HF_TOKEN
delete process.env.HUGGING_FACE_HUB_TOKEN
delete process.env.HF_HUB_OFFLINE
delete process.env.TUNED_LENS_REPO_ID
delete process.env.TUNED_LENS_REPO_TYPE
process.env.HF_TOKEN_PATH = path.join(os.tmpdir(), 'tl-no-such-token-file')
process.env.HF_ENDPOINT = 'http://127.0.0.1:9'

const LENS = path.join(FIXTURES, 'lens', 'gpt2')

function snapshot(id: string): string {
  const repo = path.join(HUB, `models--${id}`)
  return path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
}

function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A space repo folder laid out as tuned-lens's: `lens/gpt2/{config.json,params.pt}`. */
function spaceRepo(t: ExecutionContext): string {
  const dir = tempDir(t, 'tl-space-')
  fs.mkdirSync(path.join(dir, 'lens', 'gpt2'), { recursive: true })
  for (const f of ['config.json', 'params.pt']) fs.copyFileSync(path.join(LENS, f), path.join(dir, 'lens', 'gpt2', f))
  return dir
}

let modelP: Promise<HookedTransformer> | null = null
function model(): Promise<HookedTransformer> {
  modelP ??= HookedTransformer.fromPretrainedNoProcessing(snapshot('gpt2'))
  return modelP
}

test.serial('a lens not in the cache is downloaded from the space into spaces--org--name, then reused', async (t) => {
  const server = await startHubServer({ repos: { 'spaces/AlignmentResearch/tuned-lens': spaceRepo(t) } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-lens-cache-')
  const m = await model()
  const lens = await TunedLens.fromModelAndPretrained(m, 'gpt2', { endpoint: server.endpoint, cacheDir })
  const local = await TunedLens.load(LENS, m)
  t.is(lens.translators[1].weight.sub(local.translators[1].weight).abs().max().item(), 0)
  const snap = path.join(cacheDir, 'spaces--AlignmentResearch--tuned-lens', 'snapshots', FAKE_COMMIT, 'lens', 'gpt2')
  t.true(fs.existsSync(path.join(snap, 'params.pt')) && fs.existsSync(path.join(snap, 'config.json')))
  t.is(fs.readFileSync(path.join(cacheDir, 'spaces--AlignmentResearch--tuned-lens', 'refs', 'main'), 'utf8'), FAKE_COMMIT)
  t.true(server.requests.every((r) => r.server !== 'hub' || r.path.startsWith('/spaces/AlignmentResearch/tuned-lens/resolve/')))
  const before = server.requests.length
  const again = await loadLensArtifacts('gpt2', { endpoint: server.endpoint, cacheDir })
  t.is(server.requests.length, before, 'served from the cache')
  t.is(again.ckptPath, path.join(snap, 'params.pt'))
  lens.dispose()
  local.dispose()
})

test.serial('TUNED_LENS_REPO_ID and TUNED_LENS_REPO_TYPE pick the repo, as tuned-lens reads them', async (t) => {
  const server = await startHubServer({ repos: { 'me/my-lenses': spaceRepo(t) } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-lens-cache-')
  process.env.TUNED_LENS_REPO_ID = 'me/my-lenses'
  process.env.TUNED_LENS_REPO_TYPE = 'model'
  try {
    const p = await loadLensArtifacts('gpt2', { endpoint: server.endpoint, cacheDir })
    t.true(p.configPath.startsWith(path.join(cacheDir, 'models--me--my-lenses')))
    t.true(server.requests.some((r) => r.path.startsWith('/me/my-lenses/resolve/main/lens/gpt2/')))
  } finally {
    delete process.env.TUNED_LENS_REPO_ID
    delete process.env.TUNED_LENS_REPO_TYPE
  }
})

test.serial('a missing lens is TL_MISSING_FILE; offline, nothing is requested', async (t) => {
  const server = await startHubServer({ repos: { 'spaces/AlignmentResearch/tuned-lens': spaceRepo(t) } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-lens-cache-')
  t.is(await rejectionCode(loadLensArtifacts('no-such-model', { endpoint: server.endpoint, cacheDir })), 'TL_MISSING_FILE')
  const before = server.requests.length
  t.is(await rejectionCode(loadLensArtifacts('gpt2', { endpoint: server.endpoint, cacheDir, localFilesOnly: true })), 'TL_MISSING_FILE')
  process.env.HF_HUB_OFFLINE = '1'
  try {
    t.is(await rejectionCode(loadLensArtifacts('gpt2', { endpoint: server.endpoint, cacheDir })), 'TL_MISSING_FILE')
  } finally {
    delete process.env.HF_HUB_OFFLINE
  }
  t.is(server.requests.length, before)
  t.is(await rejectionCode(loadLensArtifacts('gpt2', { repoType: 'bucket' as never, cacheDir })), 'TL_INVALID_ARGUMENT')
})
