/**
 * Training a tuned lens with tuned-lens 0.2.0's recipe (the defaults of `tuned-lens train`):
 * SGD with Nesterov momentum 0.9 at lr `lr_scale · (1 - momentum)`, weight decay 1e-3,
 * gradient clipping to 1.0, the KL divergence from the model's final distribution at the same
 * position, a linear learning-rate decay to 0 over `numSteps`, and `tokensPerStep` tokens per
 * step (micro-batches accumulated). The numbers run in Rust (crates/engine/src/lens/train.rs).
 */
import { nativeAsync, native, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { HookedTransformer, nativeModelOf } from '../model/hooked-transformer'
import { Tensor, wrapT } from '../tensor'
import { boolArg, intArg, numberArg, optFnArg } from '../utils/args'
import { Progress } from '../train/progress'
import { TunedLens } from './lenses'

export interface TrainTunedLensOptions {
  /** Optimiser steps (default 250, as tuned-lens). */
  numSteps?: number
  /** Tokens per step (default 2^18, as tuned-lens); rounded up to whole rows. */
  tokensPerStep?: number
  /** Rows per forward pass within a step (default: all of a step's rows at once, at most 32). */
  microBatchSize?: number
  /** Scales tuned-lens's default lr of 1.0 (SGD: lr = lrScale · (1 - momentum)). */
  lrScale?: number
  momentum?: number
  weightDecay?: number
  /** Linear warmup steps before the decay (default 0, as tuned-lens for SGD). */
  warmupSteps?: number
  onStep?: (info: { step: number; lr: number; losses: number[] }) => void
  signal?: AbortSignal
  /** A progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean
}

export interface TrainTunedLensResult {
  /** Per step, each layer's KL (nats) before that step's update. */
  losses: number[][]
}

/** transformers' `get_linear_schedule_with_warmup(opt, W, N - W)` multiplier at step `s`. */
function schedule(s: number, numSteps: number, warmup: number): number {
  if (s < warmup) return s / Math.max(1, warmup)
  const total = numSteps - warmup
  return Math.max(0, (total - s) / Math.max(1, total - warmup))
}

function trainer(lens: TunedLens, model: HookedTransformer, momentum: number, weightDecay: number): binding.NativeLensTrainer {
  if (!(lens instanceof TunedLens)) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'expected a TunedLens')
  if (lens.length !== model.cfg.n_layers) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `the lens has ${lens.length} translators, the model ${model.cfg.n_layers} layers`)
  }
  const d = lens.config.d_model
  const ws = lens.translators.map((t) => t.weight.native)
  const zeros = lens.config.bias ? [] : lens.translators.map(() => Tensor.zeros([d]))
  const bs = lens.config.bias ? lens.translators.map((t) => t.bias!.native) : zeros.map((z) => z.native)
  try {
    return native(() => new binding.NativeLensTrainer(nativeModelOf(model), ws, bs, lens.config.bias, momentum, weightDecay))
  } finally {
    zeros.forEach((z) => z.dispose())
  }
}

/**
 * Trains `lens`'s translators on `model` over `tokens` (`[n, seq]`, cycled in order) and writes
 * them back into the lens. Use the residual stream the lens will read: a lens is tied to the
 * model's processing (train and apply it on the same model).
 */
export async function trainTunedLens(lens: TunedLens, model: HookedTransformer, tokens: Tensor, options: TrainTunedLensOptions = {}): Promise<TrainTunedLensResult> {
  const numSteps = intArg('numSteps', options.numSteps ?? 250, { min: 1 })
  const tokensPerStep = intArg('tokensPerStep', options.tokensPerStep ?? 2 ** 18, { min: 1, max: 2 ** 40 })
  const lrScale = numberArg('lrScale', options.lrScale ?? 1, { finite: true })
  const momentum = numberArg('momentum', options.momentum ?? 0.9, { finite: true })
  const weightDecay = numberArg('weightDecay', options.weightDecay ?? 1e-3, { finite: true })
  const warmup = intArg('warmupSteps', options.warmupSteps ?? 0, { min: 0, max: numSteps })
  const onStep = optFnArg<NonNullable<TrainTunedLensOptions['onStep']>>('onStep', options.onStep)
  const showProgress = boolArg('progress', options.progress ?? Boolean(process.stderr.isTTY))
  if (!(tokens instanceof Tensor) || tokens.ndim !== 2) throw new TransformerLensError('TL_SHAPE_MISMATCH', 'tokens must be a [n, seq] Tensor')
  const [n, seq] = tokens.shape
  const rowsPerStep = Math.ceil(tokensPerStep / seq)
  const micro = intArg('microBatchSize', options.microBatchSize ?? Math.min(rowsPerStep, 32), { min: 1 })
  const nm = nativeModelOf(model)
  const t = trainer(lens, model, momentum, weightDecay)
  const progress = showProgress ? new Progress(numSteps, 'tuned lens') : null
  const losses: number[][] = []
  let next = 0
  const take = (k: number): Tensor => {
    const rows = Array.from({ length: k }, () => {
      const r = next
      next = (next + 1) % n
      return BigInt(r)
    })
    const idx = Tensor.from(BigInt64Array.from(rows))
    try {
      return tokens.indexSelect(0, idx)
    } finally {
      idx.dispose()
    }
  }
  try {
    for (let s = 0; s < numSteps; s++) {
      if (options.signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'tuned-lens training was aborted')
      const batches: Tensor[] = []
      for (let left = rowsPerStep; left > 0; left -= micro) batches.push(take(Math.min(micro, left)))
      const lr = lrScale * (1 - momentum) * schedule(s, numSteps, warmup)
      const l = await nativeAsync(() => t.step(nm, batches.map((b) => b.native), lr))
      batches.forEach((b) => b.dispose())
      losses.push(l)
      progress?.tick(`mean KL ${(l.reduce((a, b) => a + b, 0) / l.length).toFixed(4)}`)
      onStep?.({ step: s, lr, losses: l })
    }
  } finally {
    progress?.done()
  }
  const out = native(() => t.translators()).map(wrapT)
  const L = lens.length
  for (let i = 0; i < L; i++) lens.setTranslator(i, out[i], lens.config.bias ? out[L + i] : null)
  if (!lens.config.bias) out.slice(L).forEach((b) => b.dispose())
  return { losses }
}

/**
 * Each layer's KL divergence (nats, mean over positions) from the model's final distribution,
 * for `lens` (a TunedLens) or the logit lens (`lens` null), on `tokens` — how tuned-lens scores
 * a lens.
 */
export async function lensKlByLayer(lens: TunedLens | null, model: HookedTransformer, tokens: Tensor): Promise<number[]> {
  if (!(tokens instanceof Tensor) || tokens.ndim !== 2) throw new TransformerLensError('TL_SHAPE_MISMATCH', 'tokens must be a [n, seq] Tensor')
  const d = model.cfg.d_model
  let t: binding.NativeLensTrainer
  if (lens === null) {
    const zw = Array.from({ length: model.cfg.n_layers }, () => Tensor.zeros([d, d]))
    const zb = Array.from({ length: model.cfg.n_layers }, () => Tensor.zeros([d]))
    try {
      t = native(() => new binding.NativeLensTrainer(nativeModelOf(model), zw.map((z) => z.native), zb.map((z) => z.native), true, 0, 0))
    } finally {
      ;[...zw, ...zb].forEach((z) => z.dispose())
    }
  } else {
    t = trainer(lens, model, 0, 0)
  }
  return nativeAsync(() => t.evaluate(nativeModelOf(model), tokens.native, lens === null))
}
