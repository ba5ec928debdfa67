/**
 * tuned-lens's lens artifacts: a folder with `config.json` (the `TunedLensConfig`) and
 * `params.pt` (`torch.save` of `layer_translators.state_dict()`: keys `{i}.weight`, `{i}.bias`),
 * found locally or in tuned-lens's hub repo (`tuned_lens.load_artifacts.load_lens_artifacts`).
 *
 * `params.pt` is read in Rust by the project's PyTorch zip reader, which accepts only tensor
 * rebuilds and plain containers (anything else is `TL_CORRUPT_FILE`; no pickle code ever runs),
 * and written as `torch.save` writes it (`torch.load(..., weights_only=True)` reads it).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import { nativeAsync, TransformerLensError } from '../errors'
import { DownloadOptions, downloadFiles } from '../model/download'
import type { RepoType } from '../model/hub-client'
import { opt } from '../model/options'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { stringArg } from '../utils/args'

/** tuned-lens's default lens repo: a HuggingFace *space*. */
export const DEFAULT_LENS_REPO_ID = 'AlignmentResearch/tuned-lens'
export const DEFAULT_LENS_REPO_TYPE: RepoType = 'space'

/** tuned-lens's `load_lens_artifacts` keyword arguments, in camelCase (snake_case accepted). */
export interface LensArtifactOptions extends DownloadOptions {
  /** Default `TUNED_LENS_REPO_ID`, else 'AlignmentResearch/tuned-lens'. */
  repoId?: string
  /** Default `TUNED_LENS_REPO_TYPE`, else 'space'. */
  repoType?: RepoType
  /** Default 'config.json'. */
  configFile?: string
  /** Default 'params.pt'. */
  ckptFile?: string
  /** The repo folder holding one folder per lens (default 'lens'). */
  subfolder?: string
  /** Never download: the HF cache only (also `HF_HUB_OFFLINE=1`). */
  localFilesOnly?: boolean
}

export interface LensArtifactPaths {
  configPath: string
  ckptPath: string
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase())
}

/**
 * tuned-lens's `load_lens_artifacts(resource_id, ...)`: `resourceId` is a folder holding
 * `config.json` and `params.pt`, else a lens name in the hub repo (`lens/{resourceId}/...` of
 * `TUNED_LENS_REPO_ID` / `TUNED_LENS_REPO_TYPE`, default the space `AlignmentResearch/tuned-lens`),
 * found in the HF cache (`spaces--AlignmentResearch--tuned-lens/snapshots/...`, shared with
 * Python's huggingface_hub) or downloaded into it unless `localFilesOnly` / `HF_HUB_OFFLINE`.
 */
export async function loadLensArtifacts(resourceId: string, options: LensArtifactOptions = {}): Promise<LensArtifactPaths> {
  stringArg('resourceId', resourceId)
  const configFile = stringArg('configFile', opt(options, 'configFile', 'config.json'))
  const ckptFile = stringArg('ckptFile', opt(options, 'ckptFile', 'params.pt'))
  const local = { configPath: path.join(resourceId, configFile), ckptPath: path.join(resourceId, ckptFile) }
  if (fs.existsSync(local.configPath) && fs.existsSync(local.ckptPath)) return local

  const repoId = stringArg('repoId', opt<string | undefined>(options, 'repoId', undefined) || process.env.TUNED_LENS_REPO_ID || DEFAULT_LENS_REPO_ID)
  const repoType = (opt<string | undefined>(options, 'repoType', undefined) || process.env.TUNED_LENS_REPO_TYPE || DEFAULT_LENS_REPO_TYPE) as RepoType
  if (!['model', 'dataset', 'space'].includes(repoType)) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `repoType must be 'model', 'dataset' or 'space', got ${JSON.stringify(repoType)}`)
  }
  const revision = opt<string | undefined>(options, 'revision', undefined) ?? 'main'
  const cacheDir = opt<string | undefined>(options, 'cacheDir', undefined) ?? binding.hubCacheDir()
  const folder = `${stringArg('subfolder', opt(options, 'subfolder', 'lens'))}/${resourceId}`
  const files = [`${folder}/${ckptFile}`, `${folder}/${configFile}`]
  const inSnapshot = (dir: string): LensArtifactPaths => ({ ckptPath: path.join(dir, ...files[0].split('/')), configPath: path.join(dir, ...files[1].split('/')) })

  let snap: string | null
  try {
    snap = binding.findSnapshot(cacheDir, repoId, revision, repoType)
  } catch (e) {
    throw new TransformerLensError('TL_IO', `cannot read the HF cache at ${cacheDir}: ${(e as Error).message}`)
  }
  if (snap !== null) {
    const p = inSnapshot(snap)
    if (fs.existsSync(p.configPath) && fs.existsSync(p.ckptPath)) return p
  }
  const offline = opt(options, 'localFilesOnly', false) || truthy(process.env.HF_HUB_OFFLINE) || truthy(process.env.TRANSFORMERS_OFFLINE)
  if (offline) {
    throw new TransformerLensError(
      'TL_MISSING_FILE',
      `lens '${resourceId}' is neither a folder with ${configFile} and ${ckptFile} nor in the HF cache at ${cacheDir} (${repoType} ${repoId}, revision ${revision}), and ${opt(options, 'localFilesOnly', false) ? 'localFilesOnly is set' : 'HF_HUB_OFFLINE is set'}`,
    )
  }
  const dir = await downloadFiles(repoId, files, { ...options, repoType, revision, cacheDir })
  return inSnapshot(dir)
}

/** A `torch.save` state dict's float tensors, in the file's order (read in Rust, no pickle code runs). */
export async function readTorchFile(file: string): Promise<Map<string, Tensor>> {
  stringArg('file', file)
  const entries = await nativeAsync(() => binding.readTorchFile(file))
  return new Map(entries.map((e) => [e.name, wrapT(e.tensor)]))
}

function entriesOf(tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>): [string[], binding.NativeTensor[]] {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)
  for (const [k, t] of list) if (!(t instanceof Tensor)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `'${k}' is not a Tensor`)
  return [list.map(([k]) => k), list.map(([, t]) => t.native)]
}

/** Writes `torch.save(OrderedDict(tensors), file)` (zip format; `torch.load` reads it, also with `weights_only=True`). */
export async function writeTorchFile(file: string, tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
  stringArg('file', file)
  const [names, list] = entriesOf(tensors)
  await nativeAsync(() => binding.writeTorchFile(file, names, list))
}

/** Writes the tensors as a safetensors file. */
export async function writeSafetensorsFile(file: string, tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
  stringArg('file', file)
  const [names, list] = entriesOf(tensors)
  await nativeAsync(() => binding.writeSafetensorsFile(file, names, list))
}

/** JSON as Python's `json.dump` writes it (`", "` and `": "` separators, non-ASCII escaped). */
export function pythonJson(value: unknown): string {
  const str = (s: string) => JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const enc = (v: unknown): string => {
    if (v === null || v === undefined) return 'null'
    if (typeof v === 'string') return str(v)
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : JSON.stringify(v)
    if (typeof v === 'boolean') return v ? 'true' : 'false'
    if (Array.isArray(v)) return `[${v.map(enc).join(', ')}]`
    return `{${Object.entries(v as object).map(([k, x]) => `${str(k)}: ${enc(x)}`).join(', ')}}`
  }
  return enc(value)
}

/** The JSON object in `file` (`TL_CORRUPT_FILE` if it is not one). */
export function readJsonObject(file: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code === 'ENOENT') throw new TransformerLensError('TL_MISSING_FILE', `${file} does not exist`)
    throw new TransformerLensError('TL_CORRUPT_FILE', `${file} is not valid JSON: ${err.message}`)
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TransformerLensError('TL_CORRUPT_FILE', `${file} does not hold a JSON object`)
  return v as Record<string, unknown>
}

export interface SaveLensOptions {
  /** Default 'params.pt'. */
  ckpt?: string
  /** Default 'config.json'. */
  config?: string
  /** Also write the translators as `params.safetensors` (default true). */
  safetensors?: boolean
}

/** Writes a lens folder: `config.json` (as tuned-lens's `json.dump`), `params.pt` and `params.safetensors`. */
export async function writeLensArtifacts(dir: string, config: object, stateDict: ReadonlyMap<string, Tensor>, options: SaveLensOptions = {}): Promise<void> {
  stringArg('path', dir)
  const ckpt = stringArg('ckpt', options.ckpt ?? 'params.pt')
  const cfgName = stringArg('config', options.config ?? 'config.json')
  try {
    fs.mkdirSync(dir, { recursive: true })
  } catch (e) {
    throw new TransformerLensError('TL_IO', `cannot create ${dir}: ${(e as Error).message}`)
  }
  await writeTorchFile(path.join(dir, ckpt), stateDict)
  if (options.safetensors ?? true) await writeSafetensorsFile(path.join(dir, ckpt.replace(/\.[^./]*$/, '') + '.safetensors'), stateDict)
  fs.writeFileSync(path.join(dir, cfgName), pythonJson(config))
}
