/**
 * Activation patching, as TL's `transformer_lens.patching`: run the model on corrupted tokens
 * once per index (layer, position, head, …), each time overwriting one slice of one activation
 * with its value from a clean run, and record a metric of the patched logits.
 *
 * Each patch is one `runWithHooks` with one JS hook that calls the patch setter (a
 * `sliceAssign` of the clean slice): the per-run JS work is the tensor ops TL does.
 */
import type { ActivationCache } from './cache/activation-cache'
import { TransformerLensError } from './errors'
import type { HookedTransformer } from './model/hooked-transformer'
import { Tensor } from './tensor'
import { getActName } from './utils/act-name'

/** TL's `AxisNames`: what `indexAxisNames` may list. */
export type AxisName = 'layer' | 'pos' | 'head_index' | 'head' | 'src_pos' | 'dest_pos'

/**
 * TL's `patch_setter(corrupted_activation, index, clean_activation)`: returns the patched
 * activation (same shape). `index` is one row of indices, the layer first.
 */
export type PatchSetter = (corrupted: Tensor, index: readonly number[], clean: Tensor) => Tensor

/**
 * TL's `patching_metric(logits)`: a scalar, as a 0-d/1-element Tensor or a number. The logits
 * are freed once the metric returns, so it must not keep them.
 */
export type PatchingMetric = (logits: Tensor) => Tensor | number | Promise<Tensor | number>

/** One row of TL's `index_df`: the indices in column order, or an object keyed by column name. */
export type IndexRow = readonly number[] | Readonly<Record<string, number>>

export interface PatchProgress {
  /** Patch runs finished. */
  done: number
  /** Patch runs in all. */
  total: number
}

export interface PatchOptions {
  /**
   * TL's `index_df`: the rows of indices to patch, one run each. The result is then flat
   * (`[rows.length]`), in row order. Replaces the helper's axis names.
   */
  indexDf?: readonly IndexRow[]
  /** TL's `return_index_df`: also return the rows used (`{ result, indexDf }`). */
  returnIndexDf?: boolean
  /** Called after every patch run (TL shows a tqdm bar). */
  onProgress?: (p: PatchProgress) => void
  /** Stops the sweep between runs with a `TL_ABORTED` error. */
  signal?: AbortSignal
}

export interface GenericPatchOptions extends PatchOptions {
  /** TL's `index_axis_names`: patch every combination of these axes; the result has one dim per axis. */
  indexAxisNames?: readonly AxisName[]
}

export interface PatchResultWithIndex {
  result: Tensor
  /** The rows patched: objects keyed by axis name for the axis-names form, else as given. */
  indexDf: IndexRow[]
}

/** Corrupted input: token ids `[batch, pos]`, or text tokenized with `model.toTokens`. */
export type CorruptedTokens = Tensor | string | string[]

function invalid(msg: string): TransformerLensError {
  return new TransformerLensError('TL_INVALID_ARGUMENT', msg)
}

/** TL's `make_df_from_ranges`: every combination of `range(max)` per column, last column fastest. */
export function makeDfFromRanges(columnMaxRanges: readonly number[], columnNames: readonly string[]): Record<string, number>[] {
  if (columnMaxRanges.length !== columnNames.length) throw invalid('makeDfFromRanges: one range per column name')
  const rows: Record<string, number>[] = []
  const total = columnMaxRanges.reduce((a, b) => a * b, 1)
  for (let flat = 0; flat < total; flat++) {
    const row: Record<string, number> = {}
    let rest = flat
    for (let i = columnMaxRanges.length - 1; i >= 0; i--) {
      row[columnNames[i]] = rest % columnMaxRanges[i]
      rest = Math.floor(rest / columnMaxRanges[i])
    }
    // keep the column order of columnNames
    const ordered: Record<string, number> = {}
    for (const n of columnNames) ordered[n] = row[n]
    rows.push(ordered)
  }
  return rows
}

function rowValues(row: IndexRow): number[] {
  const vals = Array.isArray(row) ? [...(row as readonly number[])] : Object.values(row as Record<string, number>)
  for (const v of vals) {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(`index rows must hold integers, got ${JSON.stringify(row)}`)
  }
  if (vals.length === 0) throw invalid('an index row is empty (its first entry must be the layer)')
  return vals
}

async function metricValue(m: Tensor | number | Promise<Tensor | number>): Promise<number> {
  const v = await m
  if (typeof v === 'number') return v
  if (v.numel() !== 1) throw invalid(`the patching metric must return a scalar, got shape [${v.shape}]`)
  return v.item()
}

/**
 * TL's `generic_activation_patch`. For each index row, runs `model` on `corruptedTokens` with a
 * hook on `getActName(activationName, row[0])` that returns `patchSetter(activation, row,
 * cleanCache[that name])`, and records `patchingMetric(logits)`.
 *
 * With `indexAxisNames` the result has shape `[max(axis) for axis]` (layer → n_layers, pos /
 * src_pos / dest_pos → seq len, head / head_index → n_heads); with `indexDf` it is flat.
 */
export async function genericActivationPatch(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  patchingMetric: PatchingMetric,
  patchSetter: PatchSetter,
  activationName: string,
  options: GenericPatchOptions & { returnIndexDf: true },
): Promise<PatchResultWithIndex>
export async function genericActivationPatch(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  patchingMetric: PatchingMetric,
  patchSetter: PatchSetter,
  activationName: string,
  options?: GenericPatchOptions & { returnIndexDf?: false },
): Promise<Tensor>
export async function genericActivationPatch(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  patchingMetric: PatchingMetric,
  patchSetter: PatchSetter,
  activationName: string,
  options?: GenericPatchOptions,
): Promise<Tensor | PatchResultWithIndex>
export async function genericActivationPatch(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  patchingMetric: PatchingMetric,
  patchSetter: PatchSetter,
  activationName: string,
  options: GenericPatchOptions = {},
): Promise<Tensor | PatchResultWithIndex> {
  const { indexAxisNames, indexDf, returnIndexDf = false, onProgress, signal } = options
  return withTokens(model, corruptedTokens, async (tokens) => {
    let rows: IndexRow[]
    let outShape: number[]
    if (indexDf == null) {
      if (indexAxisNames == null) throw invalid('genericActivationPatch needs indexAxisNames or indexDf')
      const cfg = model.cfg
      const seqLen = tokens.shape[tokens.ndim - 1]
      const maxRange: Record<AxisName, number> = {
        layer: cfg.n_layers,
        pos: seqLen,
        src_pos: seqLen,
        dest_pos: seqLen,
        head_index: cfg.n_heads,
        head: cfg.n_heads,
      }
      outShape = indexAxisNames.map((a) => {
        if (!(a in maxRange)) throw invalid(`unknown index axis '${a}' (expected one of ${Object.keys(maxRange).join(', ')})`)
        return maxRange[a]
      })
      rows = makeDfFromRanges(outShape, indexAxisNames)
    } else {
      if (indexAxisNames != null) throw invalid('pass indexAxisNames or indexDf, not both')
      rows = [...indexDf]
      outShape = [rows.length]
    }

    const out = new Float32Array(rows.length)
    const total = rows.length
    for (let c = 0; c < total; c++) {
      if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'activation patching was aborted')
      const index = rowValues(rows[c])
      const name = getActName(activationName, index[0])
      const clean = cleanCache.get(name)
      const logits = (await model.runWithHooks(tokens, {
        fwdHooks: [[name, (act: Tensor) => patchSetter(act, index, clean)]],
      })) as Tensor
      try {
        // The axis-names rows enumerate the output in row-major order, so c is the flat index too.
        out[c] = await metricValue(patchingMetric(logits))
      } finally {
        logits.dispose()
      }
      onProgress?.({ done: c + 1, total })
    }
    const result = Tensor.from(out, outShape)
    if (!returnIndexDf) return result
    return { result, indexDf: rows.map((r) => (Array.isArray(r) ? [...(r as number[])] : { ...(r as Record<string, number>) })) }
  })
}

// ---- patch setters (TL's names, camelCase) ----

function setSlice(corrupted: Tensor, clean: Tensor, idx: (number | null)[]): Tensor {
  const src = clean.get(...idx)
  try {
    return corrupted.sliceAssign(idx, src)
  } finally {
    src.dispose()
  }
}

/** Runs `fn` on the corrupted tokens, tokenizing text first (and freeing those tokens after). */
async function withTokens<T>(model: HookedTransformer, corrupted: CorruptedTokens, fn: (tokens: Tensor) => Promise<T>): Promise<T> {
  if (corrupted instanceof Tensor) return fn(corrupted)
  const tokens = model.toTokens(corrupted)
  try {
    return await fn(tokens)
  } finally {
    tokens.dispose()
  }
}

/** A setter that copies the clean slice picked by `pick(index)` into the corrupted activation. */
function slotSetter(n: number, who: string, pick: (index: readonly number[]) => (number | null)[]): PatchSetter {
  return (corrupted, index, clean) => {
    if (index.length !== n) throw invalid(`${who} expects an index of ${n} entries, got [${index}]`)
    return setSlice(corrupted, clean, pick(index))
  }
}

/** `corrupted[:, pos, ...] = clean[:, pos, ...]` for index `[layer, pos]` (residual stream, attn/mlp out). */
export const layerPosPatchSetter: PatchSetter = slotSetter(2, 'layerPosPatchSetter', (i) => [null, i[1]])

/** `corrupted[:, pos, head] = clean[:, pos, head]` for index `[layer, pos, head]` (q/k/v/z). */
export const layerPosHeadVectorPatchSetter: PatchSetter = slotSetter(3, 'layerPosHeadVectorPatchSetter', (i) => [null, i[1], i[2]])

/** `corrupted[:, :, head] = clean[:, :, head]` for index `[layer, head]` (q/k/v/z, all positions). */
export const layerHeadVectorPatchSetter: PatchSetter = slotSetter(2, 'layerHeadVectorPatchSetter', (i) => [null, null, i[1]])

/** `corrupted[:, head, :, :] = clean[:, head, :, :]` for index `[layer, head]` (attention pattern). */
export const layerHeadPatternPatchSetter: PatchSetter = slotSetter(2, 'layerHeadPatternPatchSetter', (i) => [null, i[1]])

/** `corrupted[:, head, dest, :] = clean[:, head, dest, :]` for index `[layer, head, dest_pos]`. */
export const layerHeadPosPatternPatchSetter: PatchSetter = slotSetter(3, 'layerHeadPosPatternPatchSetter', (i) => [null, i[1], i[2]])

/** `corrupted[:, head, dest, src] = clean[:, head, dest, src]` for index `[layer, head, dest_pos, src_pos]`. */
export const layerHeadDestSrcPosPatternPatchSetter: PatchSetter = slotSetter(4, 'layerHeadDestSrcPosPatternPatchSetter', (i) => [null, i[1], i[2], i[3]])

// ---- TL's get_act_patch_* helpers ----

/** The signature of every `getActPatch*` helper (TL's `partial(generic_activation_patch, …)`). */
export type ActPatchFn = {
  (model: HookedTransformer, corruptedTokens: CorruptedTokens, cleanCache: ActivationCache, patchingMetric: PatchingMetric, options: PatchOptions & { returnIndexDf: true }): Promise<PatchResultWithIndex>
  (model: HookedTransformer, corruptedTokens: CorruptedTokens, cleanCache: ActivationCache, patchingMetric: PatchingMetric, options?: PatchOptions & { returnIndexDf?: false }): Promise<Tensor>
}

function actPatch(setter: PatchSetter, activationName: string, axes: readonly AxisName[]): ActPatchFn {
  return ((model: HookedTransformer, corruptedTokens: CorruptedTokens, cleanCache: ActivationCache, patchingMetric: PatchingMetric, options: PatchOptions = {}) =>
    genericActivationPatch(model, corruptedTokens, cleanCache, patchingMetric, setter, activationName, {
      ...options,
      indexAxisNames: options.indexDf == null ? axes : undefined,
    })) as ActPatchFn
}

/** Residual stream before each block, per position: `[n_layers, pos]`. */
export const getActPatchResidPre = actPatch(layerPosPatchSetter, 'resid_pre', ['layer', 'pos'])
/** Residual stream between attention and MLP, per position: `[n_layers, pos]`. */
export const getActPatchResidMid = actPatch(layerPosPatchSetter, 'resid_mid', ['layer', 'pos'])
/** Attention layer output, per position: `[n_layers, pos]`. */
export const getActPatchAttnOut = actPatch(layerPosPatchSetter, 'attn_out', ['layer', 'pos'])
/** MLP output, per position: `[n_layers, pos]`. */
export const getActPatchMlpOut = actPatch(layerPosPatchSetter, 'mlp_out', ['layer', 'pos'])

/** Each head's output (z), per position: `[n_layers, pos, n_heads]`. */
export const getActPatchAttnHeadOutByPos = actPatch(layerPosHeadVectorPatchSetter, 'z', ['layer', 'pos', 'head'])
/** Each head's queries, per position: `[n_layers, pos, n_heads]`. */
export const getActPatchAttnHeadQByPos = actPatch(layerPosHeadVectorPatchSetter, 'q', ['layer', 'pos', 'head'])
/** Each head's keys, per position: `[n_layers, pos, n_heads]`. */
export const getActPatchAttnHeadKByPos = actPatch(layerPosHeadVectorPatchSetter, 'k', ['layer', 'pos', 'head'])
/** Each head's values, per position: `[n_layers, pos, n_heads]`. */
export const getActPatchAttnHeadVByPos = actPatch(layerPosHeadVectorPatchSetter, 'v', ['layer', 'pos', 'head'])
/** Each head's attention pattern, per destination position: `[n_layers, n_heads, dest_pos]`. */
export const getActPatchAttnHeadPatternByPos = actPatch(layerHeadPosPatternPatchSetter, 'pattern', ['layer', 'head_index', 'dest_pos'])
/** Each head's attention pattern, per (dest, src) pair: `[n_layers, n_heads, dest_pos, src_pos]`. */
export const getActPatchAttnHeadPatternDestSrcPos = actPatch(layerHeadDestSrcPosPatternPatchSetter, 'pattern', ['layer', 'head_index', 'dest_pos', 'src_pos'])

/** Each head's output (z), all positions at once: `[n_layers, n_heads]`. */
export const getActPatchAttnHeadOutAllPos = actPatch(layerHeadVectorPatchSetter, 'z', ['layer', 'head'])
/** Each head's queries, all positions: `[n_layers, n_heads]`. */
export const getActPatchAttnHeadQAllPos = actPatch(layerHeadVectorPatchSetter, 'q', ['layer', 'head'])
/** Each head's keys, all positions: `[n_layers, n_heads]`. */
export const getActPatchAttnHeadKAllPos = actPatch(layerHeadVectorPatchSetter, 'k', ['layer', 'head'])
/** Each head's values, all positions: `[n_layers, n_heads]`. */
export const getActPatchAttnHeadVAllPos = actPatch(layerHeadVectorPatchSetter, 'v', ['layer', 'head'])
/** Each head's whole attention pattern: `[n_layers, n_heads]`. */
export const getActPatchAttnHeadPatternAllPos = actPatch(layerHeadPatternPatchSetter, 'pattern', ['layer', 'head_index'])

/** Options of the `*Every` helpers: progress counts every run of every sub-sweep. */
export interface PatchEveryOptions {
  onProgress?: (p: PatchProgress) => void
  signal?: AbortSignal
}

async function every(parts: ((o: PatchEveryOptions) => Promise<Tensor>)[], runs: number[], options: PatchEveryOptions): Promise<Tensor> {
  const total = runs.reduce((a, b) => a + b, 0)
  let before = 0
  const results: Tensor[] = []
  try {
    for (let i = 0; i < parts.length; i++) {
      const base = before
      results.push(
        await parts[i]({
          signal: options.signal,
          onProgress: options.onProgress ? (p) => options.onProgress!({ done: base + p.done, total }) : undefined,
        }),
      )
      before += runs[i]
    }
    return Tensor.stack(results, 0)
  } finally {
    for (const r of results) r.dispose()
  }
}

/** TL's `get_act_patch_attn_head_all_pos_every`: out, q, k, v, pattern stacked: `[5, n_layers, n_heads]`. */
export function getActPatchAttnHeadAllPosEvery(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  metric: PatchingMetric,
  options: PatchEveryOptions = {},
): Promise<Tensor> {
  const fns = [getActPatchAttnHeadOutAllPos, getActPatchAttnHeadQAllPos, getActPatchAttnHeadKAllPos, getActPatchAttnHeadVAllPos, getActPatchAttnHeadPatternAllPos]
  const n = model.cfg.n_layers * model.cfg.n_heads
  return every(
    fns.map((f) => (o: PatchEveryOptions) => f(model, corruptedTokens, cleanCache, metric, o)),
    fns.map(() => n),
    options,
  )
}

/**
 * TL's `get_act_patch_attn_head_by_pos_every`: out, q, k, v, pattern (the pattern result
 * rearranged to `[layer, pos, head]`) stacked: `[5, n_layers, pos, n_heads]`.
 */
export async function getActPatchAttnHeadByPosEvery(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  metric: PatchingMetric,
  options: PatchEveryOptions = {},
): Promise<Tensor> {
  return withTokens(model, corruptedTokens, async (tokens) => {
    const fns = [getActPatchAttnHeadOutByPos, getActPatchAttnHeadQByPos, getActPatchAttnHeadKByPos, getActPatchAttnHeadVByPos]
    const parts = fns.map((f) => (o: PatchEveryOptions) => f(model, tokens, cleanCache, metric, o))
    parts.push(async (o: PatchEveryOptions) => {
      const r = await getActPatchAttnHeadPatternByPos(model, tokens, cleanCache, metric, o)
      try {
        return r.permute(0, 2, 1)
      } finally {
        r.dispose()
      }
    })
    const n = model.cfg.n_layers * model.cfg.n_heads * tokens.shape[tokens.ndim - 1]
    return await every(parts, parts.map(() => n), options)
  })
}

/** TL's `get_act_patch_block_every`: resid_pre, attn_out, mlp_out stacked: `[3, n_layers, pos]`. */
export async function getActPatchBlockEvery(
  model: HookedTransformer,
  corruptedTokens: CorruptedTokens,
  cleanCache: ActivationCache,
  metric: PatchingMetric,
  options: PatchEveryOptions = {},
): Promise<Tensor> {
  return withTokens(model, corruptedTokens, async (tokens) => {
    const fns = [getActPatchResidPre, getActPatchAttnOut, getActPatchMlpOut]
    const n = model.cfg.n_layers * tokens.shape[tokens.ndim - 1]
    return await every(
      fns.map((f) => (o: PatchEveryOptions) => f(model, tokens, cleanCache, metric, o)),
      fns.map(() => n),
      options,
    )
  })
}
