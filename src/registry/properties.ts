/**
 * TL's model properties table (docs: `model_properties_table`, made by `make_model_table`): one
 * row per official name with the config facts TL lists, and whether this library runs the model.
 *
 * Values come from `getPretrainedModelConfig`'s own derivation: TL's hard-coded tables (Llama,
 * Gemma) with no file read, else the model's config.json in the HF cache (or, only with
 * `download: true`, fetched alone from the hub). A value that cannot be known offline is `null`
 * and the row's `source` says `'unknown offline'`: nothing is guessed.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import { fromNative, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import type { HookedTransformerConfig } from '../model/hooked-transformer'
import { getPretrainedModelConfig } from '../model/pretrained-config'
import { opt } from '../model/options'
import { boolArg, invalidArg } from '../utils/args'
import { architectureOf, architectureSupport, NON_HF_HOSTED_MODEL_NAMES, TL_CHECKPOINT } from './architectures'
import { MODEL_ALIASES, OFFICIAL_MODEL_NAMES } from './official-names'
import { modelPropertiesHtml } from './properties-html'

/** Where a row's config values came from. */
export type PropertiesSource = 'TL table' | 'config.json (cache)' | 'config.json (download)' | 'unknown offline' | 'not derived'

/** One row of the table: TL's config field names (snake_case), as TL's table has them. */
export interface ModelPropertiesRow {
  /** TL's official name (the HF repo id, or TL's own name for the non-hosted Llamas). */
  name: string
  /** TL's `DEFAULT_MODEL_ALIASES` entry: the first alias, else the official name. */
  default_alias: string
  aliases: string[]
  n_params: number | null
  /** `n_params` as TL's docs print it (`85M`, `1.1B`). */
  n_params_str: string | null
  n_layers: number | null
  d_model: number | null
  n_heads: number | null
  d_head: number | null
  d_mlp: number | null
  n_key_value_heads: number | null
  n_ctx: number | null
  d_vocab: number | null
  act_fn: string | null
  attn_only: boolean | null
  positional_embedding_type: string | null
  normalization_type: string | null
  parallel_attn_mlp: boolean | null
  /** `cfg.original_architecture`, from the derived config (null when not derived). */
  original_architecture: string | null
  /** The architecture TL sees for this name (config.json's when derived, else TL's known one). */
  architecture: string | null
  source: PropertiesSource
  /** Whether this library runs the model. */
  supported: boolean
  /** Why it does not run here (null when supported). */
  reason: string | null
  /** Anything else worth knowing (weights not on the hub, how to fill unknown values). */
  note: string | null
}

export interface ModelPropertiesOptions {
  /** Fetch config.json from the hub (into the HF cache) for names not cached (default false: never touches the network). */
  download?: boolean
  /** Keep rows whose name, alias or architecture matches: a RegExp, or a case-insensitive substring. */
  filter?: string | RegExp
  /** `'rows'` (default): the rows; `'json'`: the rows as a JSON string; `'html'`: a sortable, filterable page. */
  format?: 'rows' | 'json' | 'html'
  /** The HF hub cache (default: `HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`). */
  cacheDir?: string
  revision?: string
}

/** TL's docs formatting of a parameter count (`get_property('n_params')`). */
export function formatParamCount(n: number): string {
  if (n < 1e4) return `${(n / 1e3).toFixed(1)}K`
  if (n < 1e6) return `${Math.round(n / 1e3)}K`
  if (n < 1e7) return `${(n / 1e6).toFixed(1)}M`
  if (n < 1e9) return `${Math.round(n / 1e6)}M`
  if (n < 1e10) return `${(n / 1e9).toFixed(1)}B`
  return `${Math.round(n / 1e9)}B`
}

/** A RegExp from `/body/flags`, else a case-insensitive substring test. */
export function nameMatcher(filter: string | RegExp): (s: string) => boolean {
  if (filter instanceof RegExp) return (s) => new RegExp(filter.source, filter.flags.replace(/[gy]/g, '')).test(s)
  if (typeof filter !== 'string') throw invalidArg('filter', 'a string or RegExp', filter)
  const m = /^\/(.*)\/([a-z]*)$/s.exec(filter)
  if (m) {
    let re: RegExp
    try {
      re = new RegExp(m[1], m[2].replace(/[gy]/g, ''))
    } catch (e) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `filter ${filter} is not a valid regular expression: ${(e as Error).message}`)
    }
    return (s) => re.test(s)
  }
  const needle = filter.toLowerCase()
  return (s) => s.toLowerCase().includes(needle)
}

/** The official names (TL's order) that `filter` keeps, matched on name, aliases and known architecture. */
export function filterOfficialNames(filter?: string | RegExp): string[] {
  if (filter === undefined || filter === '') return [...OFFICIAL_MODEL_NAMES]
  const match = nameMatcher(filter)
  return OFFICIAL_MODEL_NAMES.filter((n) => [n, ...(MODEL_ALIASES[n] ?? []), architectureOf(n) ?? ''].some(match))
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null)

function emptyRow(name: string): ModelPropertiesRow {
  const aliases = [...(MODEL_ALIASES[name] ?? [])]
  const architecture = architectureOf(name)
  const support = architectureSupport(architecture)
  return {
    name,
    default_alias: aliases[0] ?? name,
    aliases,
    n_params: null,
    n_params_str: null,
    n_layers: null,
    d_model: null,
    n_heads: null,
    d_head: null,
    d_mlp: null,
    n_key_value_heads: null,
    n_ctx: null,
    d_vocab: null,
    act_fn: null,
    attn_only: null,
    positional_embedding_type: null,
    normalization_type: null,
    parallel_attn_mlp: null,
    original_architecture: null,
    architecture,
    source: 'unknown offline',
    supported: support.supported,
    reason: support.reason,
    note: NON_HF_HOSTED_MODEL_NAMES.includes(name) ? 'weights are not hosted on the HF hub: TL needs them passed in (hf_model)' : null,
  }
}

function fillFromConfig(row: ModelPropertiesRow, cfg: HookedTransformerConfig, source: PropertiesSource): void {
  const nParams = num(cfg.n_params)
  Object.assign(row, {
    n_params: nParams,
    n_params_str: nParams === null ? null : formatParamCount(nParams),
    n_layers: num(cfg.n_layers),
    d_model: num(cfg.d_model),
    n_heads: num(cfg.n_heads),
    d_head: num(cfg.d_head),
    d_mlp: num(cfg.d_mlp),
    n_key_value_heads: num(cfg.n_key_value_heads),
    n_ctx: num(cfg.n_ctx),
    d_vocab: num(cfg.d_vocab),
    act_fn: str(cfg.act_fn),
    attn_only: bool(cfg.attn_only),
    positional_embedding_type: str(cfg.positional_embedding_type),
    normalization_type: str(cfg.normalization_type),
    parallel_attn_mlp: bool(cfg.parallel_attn_mlp),
    original_architecture: str(cfg.original_architecture),
    source,
    supported: true,
    reason: null,
  })
  if (row.architecture !== TL_CHECKPOINT && row.original_architecture !== null) row.architecture = row.original_architecture
}

/** The snapshot folder holding `name`'s config.json in the cache, or null. Never touches the network. */
function cachedConfigDir(name: string, cacheDir: string, revision: string): string | null {
  let dir: string | null
  try {
    dir = binding.findSnapshot(cacheDir, name, revision)
  } catch {
    return null
  }
  return dir !== null && fs.existsSync(path.join(dir, 'config.json')) ? dir : null
}

/** `architectures[0]` of a cached config.json, or null. */
function cachedArchitecture(dir: string): string | null {
  try {
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
    return Array.isArray(j?.architectures) && typeof j.architectures[0] === 'string' ? j.architectures[0] : null
  } catch {
    return null
  }
}

const isTlCheckpoint = (name: string) => architectureOf(name) === TL_CHECKPOINT

/** TL's hard-coded config for `name` (no file read), or null when TL reads config.json for it. */
function tableConfig(name: string): HookedTransformerConfig | null {
  if (isTlCheckpoint(name)) return null
  try {
    const json = binding.pretrainedConfigJson({ officialName: name, foldLn: false, dtype: 'float32', device: 'cpu', nDevices: 1 })
    return JSON.parse(json)
  } catch (e) {
    const err = fromNative(e)
    if (err instanceof TransformerLensError && err.code === 'TL_MISSING_FILE') return null
    throw err
  }
}

/** One official name's row. */
export async function modelPropertiesRow(name: string, options: ModelPropertiesOptions = {}): Promise<ModelPropertiesRow> {
  const download = boolArg('download', opt(options, 'download', false))
  const cacheDir = opt<string | undefined>(options, 'cacheDir', undefined) ?? binding.hubCacheDir()
  const revision = opt(options, 'revision', 'main')
  const row = emptyRow(name)
  try {
    const table = tableConfig(name)
    if (table) {
      fillFromConfig(row, table, 'TL table')
      return row
    }
    const dir = cachedConfigDir(name, cacheDir, revision)
    if (dir === null && !download) {
      row.note = row.note ?? 'config.json is not in the HF cache: pass { download: true } to fetch it'
      return row
    }
    if (dir !== null && !isTlCheckpoint(name)) row.architecture = cachedArchitecture(dir) ?? row.architecture
    const cfg = await getPretrainedModelConfig(name, { localFilesOnly: !download, cacheDir, revision, device: 'cpu' })
    fillFromConfig(row, cfg, dir !== null ? 'config.json (cache)' : 'config.json (download)')
  } catch (e) {
    const err = fromNative(e)
    if (!(err instanceof TransformerLensError)) throw err
    if (err.code === 'TL_NETWORK' || err.code === 'TL_AUTH' || err.code === 'TL_MISSING_FILE' || err.code === 'TL_UNKNOWN_MODEL') {
      row.note = `config.json could not be fetched (${err.code}): ${err.message}`
      return row
    }
    row.source = 'not derived'
    const support = architectureSupport(row.architecture)
    row.supported = false
    row.reason = support.reason ?? `${err.code}: ${err.message}`
  }
  return row
}

/**
 * TL's model properties table: one row per official name (TL's order), optionally filtered;
 * as rows, a JSON string, or a self-contained HTML page (save it with `writeHtml`).
 * Never touches the network unless `download` is true.
 */
export async function modelPropertiesTable(options: ModelPropertiesOptions & { format: 'json' | 'html' }): Promise<string>
export async function modelPropertiesTable(options?: ModelPropertiesOptions & { format?: 'rows' }): Promise<ModelPropertiesRow[]>
export async function modelPropertiesTable(options?: ModelPropertiesOptions): Promise<ModelPropertiesRow[] | string>
export async function modelPropertiesTable(options: ModelPropertiesOptions = {}): Promise<ModelPropertiesRow[] | string> {
  const format = opt<string>(options, 'format', 'rows')
  if (format !== 'rows' && format !== 'json' && format !== 'html') throw invalidArg('format', "'rows', 'json' or 'html'", format)
  const rows: ModelPropertiesRow[] = []
  for (const name of filterOfficialNames(opt<string | RegExp | undefined>(options, 'filter', undefined))) {
    rows.push(await modelPropertiesRow(name, options))
  }
  if (format === 'json') return modelPropertiesToJson(rows)
  if (format === 'html') return modelPropertiesHtml(rows)
  return rows
}

/** The rows as JSON (an array, 2-space indented). */
export function modelPropertiesToJson(rows: readonly ModelPropertiesRow[]): string {
  return JSON.stringify(rows, null, 2)
}
