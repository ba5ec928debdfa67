/**
 * TL's `train(model, config, dataset)` (`transformer_lens.train`): next-token training with
 * torch's optimisers, forward and backward in Rust. TL's `HookedTransformerTrainConfig` fields
 * in camelCase; TL's printing, checkpointing and warmup; plus a progress bar, an `onStep`
 * callback and an `AbortSignal`.
 */
import { native, nativeAsync, TransformerLensError } from '../errors'
import { PyRandom } from '../evals/py-random'
import * as binding from '../native/binding'
import { HookedTransformer, nativeModelOf } from '../model/hooked-transformer'
import { Tensor } from '../tensor'
import { boolArg, enumArg, intArg, numberArg, optFnArg, optIntArg, stringArg } from '../utils/args'
import { Progress } from './progress'

export type OptimizerName = 'Adam' | 'AdamW' | 'SGD'

/** TL's `HookedTransformerTrainConfig`, camelCase, with TL's defaults. */
export interface HookedTransformerTrainConfig {
  numEpochs: number
  batchSize: number
  /** Default 1e-3. */
  lr?: number
  /** Seeds the shuffling of the dataset (default 0). */
  seed?: number
  /** SGD's momentum (default 0; Adam ignores it, as TL). */
  momentum?: number
  /** Clip the gradients' total 2-norm to this (default none). */
  maxGradNorm?: number | null
  /** With Adam/AdamW, a weight decay switches to AdamW, as TL; with SGD, L2 in the gradient. */
  weightDecay?: number | null
  /** Default 'Adam'. */
  optimizerName?: OptimizerName
  /** The model's device is used; only 'cpu' is accepted for now. */
  device?: string | null
  /** Linear warmup over this many steps, as TL's LambdaLR (`lr · min(1, step / warmup)`). */
  warmupSteps?: number
  /** Save a checkpoint folder `saveDir/model_{step}` every this many steps of an epoch. */
  saveEvery?: number | null
  saveDir?: string | null
  /** Print TL's `Epoch e Samples n Step s Loss l` line every this many steps (default 50; null: never). */
  printEvery?: number | null
  /** End each epoch after this step (TL's `max_steps`). */
  maxSteps?: number | null
  /** Shuffle each epoch (default true, as TL's DataLoader). */
  shuffle?: boolean
  /** Called after every step. */
  onStep?: (info: TrainStep) => void
  /** Stops between steps; the promise rejects with `TL_ABORTED`. */
  signal?: AbortSignal
  /** A progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean
}

export interface TrainStep {
  epoch: number
  /** The step within the epoch (TL's `step`). */
  step: number
  /** Steps taken over all epochs. */
  globalStep: number
  samples: number
  loss: number
  lr: number
  gradNorm: number | null
}

export interface TrainResult {
  model: HookedTransformer
  /** The loss of every step, in order. */
  losses: number[]
}

/** A dataset: `[n, seq]` tokens, `{ tokens }`, or rows of `{ tokens }` (tensor or number[]). */
export type TrainDataset = Tensor | { tokens: Tensor } | ReadonlyArray<{ tokens: Tensor | readonly number[] }>

function datasetTokens(dataset: TrainDataset): Tensor {
  if (dataset instanceof Tensor) return dataset
  if (Array.isArray(dataset)) {
    if (dataset.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'the dataset is empty')
    const rows = dataset.map((r, i) => {
      const t = r?.tokens
      if (t instanceof Tensor) return t.ndim === 1 ? t : t.reshape(-1)
      if (Array.isArray(t)) return Tensor.from(BigInt64Array.from(t.map((v: number) => BigInt(intArg(`dataset[${i}].tokens`, v, { min: 0 })))))
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `dataset[${i}] has no tokens`)
    })
    return Tensor.stack(rows)
  }
  const t = (dataset as { tokens?: unknown }).tokens
  if (t instanceof Tensor) return t
  throw new TransformerLensError('TL_INVALID_ARGUMENT', 'the dataset must be a [n, seq] token tensor, { tokens }, or an array of { tokens }')
}

/** torch's optimiser arguments for TL's choice (Adam with a weight decay is AdamW). */
function optimizerArgs(name: OptimizerName, momentum: number, weightDecay: number | null): binding.OptimizerArgs {
  const base = { momentum: 0, nesterov: false, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
  if (name === 'SGD') return { ...base, name, momentum, weightDecay: weightDecay ?? 0 }
  return weightDecay !== null ? { ...base, name: 'AdamW', weightDecay } : { ...base, name: 'Adam' }
}

/** Trains `model` in place on `dataset` and returns it with the loss curve. */
export async function train(model: HookedTransformer, config: HookedTransformerTrainConfig, dataset: TrainDataset): Promise<TrainResult> {
  if (!(model instanceof HookedTransformer)) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'train needs a HookedTransformer')
  const c = config ?? ({} as HookedTransformerTrainConfig)
  const numEpochs = intArg('numEpochs', c.numEpochs, { min: 1 })
  const batchSize = intArg('batchSize', c.batchSize, { min: 1 })
  const lr = numberArg('lr', c.lr ?? 1e-3, { finite: true })
  const seed = intArg('seed', c.seed ?? 0, { min: 0 })
  const momentum = numberArg('momentum', c.momentum ?? 0, { finite: true })
  const maxGradNorm = c.maxGradNorm === undefined || c.maxGradNorm === null ? null : numberArg('maxGradNorm', c.maxGradNorm, { finite: true })
  const weightDecay = c.weightDecay === undefined || c.weightDecay === null ? null : numberArg('weightDecay', c.weightDecay, { finite: true })
  const optimizerName = enumArg('optimizerName', c.optimizerName ?? 'Adam', ['Adam', 'AdamW', 'SGD'] as const)
  const warmupSteps = intArg('warmupSteps', c.warmupSteps ?? 0, { min: 0 })
  const saveEvery = optIntArg('saveEvery', c.saveEvery, { min: 1 })
  const saveDir = c.saveDir === undefined || c.saveDir === null ? null : stringArg('saveDir', c.saveDir)
  const printEvery = c.printEvery === null ? undefined : optIntArg('printEvery', c.printEvery ?? 50, { min: 1 })
  const maxSteps = optIntArg('maxSteps', c.maxSteps, { min: 0 })
  const shuffle = boolArg('shuffle', c.shuffle ?? true)
  const onStep = optFnArg<(info: TrainStep) => void>('onStep', c.onStep)
  const showProgress = boolArg('progress', c.progress ?? Boolean(process.stderr.isTTY))
  if (c.device !== undefined && c.device !== null && c.device !== 'cpu') {
    throw new TransformerLensError('TL_UNSUPPORTED', `training runs on the CPU only for now (device '${c.device}')`)
  }
  if (lr < 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', `lr must be >= 0, got ${lr}`)

  const tokens = datasetTokens(dataset)
  if (tokens.ndim !== 2) throw new TransformerLensError('TL_SHAPE_MISMATCH', `the dataset's tokens must be [n, seq], got [${tokens.shape}]`)
  const n = tokens.shape[0]
  const nm = nativeModelOf(model)
  const trainer = native(() => new binding.NativeTrainer(nm, optimizerArgs(optimizerName, momentum, weightDecay)))
  const rng = new PyRandom(seed)
  const stepsPerEpoch = Math.ceil(n / batchSize)
  const perEpoch = maxSteps === undefined ? stepsPerEpoch : Math.min(stepsPerEpoch, maxSteps + 1)
  const progress = showProgress ? new Progress(numEpochs * perEpoch, 'train') : null
  const losses: number[] = []
  let globalStep = 0
  try {
    for (let epoch = 1; epoch <= numEpochs; epoch++) {
      const order = Array.from({ length: n }, (_, i) => i)
      if (shuffle) rng.shuffle(order)
      let samples = 0
      for (let step = 0; step * batchSize < n; step++) {
        if (c.signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'training was aborted')
        const rows = order.slice(step * batchSize, (step + 1) * batchSize)
        const index = Tensor.from(BigInt64Array.from(rows.map(BigInt)))
        const batch = tokens.indexSelect(0, index)
        index.dispose()
        // TL's LambdaLR: the lr of optimizer step k is lr · min(1, k / warmup).
        const stepLr = warmupSteps > 0 ? lr * Math.min(1, globalStep / warmupSteps) : lr
        const out = await nativeAsync(() => trainer.step(nm, batch.native, stepLr, maxGradNorm ?? undefined))
        batch.dispose()
        samples += rows.length
        globalStep++
        losses.push(out.loss)
        const info: TrainStep = { epoch, step, globalStep, samples, loss: out.loss, lr: stepLr, gradNorm: out.gradNorm ?? null }
        progress?.tick(`epoch ${epoch} loss ${out.loss.toFixed(4)}`)
        if (printEvery !== undefined && step % printEvery === 0) {
          progress?.clear()
          console.log(`Epoch ${epoch} Samples ${samples} Step ${step} Loss ${out.loss}`)
        }
        if (saveEvery !== undefined && saveDir !== null && step % saveEvery === 0) model.save(`${saveDir}/model_${step}`)
        onStep?.(info)
        if (maxSteps !== undefined && step >= maxSteps) break
      }
    }
  } finally {
    progress?.done()
  }
  return { model, losses }
}
