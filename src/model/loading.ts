import * as fs from 'node:fs'
import * as path from 'node:path'

import { nativeAsync, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { architectureClass, architectureOf } from '../registry/architectures'
import { getOfficialModelName } from '../registry/models'
import { DownloadOptions, downloadConfig, downloadModel, downloadTlNativeModel, downloadTokenizer, isCompleteSnapshot } from './download'
import { CheckpointChoice, chooseCheckpoint, isTlNative, repoFiles, stateDictFile } from './checkpoints'
import { defaultDevice } from '../utils/devices'
import { LoadOptions, modelDtypeArg, opt, paddingLeftArg } from './options'
import { boolArg, optIntArg, stringArg, U32_MAX } from '../utils/args'

export interface ResolvedModel {
  /** Folder holding config.json, model.safetensors, tokenizer.json, ... */
  dir: string
  /** TL's official name (or the folder path for a local model). */
  officialName: string
}

export interface EnsureModelOptions extends DownloadOptions {
  /** Never download: use the cache only (also `HF_HUB_OFFLINE=1`). TL/transformers: `local_files_only`. */
  localFilesOnly?: boolean
}

/** huggingface_hub's truthy env values. */
function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase())
}

/** `HF_HUB_OFFLINE` (or transformers' `TRANSFORMERS_OFFLINE`) is set. */
function offlineEnv(): boolean {
  return truthy(process.env.HF_HUB_OFFLINE) || truthy(process.env.TRANSFORMERS_OFFLINE)
}

function localFolder(name: string): ResolvedModel | null {
  return fs.existsSync(path.join(name, 'config.json')) ? { dir: path.resolve(name), officialName: name } : null
}

function findSnapshot(cacheDir: string, officialName: string, revision: string): string | null {
  try {
    return binding.findSnapshot(cacheDir, officialName, revision)
  } catch (e) {
    throw new TransformerLensError('TL_IO', `cannot read the HF cache at ${cacheDir}: ${(e as Error).message}`)
  }
}

function notCached(officialName: string, revision: string, cacheDir: string, why: string): TransformerLensError {
  return new TransformerLensError('TL_MISSING_FILE', `'${officialName}' (revision ${revision}) is not in the HF cache at ${cacheDir} and ${why}`)
}

/**
 * A model name (official name or alias, case-insensitive) or a local folder → the folder to
 * load from, found in the HF hub cache (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`).
 * Never touches the network: see `ensureModel` for downloading.
 */
export function resolveModel(name: string, opts: { revision?: string; cacheDir?: string } = {}): ResolvedModel {
  const local = localFolder(name)
  if (local) return local
  const officialName = getOfficialModelName(name)
  const cacheDir = opts.cacheDir ?? binding.hubCacheDir()
  const revision = opts.revision ?? 'main'
  const dir = findSnapshot(cacheDir, officialName, revision)
  if (dir !== null) return { dir, officialName }
  throw notCached(officialName, revision, cacheDir, 'resolveModel does not download (use ensureModel)')
}

/** Where and how a name is looked up in (and downloaded into) the HF cache. */
interface CacheLookup {
  officialName: string
  cacheDir: string
  revision: string
  localOnly: boolean
  download: DownloadOptions
}

function cacheLookup(officialName: string, opts: EnsureModelOptions): CacheLookup {
  const cacheDir = opt<string | undefined>(opts, 'cacheDir', undefined) ?? binding.hubCacheDir()
  const revision = opt(opts, 'revision', 'main')
  return {
    officialName,
    cacheDir,
    revision,
    localOnly: opt(opts, 'localFilesOnly', false),
    download: {
      revision,
      cacheDir,
      endpoint: opt(opts, 'endpoint', undefined),
      token: opt(opts, 'token', undefined),
      signal: opt(opts, 'signal', undefined),
      timeoutMs: opt(opts, 'timeoutMs', undefined),
      onProgress: opt(opts, 'onProgress', undefined),
    },
  }
}

/** Offline (localFilesOnly / HF_HUB_OFFLINE) and not cached: `TL_MISSING_FILE`. */
function offlineMiss(l: CacheLookup): TransformerLensError {
  return notCached(l.officialName, l.revision, l.cacheDir, l.localOnly ? 'localFilesOnly is set' : 'HF_HUB_OFFLINE is set')
}

/**
 * `resolveModel`, downloading the model from the hub (`HF_ENDPOINT`) into the HF cache when the
 * cache lacks it or holds it partly, unless `HF_HUB_OFFLINE` is set or `localFilesOnly` is
 * given (then a model missing from the cache is `TL_MISSING_FILE`). Options may use
 * camelCase or snake_case names (`local_files_only`, `cache_dir`).
 */
export async function ensureModel(name: string, opts: EnsureModelOptions = {}): Promise<ResolvedModel> {
  const local = localFolder(name)
  if (local) return local
  const l = cacheLookup(getOfficialModelName(name), opts)
  const dir = findSnapshot(l.cacheDir, l.officialName, l.revision)
  if (dir !== null && isCompleteSnapshot(dir)) return { dir, officialName: l.officialName }
  if (l.localOnly || offlineEnv()) {
    // A partial snapshot loads as far as it goes, and the loader names the missing file.
    if (dir !== null) return { dir, officialName: l.officialName }
    throw offlineMiss(l)
  }
  return { dir: await downloadModel(l.officialName, l.download), officialName: l.officialName }
}

/**
 * Finds (or downloads) the model's files and loads them natively, processing the weights as
 * `options` say (TL's defaults: every processing step on), on `options.device`.
 */
export async function loadNativeModel(modelName: string, options: LoadOptions): Promise<binding.NativeModel> {
  stringArg('modelName', modelName)
  const device = stringArg('device', opt(options, 'device', undefined) ?? defaultDevice())
  const paddingLeft = paddingLeftArg(options)
  // Checked before any download, as napi would wrap firstNLayers modulo 2^32.
  const flag = (name: string) => boolArg(name, opt(options, name, true))
  const defaultPrependBos = opt<unknown>(options, 'defaultPrependBos', undefined)
  const args: binding.LoadArgs = {
    dir: '',
    officialName: '',
    foldLn: flag('foldLn'),
    centerWritingWeights: flag('centerWritingWeights'),
    centerUnembed: flag('centerUnembed'),
    foldValueBiases: flag('foldValueBiases'),
    dtype: modelDtypeArg(options),
    defaultPrependBos: defaultPrependBos === undefined || defaultPrependBos === null ? undefined : boolArg('defaultPrependBos', defaultPrependBos),
    firstNLayers: optIntArg('firstNLayers', opt<unknown>(options, 'firstNLayers', undefined), { min: 1, max: U32_MAX }),
    paddingLeft,
    device,
  }
  nDevicesArg(options)
  const local = localFolder(modelName)
  const official = local ? null : getOfficialModelName(modelName)
  if (official !== null) {
    // As TL: a name of a model another class loads (BERT: HookedEncoder, T5: HookedEncoderDecoder)
    // is refused before any download.
    const architecture = architectureOf(official)
    const cls = architectureClass(architecture)
    if (cls !== 'HookedTransformer') throw new TransformerLensError('TL_UNSUPPORTED', `'${modelName}' is a ${architecture}: load it with ${cls}, not HookedTransformer`)
    if (isTlNative(official)) {
      const { dir, officialName, checkpoint } = await ensureTlNative(official, options)
      return nativeAsync(() => binding.loadModel({ ...args, dir, officialName, checkpoint: checkpoint ?? undefined }))
    }
  }
  // A training checkpoint lives at its own revision (Pythia's `step{N}`, stanford-crfm's `checkpoint-{N}`).
  const checkpoint = official === null ? null : chooseCheckpoint(official, opt(options, 'checkpointIndex', undefined), opt(options, 'checkpointValue', undefined))
  const { dir, officialName } = await ensureModel(modelName, checkpoint ? { ...options, revision: checkpoint.revision } : options)
  return nativeAsync(() => binding.loadModel({ ...args, dir, officialName, checkpoint: checkpoint ?? undefined }))
}

/**
 * TL's own checkpoints (`NeelNanda/`, `ArthurConmy/`, `Baidicoot/`) from the cache, else from the
 * hub: config.json and the `.pth` TL reads (`*final.pth`, or `*{value}.pth` for `checkpointIndex`
 * / `checkpointValue`, labels from the repo's file list), chosen as TL chooses them.
 */
async function ensureTlNative(officialName: string, options: LoadOptions): Promise<ResolvedModel & { checkpoint: CheckpointChoice | null }> {
  const l = cacheLookup(officialName, options)
  const pick = (files: string | readonly string[]) => chooseCheckpoint(officialName, opt(options, 'checkpointIndex', undefined), opt(options, 'checkpointValue', undefined), files)
  const dir = findSnapshot(l.cacheDir, officialName, l.revision)
  const offline = l.localOnly || offlineEnv()
  if (dir !== null && (offline || !asksCheckpoint(options))) {
    // Offline, a partial snapshot loads as far as it goes and the loader names what is missing.
    // Online, a checkpoint's label is looked up in the hub's list (the cache may hold a few).
    const files = repoFiles(dir)
    if (offline || (files.includes('config.json') && stateDictFile(files, null) !== undefined)) return { dir, officialName, checkpoint: pick(dir) }
  } else if (dir === null && offline) {
    throw offlineMiss(l)
  }
  let checkpoint: CheckpointChoice | null = null
  const got = await downloadTlNativeModel(officialName, l.download, (files) => {
    checkpoint = pick(files)
    return checkpoint?.value ?? null
  })
  return { dir: got.dir, officialName, checkpoint }
}

function asksCheckpoint(options: LoadOptions): boolean {
  const given = (v: unknown) => v !== undefined && v !== null
  return given(opt(options, 'checkpointIndex', undefined)) || given(opt(options, 'checkpointValue', undefined))
}

/** TL's `n_devices`: accepted, but only 1 until multi-device runs exist. */
export function nDevicesArg(options: object): number {
  const n = optIntArg('nDevices', opt<unknown>(options, 'nDevices', undefined), { min: 1, max: U32_MAX }) ?? 1
  if (n !== 1) throw new TransformerLensError('TL_UNSUPPORTED', `nDevices ${n}: splitting a model over several devices is not supported yet (use 1)`)
  return n
}

/**
 * The folder holding `name`'s config.json: a local folder, a cached snapshot that has one, or
 * (unless offline) the config.json alone downloaded into the HF cache.
 */
export async function ensureConfig(name: string, opts: EnsureModelOptions = {}): Promise<ResolvedModel> {
  const local = localFolder(name)
  if (local) return local
  const l = cacheLookup(getOfficialModelName(name), opts)
  const dir = findSnapshot(l.cacheDir, l.officialName, l.revision)
  if (dir !== null && fs.existsSync(path.join(dir, 'config.json'))) return { dir, officialName: l.officialName }
  if (l.localOnly || offlineEnv()) throw offlineMiss(l)
  return { dir: await downloadConfig(l.officialName, l.download), officialName: l.officialName }
}

/** A tokenizer's hub repo: TL's official name for a model name or alias, else a hub id (`org/name`) as given. */
function tokenizerRepo(name: string): string {
  try {
    return getOfficialModelName(name)
  } catch (e) {
    if (name.includes('/')) return name
    throw e
  }
}

/**
 * Where a tokenizer lives: an existing folder or tokenizer.json path as is; else a model name
 * or hub id, found in the HF cache (a snapshot with tokenizer.json, or Qwen v1's qwen.tiktoken)
 * or, unless offline (`localFilesOnly` / `HF_HUB_OFFLINE`), downloaded there (tokenizer files
 * only).
 */
export async function ensureTokenizer(name: string, opts: EnsureModelOptions = {}): Promise<string> {
  if (fs.existsSync(name)) return path.resolve(name)
  if (path.isAbsolute(name) || name.startsWith('.') || name.endsWith('.json')) {
    throw new TransformerLensError('TL_MISSING_FILE', `no tokenizer at ${name}: the path does not exist`)
  }
  const l = cacheLookup(tokenizerRepo(name), opts)
  const dir = findSnapshot(l.cacheDir, l.officialName, l.revision)
  if (dir !== null && ['tokenizer.json', 'qwen.tiktoken'].some((f) => fs.existsSync(path.join(dir, f)))) return dir
  if (l.localOnly || offlineEnv()) throw offlineMiss(l)
  return downloadTokenizer(l.officialName, l.download)
}
