/**
 * TL's training-checkpoint labels (`get_checkpoint_labels`) and the hub revision each lives at:
 * Pythia's `step{N}` branches, stanford-crfm's `checkpoint-{N}`; NeelNanda's repos keep theirs
 * as files (`checkpoints/*_{N}.pth`) in the main revision, listed from the snapshot folder.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import { TransformerLensError } from '../errors'
import { intArg } from '../utils/args'

const range = (start: number, stop: number, step: number): number[] => Array.from({ length: Math.ceil((stop - start) / step) }, (_, i) => start + i * step)

/** The steps stanford-crfm saved: TL's STANFORD_CRFM_CHECKPOINTS. */
export const STANFORD_CRFM_CHECKPOINTS = [...range(0, 100, 10), ...range(100, 2000, 50), ...range(2000, 20000, 100), ...range(20000, 400001, 1000)]
/** Pythia's: log-spaced early steps, then every 1000 (TL's PYTHIA_CHECKPOINTS). */
export const PYTHIA_CHECKPOINTS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, ...range(1000, 143001, 1000)]
/** Pythia v0's: every 1000 steps (TL's PYTHIA_V0_CHECKPOINTS). */
export const PYTHIA_V0_CHECKPOINTS = range(1000, 143001, 1000)

export interface CheckpointChoice {
  labelType: 'step' | 'token'
  /** As given (TL keeps a negative index as is). */
  index: number
  value: number
  /** The hub revision holding it. */
  revision: string
}

/** Whether a model's checkpoints are files of its snapshot (NeelNanda's repos), not revisions. */
export function checkpointsAreFiles(officialName: string): boolean {
  return officialName.startsWith('NeelNanda/')
}

/** Whether TL loads a name as one of its own checkpoints (a TL config.json and `.pth` state dicts). */
export function isTlNative(officialName: string): boolean {
  return ['NeelNanda/', 'ArthurConmy/', 'Baidicoot/'].some((p) => officialName.startsWith(p))
}

/** The `.pth` TL reads from a listing: the first file ending in `{value}.pth` (a checkpoint), else in `final.pth`. */
export function stateDictFile(files: readonly string[], checkpointValue: number | null): string | undefined {
  const suffix = checkpointValue === null ? 'final.pth' : `${checkpointValue}.pth`
  return files.find((f) => f.endsWith(suffix))
}

/** A snapshot's files as the hub lists them: relative paths with `/`, sorted. */
export function repoFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string, depth: number) => {
    if (depth > 8) return
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      const full = path.join(dir, r)
      if (fs.statSync(full, { throwIfNoEntry: false })?.isDirectory()) walk(r, depth + 1)
      else out.push(r)
    }
  }
  walk('', 0)
  return out.sort()
}

/** NeelNanda's labels: `re.match(r"checkpoints/.*_(\d*)\.pth", file)` over the listing, `token` when the last exceeds 1e9. */
function fileCheckpointLabels(officialName: string, files: string | readonly string[]): { labels: number[]; labelType: 'step' | 'token' } {
  const labels: number[] = []
  const where = typeof files === 'string' ? files : 'the hub\'s file list'
  for (const f of typeof files === 'string' ? repoFiles(files) : files) {
    const m = /^checkpoints\/.*_(\d*)\.pth/.exec(f)
    if (m && m[1] !== '') labels.push(Number(m[1]))
  }
  if (labels.length === 0) throw new TransformerLensError('TL_MISSING_FILE', `'${officialName}' has no checkpoints/*_{N}.pth files in ${where}`)
  return { labels, labelType: labels[labels.length - 1] > 1e9 ? 'token' : 'step' }
}

/**
 * TL's `get_checkpoint_labels`: the labels and their type, or TL_INVALID_ARGUMENT for a model
 * without checkpoints. NeelNanda's models need their snapshot folder or the repo's file list `dir`.
 */
export function checkpointLabels(officialName: string, dir?: string | readonly string[]): { labels: number[]; labelType: 'step' | 'token' } {
  if (officialName.startsWith('stanford-crfm/')) return { labels: STANFORD_CRFM_CHECKPOINTS, labelType: 'step' }
  if (officialName.startsWith('EleutherAI/pythia')) return { labels: officialName.includes('v0') ? PYTHIA_V0_CHECKPOINTS : PYTHIA_CHECKPOINTS, labelType: 'step' }
  if (checkpointsAreFiles(officialName) && dir !== undefined) return fileCheckpointLabels(officialName, dir)
  throw new TransformerLensError('TL_INVALID_ARGUMENT', `Model ${officialName} is not checkpointed.`)
}

/** The checkpoint `checkpointIndex` or `checkpointValue` names (null when neither is given). */
export function chooseCheckpoint(officialName: string, index: unknown, value: unknown, dir?: string | readonly string[]): CheckpointChoice | null {
  if ((index === undefined || index === null) && (value === undefined || value === null)) return null
  const { labels, labelType } = checkpointLabels(officialName, dir)
  // TL keeps the index as given (a negative one counts from the end, as Python indexing).
  let given: number
  let v: number
  if (index !== undefined && index !== null) {
    given = intArg('checkpointIndex', index, { min: -labels.length, max: labels.length - 1 })
    v = labels[given < 0 ? given + labels.length : given]
  } else {
    v = intArg('checkpointValue', value, { min: 0, max: Number.MAX_SAFE_INTEGER })
    given = labels.indexOf(v)
    if (given < 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', `Checkpoint value ${v} is not in list of available checkpoints`)
  }
  const revision = checkpointsAreFiles(officialName) ? 'main' : officialName.startsWith('stanford-crfm/') ? `checkpoint-${v}` : `step${v}`
  return { labelType, index: given, value: v, revision }
}
