/**
 * Downloads a model repo's files into the HF hub cache, in huggingface_hub's layout, so Python's
 * `huggingface_hub` / `transformers` reuse them and we reuse theirs:
 *
 *     models--{org}--{name}/blobs/{etag}                 the bytes
 *     models--{org}--{name}/snapshots/{commit}/{file}    -> ../../blobs/{etag} (a copy where symlinks fail)
 *     models--{org}--{name}/refs/{revision}              the commit, for a branch or tag
 *     models--{org}--{name}/.no_exist/{commit}/{file}    an optional file the repo lacks
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import { TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { stateDictFile } from './checkpoints'
import { AbsentFile, DownloadProgress, FileMeta, HubClient, HubClientOptions, RepoType } from './hub-client'

export type { DownloadProgress } from './hub-client'

export interface DownloadOptions extends HubClientOptions {
  /** Branch, tag or commit (default 'main'). */
  revision?: string
  /** The HF hub cache folder (default `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir?: string
  /** Called while bytes arrive (about every 100 ms per file, and once when a file is complete). */
  onProgress?: (p: DownloadProgress) => void
}

const CONFIG = 'config.json'
const WEIGHTS = 'model.safetensors'
const WEIGHTS_INDEX = 'model.safetensors.index.json'
/** PyTorch zip pickles, for repos and revisions without safetensors (Pythia's `step{N}`, older repos). */
const TORCH_WEIGHTS = 'pytorch_model.bin'
const TORCH_WEIGHTS_INDEX = 'pytorch_model.bin.index.json'
/** Fetched when the repo has them. */
const TOKENIZER = 'tokenizer.json'
const TOKENIZER_EXTRAS = ['tokenizer_config.json', 'special_tokens_map.json']
const OPTIONAL_FILES = [TOKENIZER, ...TOKENIZER_EXTRAS, 'generation_config.json']
/** Qwen v1's tiktoken vocabulary (its remote `QWenTokenizer`): the tokenizer of repos without tokenizer.json. */
const TIKTOKEN_VOCAB = 'qwen.tiktoken'
const COMMIT = /^[0-9a-f]{40}$/

/** Blob downloads in flight in this process, so concurrent loads of one model share them. */
const inFlight = new Map<string, Promise<void>>()

/** `org/name` → `models--org--name` (`spaces--org--name`, `datasets--org--name` for those repo types). */
export function repoFolderName(repoId: string, repoType: RepoType = 'model'): string {
  return [`${repoType}s`, ...repoId.split('/')].join('--')
}

/** The shard files a `model.safetensors.index.json` names, sorted and checked to stay inside the snapshot. */
function shardNames(indexFile: string): string[] {
  let map: unknown
  try {
    map = JSON.parse(fs.readFileSync(indexFile, 'utf8')).weight_map
  } catch (e) {
    throw new TransformerLensError('TL_CORRUPT_FILE', `${indexFile} is not valid JSON: ${(e as Error).message}`)
  }
  if (map === null || typeof map !== 'object') throw new TransformerLensError('TL_CORRUPT_FILE', `${indexFile} has no weight_map`)
  const names = [...new Set(Object.values(map as Record<string, unknown>))].sort()
  for (const n of names) {
    if (typeof n !== 'string' || path.isAbsolute(n) || n.split(/[\\/]/).includes('..')) {
      throw new TransformerLensError('TL_CORRUPT_FILE', `${indexFile} names an unusable shard file ${JSON.stringify(n)}`)
    }
  }
  return names as string[]
}

/**
 * Whether a snapshot folder has what loading needs: config.json and the weights
 * (model.safetensors, or the index and every shard it names).
 */
export function isCompleteSnapshot(dir: string): boolean {
  const has = (f: string) => fs.existsSync(path.join(dir, f))
  if (!has(CONFIG)) return false
  if (has(WEIGHTS) || has(TORCH_WEIGHTS)) return true
  const index = [WEIGHTS_INDEX, TORCH_WEIGHTS_INDEX].find(has)
  if (index === undefined) return false
  try {
    return shardNames(path.join(dir, index)).every(has)
  } catch {
    return false
  }
}

/** `snapshots/{commit}/{file}` → `../../blobs/{etag}`, replaced atomically; a copy where symlinks fail. */
function linkPointer(blob: string, pointer: string): void {
  fs.mkdirSync(path.dirname(pointer), { recursive: true })
  const tmp = `${pointer}.${process.pid}.tmp`
  fs.rmSync(tmp, { force: true })
  try {
    fs.symlinkSync(path.relative(path.dirname(pointer), blob), tmp)
  } catch {
    fs.copyFileSync(blob, tmp)
  }
  fs.renameSync(tmp, pointer)
}

/** One repo's folder in the cache, at one commit. */
class RepoCache {
  readonly root: string
  constructor(cacheDir: string, repoId: string, repoType: RepoType = 'model') {
    this.root = path.join(cacheDir, repoFolderName(repoId, repoType))
  }
  pointer(commit: string, file: string): string {
    return path.join(this.root, 'snapshots', commit, ...file.split('/'))
  }
  noExist(commit: string, file: string): string {
    return path.join(this.root, '.no_exist', commit, ...file.split('/'))
  }
  blob(etag: string): string {
    return path.join(this.root, 'blobs', etag)
  }
  /** `refs/{revision}` ← commit, written only when it changes (the cache may be read-only). */
  writeRef(revision: string, commit: string): void {
    if (revision === commit) return
    const ref = path.join(this.root, 'refs', ...revision.split('/'))
    if (fs.existsSync(ref) && fs.readFileSync(ref, 'utf8') === commit) return
    fs.mkdirSync(path.dirname(ref), { recursive: true })
    fs.writeFileSync(ref, commit)
  }
  markAbsent(file: AbsentFile): void {
    if (file.commit === null || !COMMIT.test(file.commit)) return
    const p = this.noExist(file.commit, file.filename)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.closeSync(fs.openSync(p, 'a'))
  }
}

/** A hub client and the repo's cache folder, with `file`'s metadata at the revision pinning the commit (`refs/{revision}` written). */
async function pinCommit(repoId: string, file: string, opts: DownloadOptions): Promise<{ hub: HubClient; cache: RepoCache; pin: FileMeta }> {
  const hub = new HubClient(repoId, opts)
  const cache = new RepoCache(opts.cacheDir ?? binding.hubCacheDir(), repoId, hub.repoType)
  const revision = opts.revision ?? 'main'
  const pin = await hub.metadata(revision, file)
  if ('absent' in pin) {
    throw new TransformerLensError('TL_MISSING_FILE', `'${repoId}' (revision ${revision}) on ${hub.endpoint} has no ${file}`)
  }
  fs.mkdirSync(cache.root, { recursive: true })
  cache.writeRef(revision, pin.commit)
  return { hub, cache, pin }
}

/** Fetches one file at `commit`; skipped without a request when the snapshot already has it or knows it is absent. */
function fileFetcher(hub: HubClient, cache: RepoCache, repoId: string, commit: string, onProgress?: (p: DownloadProgress) => void) {
  return async (file: string, required: boolean): Promise<boolean> => {
    if (fs.existsSync(cache.pointer(commit, file))) return true
    if (!required && fs.existsSync(cache.noExist(commit, file))) return false
    const meta = await hub.metadata(commit, file)
    if ('absent' in meta) {
      if (required) throw new TransformerLensError('TL_MISSING_FILE', `'${file}' is missing from '${repoId}' at ${commit} on ${hub.endpoint}`)
      cache.markAbsent(meta)
      return false
    }
    await store(hub, cache, meta, onProgress)
    return true
  }
}

/**
 * Downloads what loading `repoId` needs into the HF cache and returns its snapshot folder:
 * config.json, the weights (model.safetensors, else pytorch_model.bin; single file or index +
 * shards) and the tokenizer files
 * the repo has (Qwen v1's qwen.tiktoken where there is no tokenizer.json). Files already cached
 * are not fetched again.
 */
export async function downloadModel(repoId: string, opts: DownloadOptions = {}): Promise<string> {
  // config.json pins the commit; every other file is asked for at that commit.
  const { hub, cache, pin: config } = await pinCommit(repoId, CONFIG, opts)
  const commit = config.commit
  const revision = opts.revision ?? 'main'
  const fetchFile = fileFetcher(hub, cache, repoId, commit, opts.onProgress)

  const got = new Set<string>()
  for (const file of OPTIONAL_FILES) if (await fetchFile(file, false)) got.add(file)
  if (!got.has(TOKENIZER)) await fetchFile(TIKTOKEN_VOCAB, false)
  // safetensors first; PyTorch's pickles (read without running pickle code) when a repo has no other.
  const weights = async (single: string, index: string): Promise<boolean> => {
    if (await fetchFile(single, false)) return true
    if (!(await fetchFile(index, false))) return false
    for (const shard of shardNames(cache.pointer(commit, index))) await fetchFile(shard, true)
    return true
  }
  if (!(await weights(WEIGHTS, WEIGHTS_INDEX)) && !(await weights(TORCH_WEIGHTS, TORCH_WEIGHTS_INDEX))) {
    throw new TransformerLensError(
      'TL_MISSING_FILE',
      `'${repoId}' (revision ${revision}) has no model.safetensors, pytorch_model.bin or sharded index of either`,
    )
  }
  // Last: a snapshot with config.json and its weights is complete (see isCompleteSnapshot).
  await store(hub, cache, config, opts.onProgress)
  return path.join(cache.root, 'snapshots', commit)
}

/**
 * TL's own checkpoints (`NeelNanda/`, `ArthurConmy/`, `Baidicoot/`): config.json and the one
 * `.pth` state dict TL reads, chosen from the repo's file list (`huggingface_hub.list_repo_files`)
 * as TL's `get_pretrained_state_dict` does: `pick(files)` gives the checkpoint value (or null for
 * `*final.pth`). Returns the snapshot folder and the file list.
 */
export async function downloadTlNativeModel(
  repoId: string,
  opts: DownloadOptions,
  pick: (files: readonly string[]) => number | null,
): Promise<{ dir: string; files: string[] }> {
  const { hub, cache, pin: config } = await pinCommit(repoId, CONFIG, opts)
  const { files } = await hub.listFiles(config.commit)
  const value = pick(files)
  const pth = stateDictFile(files, value)
  if (pth === undefined) {
    const suffix = value === null ? 'final.pth' : `${value}.pth`
    throw new TransformerLensError('TL_MISSING_FILE', `'${repoId}' on ${hub.endpoint} has no state dict file ending in '${suffix}' (TL's *${suffix})`)
  }
  await fileFetcher(hub, cache, repoId, config.commit, opts.onProgress)(pth, true)
  // Last: config.json marks the snapshot as usable.
  await store(hub, cache, config, opts.onProgress)
  return { dir: path.join(cache.root, 'snapshots', config.commit), files }
}

/**
 * Downloads only `repoId`'s tokenizer files into the HF cache (tokenizer.json, else Qwen v1's
 * qwen.tiktoken, and tokenizer_config.json / special_tokens_map.json when the repo has them) and
 * returns the snapshot folder: what `setTokenizer` needs. Files already cached are not fetched
 * again.
 */
export async function downloadTokenizer(repoId: string, opts: DownloadOptions = {}): Promise<string> {
  let pinned: Awaited<ReturnType<typeof pinCommit>>
  try {
    pinned = await pinCommit(repoId, TOKENIZER, opts)
  } catch (e) {
    if (!(e instanceof TransformerLensError) || e.code !== 'TL_MISSING_FILE') throw e
    pinned = await pinCommit(repoId, TIKTOKEN_VOCAB, opts).catch(() => Promise.reject(e))
  }
  const { hub, cache, pin } = pinned
  const fetchFile = fileFetcher(hub, cache, repoId, pin.commit, opts.onProgress)
  for (const file of TOKENIZER_EXTRAS) await fetchFile(file, false)
  // Last: a snapshot with tokenizer.json (or qwen.tiktoken) has a usable tokenizer.
  await store(hub, cache, pin, opts.onProgress)
  return path.join(cache.root, 'snapshots', pin.commit)
}

/** Downloads a repo's config.json alone into the HF cache; returns the snapshot folder. */
export async function downloadConfig(repoId: string, opts: DownloadOptions = {}): Promise<string> {
  const { hub, cache, pin } = await pinCommit(repoId, CONFIG, opts)
  await store(hub, cache, pin, opts.onProgress)
  return path.join(cache.root, 'snapshots', pin.commit)
}

/**
 * Downloads the named files of any hub repo (`repoType` 'model', 'dataset' or 'space'; files may
 * sit in folders, `lens/gpt2/params.pt`) into the HF cache, as `hf_hub_download` does for each,
 * and returns the snapshot folder. The first file pins the commit; every file is required.
 * Files already cached are not fetched again.
 */
export async function downloadFiles(repoId: string, files: readonly string[], opts: DownloadOptions = {}): Promise<string> {
  if (files.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'downloadFiles needs at least one file name')
  for (const f of files) {
    if (typeof f !== 'string' || f === '' || path.isAbsolute(f) || f.split(/[\\/]/).some((p) => p === '..' || p === '')) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `${JSON.stringify(f)} is not a file path inside a repo`)
    }
  }
  const { hub, cache, pin } = await pinCommit(repoId, files[0], opts)
  const fetchFile = fileFetcher(hub, cache, repoId, pin.commit, opts.onProgress)
  for (const file of files.slice(1)) await fetchFile(file, true)
  await store(hub, cache, pin, opts.onProgress)
  return path.join(cache.root, 'snapshots', pin.commit)
}

/** Downloads a file's blob unless present (once per process at a time), then points the snapshot at it. */
async function store(hub: HubClient, cache: RepoCache, meta: FileMeta, onProgress?: (p: DownloadProgress) => void): Promise<void> {
  const blob = cache.blob(meta.etag)
  if (!fs.existsSync(blob)) {
    let pending = inFlight.get(blob)
    if (pending === undefined) {
      fs.mkdirSync(path.dirname(blob), { recursive: true })
      pending = hub.download(meta, blob, onProgress).finally(() => inFlight.delete(blob))
      inFlight.set(blob, pending)
    }
    await pending
  }
  linkPointer(blob, cache.pointer(meta.commit, meta.filename))
}
