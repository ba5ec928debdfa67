/**
 * TL's `head_detector`: score every attention head against a detection pattern (the attention
 * pattern a kind of head is expected to show).
 */
import type { ActivationCache } from './cache/activation-cache'
import { TransformerLensError } from './errors'
import type { HookedTransformer } from './model/hooked-transformer'
import { Tensor } from './tensor'
import { getActName } from './utils/act-name'

/** TL's `HeadName`: the built-in detection patterns. */
export type HeadName = 'previous_token_head' | 'duplicate_token_head' | 'induction_head'
export const HEAD_NAMES: readonly HeadName[] = ['previous_token_head', 'duplicate_token_head', 'induction_head']
/** TL's `ErrorMeasure`. */
export type ErrorMeasure = 'abs' | 'mul'

export interface DetectHeadOptions {
  /**
   * Only score these heads (the rest are -1): `[layer, head]` pairs or `{ layer: heads[] }`
   * (an object or a Map).
   */
  heads?: readonly (readonly [number, number])[] | Readonly<Record<number, readonly number[]>> | ReadonlyMap<number, readonly number[]>
  /** A cache of this sequence's run without a batch dim (TL: `remove_batch_dim=True`); saves a run. Never modified. */
  cache?: ActivationCache
  /** Ignore attention paid to position 0. */
  excludeBos?: boolean
  /** Ignore attention paid to the query's own position. */
  excludeCurrentToken?: boolean
  /** `'mul'` (default): share of attention on the pattern's 1s. `'abs'`: 1 - summed per-row absolute difference, rounded to 3 places. */
  errorMeasure?: ErrorMeasure
}

function invalid(msg: string): TransformerLensError {
  return new TransformerLensError('TL_INVALID_ARGUMENT', msg)
}

function tokenIds(tokens: Tensor): number[] {
  // tokens: [1, pos] (TL computes the built-in patterns from one prompt)
  return Array.from(tokens.get(0).toArray() as ArrayLike<number | bigint>, Number)
}

function square(n: number, f: (i: number, j: number) => number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => f(i, j)))
}

/** TL's `get_previous_token_head_detection_pattern`: 1 where the key is the query's previous position. */
export function getPreviousTokenHeadDetectionPattern(tokens: Tensor): Tensor {
  const n = tokens.shape[tokens.ndim - 1]
  return toTensor(square(n, (i, j) => (j === i - 1 ? 1 : 0)))
}

function duplicateRows(ids: number[]): number[][] {
  // eq[i][j] = ids[j] == ids[i], diagonal cleared, lower triangle kept
  return square(ids.length, (i, j) => (j < i && ids[j] === ids[i] ? 1 : 0))
}

/** TL's `get_duplicate_token_head_detection_pattern`: 1 where an earlier key holds the query's token. */
export function getDuplicateTokenHeadDetectionPattern(tokens: Tensor): Tensor {
  return toTensor(duplicateRows(tokenIds(tokens)))
}

/**
 * TL's `get_induction_head_detection_pattern`: the duplicate pattern shifted one key to the
 * right (the token after an earlier copy of the query's token), column 0 cleared, lower triangle.
 */
export function getInductionHeadDetectionPattern(tokens: Tensor): Tensor {
  const dup = duplicateRows(tokenIds(tokens))
  return toTensor(square(dup.length, (i, j) => (j >= 1 && j <= i ? dup[i][j - 1] : 0)))
}

/** Prints the supported head names, as TL's `get_supported_heads`. */
export function getSupportedHeads(): void {
  console.log(`Supported heads: ${JSON.stringify(HEAD_NAMES)}`)
}

function toTensor(rows: number[][]): Tensor {
  const n = rows.length
  return Tensor.from(Float32Array.from(rows.flat()), [n, rows[0]?.length ?? 0])
}

function patternRows(p: Tensor | readonly (readonly number[])[]): number[][] {
  if (p instanceof Tensor) {
    if (p.ndim !== 2) throw invalid(`the detection pattern must be 2-D, got shape [${p.shape}]`)
    const flat = Array.from(p.toArray() as ArrayLike<number | bigint>, Number)
    const [r, c] = p.shape
    return Array.from({ length: r }, (_, i) => flat.slice(i * c, (i + 1) * c))
  }
  return p.map((row) => [...row])
}

function diagMask(n: number): Tensor {
  return Tensor.from(Float32Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 0 : 1)), [n, n])
}

/**
 * TL's `compute_head_attention_similarity_score` for one head's `[q_pos, k_pos]` pattern
 * (not modified).
 */
export function computeHeadAttentionSimilarityScore(
  attentionPattern: Tensor,
  detectionPattern: Tensor,
  options: { excludeBos: boolean; excludeCurrentToken: boolean; errorMeasure: ErrorMeasure },
): number {
  const { excludeBos, excludeCurrentToken, errorMeasure } = options
  const s = attentionPattern.shape
  if (s.length !== 2 || s[0] !== s[1]) throw invalid(`Attention pattern is not square; got shape [${s}]`)
  const n = s[0]
  const temps: Tensor[] = []
  const keep = (t: Tensor): Tensor => (temps.push(t), t)
  try {
    if (errorMeasure === 'mul') {
      let att = attentionPattern
      if (excludeBos) att = keep(att.sliceAssign([null, 0], 0))
      if (excludeCurrentToken) att = keep(att.mul(keep(diagMask(n))))
      const score = keep(att.mul(detectionPattern)).sum()
      const total = keep(att.sum())
      keep(score)
      return keep(score.div(total)).item()
    }
    let diff = keep(keep(attentionPattern.sub(detectionPattern)).abs())
    if (excludeBos) diff = keep(diff.sliceAssign([null, 0], 0))
    if (excludeCurrentToken) diff = keep(diff.mul(keep(diagMask(n))))
    const v = keep(keep(diff.mean()).mul(n)).item()
    return 1 - roundTo3(v)
  } finally {
    for (const t of temps) t.dispose()
  }
}

/** Python's `round(x, 3)` (ties to even on the decimal value). */
function roundTo3(x: number): number {
  const y = x * 1000
  const r = Math.round(y)
  const fixed = Math.abs(y - Math.trunc(y)) === 0.5 && r % 2 !== 0 ? r - 1 : r
  return fixed / 1000
}

function layerToHeads(model: HookedTransformer, heads: DetectHeadOptions['heads']): Map<number, number[]> {
  const m = new Map<number, number[]>()
  if (heads == null) {
    for (let l = 0; l < model.cfg.n_layers; l++) m.set(l, Array.from({ length: model.cfg.n_heads }, (_, h) => h))
  } else if (Array.isArray(heads)) {
    for (const [l, h] of heads as readonly (readonly [number, number])[]) {
      if (!m.has(l)) m.set(l, [])
      m.get(l)!.push(h)
    }
  } else if (heads instanceof Map) {
    for (const [l, hs] of heads) m.set(Number(l), [...hs])
  } else {
    for (const [l, hs] of Object.entries(heads as Record<string, readonly number[]>)) m.set(Number(l), [...hs])
  }
  return m
}

/**
 * TL's `detect_head`: a `[n_layers, n_heads]` float32 Tensor of scores (-1 for heads not in
 * `heads`).
 *
 * As in TL: with a list of prompts and a built-in head name, the result is the mean over the
 * prompts of `detectHead(model, prompt, name)` with *default* options (TL's recursion passes
 * none of `heads`, `cache`, the exclude flags or `errorMeasure` on). With a Tensor pattern and a
 * list, the prompts are tokenized together and the first row's pattern is scored.
 */
export async function detectHead(
  model: HookedTransformer,
  seq: string | string[],
  detectionPattern: HeadName | Tensor | readonly (readonly number[])[],
  options: DetectHeadOptions = {},
): Promise<Tensor> {
  const { heads, cache, excludeBos = false, excludeCurrentToken = false, errorMeasure = 'mul' } = options
  if (errorMeasure !== 'abs' && errorMeasure !== 'mul') {
    throw invalid(`Invalid error_measure=${String(errorMeasure)}; valid values are ('abs', 'mul')`)
  }
  const cfg = model.cfg
  const tokens = model.toTokens(seq)
  const temps: Tensor[] = [tokens]
  try {
    const seqLen = tokens.shape[tokens.ndim - 1]
    let pattern: Tensor
    if (typeof detectionPattern === 'string') {
      if (!HEAD_NAMES.includes(detectionPattern)) {
        throw invalid(`detection_pattern must be a Tensor or one of head names: ${JSON.stringify(HEAD_NAMES)}; got ${detectionPattern}`)
      }
      if (Array.isArray(seq)) {
        const scores: Tensor[] = []
        try {
          for (const s of seq) scores.push(await detectHead(model, s, detectionPattern))
          const st = Tensor.stack(scores, 0)
          temps.push(st)
          return st.mean(0)
        } finally {
          for (const s of scores) s.dispose()
        }
      }
      const make = {
        previous_token_head: getPreviousTokenHeadDetectionPattern,
        duplicate_token_head: getDuplicateTokenHeadDetectionPattern,
        induction_head: getInductionHeadDetectionPattern,
      }[detectionPattern]
      pattern = make(tokens)
      temps.push(pattern)
    } else {
      pattern = detectionPattern instanceof Tensor ? detectionPattern.to('float32') : toTensor(patternRows(detectionPattern))
      temps.push(pattern)
    }
    const rows = patternRows(pattern)

    if (errorMeasure === 'mul' && !rows.every((r) => r.every((v) => v === 0 || v === 1))) {
      console.warn("Using detection pattern with values other than 0 or 1 with error_measure 'mul'")
    }
    if (!(1 < seqLen && seqLen < cfg.n_ctx)) {
      throw invalid("The sequence must be non-empty and must fit within the model's context window.")
    }
    const lowerTri = rows.every((r, i) => r.every((v, j) => j <= i || v === 0))
    if (!lowerTri || rows.length !== seqLen || rows.some((r) => r.length !== seqLen)) {
      throw invalid(
        `The detection pattern must be a lower triangular matrix of shape (sequence_length, sequence_length); sequence_length=${seqLen}; got detection patern of shape [${pattern.shape}]`,
      )
    }

    const layer2heads = layerToHeads(model, heads)
    let patterns: Map<number, Tensor>
    if (cache) {
      patterns = new Map()
      for (const l of layer2heads.keys()) patterns.set(l, cache.get('pattern', l, 'attn'))
    } else {
      const names = new Set([...layer2heads.keys()].map((l) => getActName('pattern', l, 'attn')))
      const [logits, own] = await model.runWithCache(tokens, { namesFilter: (n: string) => names.has(n) })
      logits.dispose()
      patterns = new Map()
      for (const l of layer2heads.keys()) {
        const p = own.get('pattern', l, 'attn').get(0) // TL: remove_batch_dim keeps batch row 0
        temps.push(p)
        patterns.set(l, p)
      }
      own.dispose()
    }

    const matches = new Float32Array(cfg.n_layers * cfg.n_heads).fill(-1)
    for (const [layer, hs] of layer2heads) {
      if (!(layer >= 0 && layer < cfg.n_layers)) throw invalid(`layer ${layer} is out of range (n_layers=${cfg.n_layers})`)
      let layerPattern = patterns.get(layer)!
      if (layerPattern.ndim === 4 && layerPattern.shape[0] === 1) {
        layerPattern = layerPattern.get(0)
        temps.push(layerPattern)
      }
      for (const head of hs) {
        if (!(head >= 0 && head < cfg.n_heads)) throw invalid(`head ${head} is out of range (n_heads=${cfg.n_heads})`)
        const hp = layerPattern.get(head)
        try {
          matches[layer * cfg.n_heads + head] = computeHeadAttentionSimilarityScore(hp, pattern, { excludeBos, excludeCurrentToken, errorMeasure })
        } finally {
          hp.dispose()
        }
      }
    }
    return Tensor.from(matches, [cfg.n_layers, cfg.n_heads])
  } finally {
    for (const t of temps) t.dispose()
  }
}
