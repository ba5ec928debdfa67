import * as fs from 'node:fs'
import * as path from 'node:path'

import { TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { getOfficialModelName } from '../registry/models'

export interface ResolvedModel {
  /** Folder holding config.json, model.safetensors, tokenizer.json, ... */
  dir: string
  /** TL's official name (or the folder path for a local model). */
  officialName: string
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase())
}

/**
 * A model name (official name or alias, case-insensitive) or a local folder → the folder to
 * load from: the HF hub cache (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`).
 */
export function resolveModel(name: string, opts: { revision?: string; cacheDir?: string } = {}): ResolvedModel {
  if (fs.existsSync(path.join(name, 'config.json'))) {
    return { dir: path.resolve(name), officialName: name }
  }
  const officialName = getOfficialModelName(name)
  const cacheDir = opts.cacheDir ?? binding.hubCacheDir()
  const revision = opts.revision ?? 'main'
  let dir: string | null
  try {
    dir = binding.findSnapshot(cacheDir, officialName, revision)
  } catch (e) {
    throw new TransformerLensError('TL_IO', `cannot read the HF cache at ${cacheDir}: ${(e as Error).message}`)
  }
  if (dir !== null) return { dir, officialName }
  const offline = truthy(process.env.HF_HUB_OFFLINE)
  throw new TransformerLensError(
    'TL_MISSING_FILE',
    `'${officialName}' (revision ${revision}) is not in the HF cache at ${cacheDir}` +
      (offline ? ' and HF_HUB_OFFLINE is set' : '; downloading from the hub is not implemented yet: fetch it with huggingface-cli first'),
  )
}
