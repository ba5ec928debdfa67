/**
 * TL's training-checkpoint labels (`get_checkpoint_labels`) and the hub revision each lives at:
 * Pythia's `step{N}` branches, stanford-crfm's `checkpoint-{N}`.
 */
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
  labelType: 'step'
  /** As given (TL keeps a negative index as is). */
  index: number
  value: number
  /** The hub revision holding it. */
  revision: string
}

/** TL's `get_checkpoint_labels`: the labels and their type, or TL_INVALID_ARGUMENT for a model without checkpoints. */
export function checkpointLabels(officialName: string): { labels: number[]; labelType: 'step' } {
  if (officialName.startsWith('stanford-crfm/')) return { labels: STANFORD_CRFM_CHECKPOINTS, labelType: 'step' }
  if (officialName.startsWith('EleutherAI/pythia')) return { labels: officialName.includes('v0') ? PYTHIA_V0_CHECKPOINTS : PYTHIA_CHECKPOINTS, labelType: 'step' }
  throw new TransformerLensError('TL_INVALID_ARGUMENT', `Model ${officialName} is not checkpointed.`)
}

/** The checkpoint `checkpointIndex` or `checkpointValue` names (null when neither is given). */
export function chooseCheckpoint(officialName: string, index: unknown, value: unknown): CheckpointChoice | null {
  if ((index === undefined || index === null) && (value === undefined || value === null)) return null
  const { labels, labelType } = checkpointLabels(officialName)
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
  const revision = officialName.startsWith('stanford-crfm/') ? `checkpoint-${v}` : `step${v}`
  return { labelType, index: given, value: v, revision }
}
