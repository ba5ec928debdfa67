/**
 * TL's `evals`: rough evals to compare models cheaply (sanity check, induction loss, IOI, mean
 * loss over a dataset). TL's dataset loaders download Wikitext/OWT/Pile/CodeParrot; here
 * `makeDataLoader` batches text you already hold, and nothing is downloaded.
 */
import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { opt } from '../model/options'
import { TokenizerView } from '../model/tokenizer'
import { Tensor } from '../tensor'
import { tokenizeAndConcatenate, TextRows, TokenizeAndConcatenateOptions } from '../utils/tokenize'
import { PyRandom } from './py-random'

export { IOIDataset, ioiEval } from './ioi'
export type { IOIDatasetOptions, IOIEvalOptions, IOIEvalResult, IOIItem, IOIItems, IOISample } from './ioi'
export { PyRandom } from './py-random'

/** TL's fixed sanity-check text (the first paragraph of Circuits: Zoom In). */
export const SANITY_CHECK_TEXT =
  "Many important transition points in the history of science have been moments when science 'zoomed in.' At these points, we develop a visualization or tool that allows us to see the world in a new level of detail, and a new field of science develops to study the world through this lens."

/**
 * TL's `sanity_check`: the model's loss on a fixed paragraph (BOS as the model's default). Below
 * about 5 a real model is probably fine; above 7 something is wrong. A scalar Tensor, as TL.
 */
export async function sanityCheck(model: HookedTransformer): Promise<Tensor> {
  return model.forward(SANITY_CHECK_TEXT, { returnType: 'loss' })
}

export interface InductionLossOptions {
  /** Sequences (default 4). Ignored with `tokens`. TL: `batch_size`. */
  batchSize?: number
  /** Length of the random half (default 384). Ignored with `tokens`. TL: `subseq_len`. */
  subseqLen?: number
  /** Overwrite the first token with BOS (default: the model's `default_prepend_bos`). TL: `prepend_bos`. */
  prependBos?: boolean
  /** Seed of the random first halves (default: a random seed). */
  seed?: number
  /**
   * `[batch, subseqLen]` first halves to use instead of random ones (TL draws them with
   * `torch.randint`, whose stream this port cannot reproduce: pass the same tokens to both to
   * compare with TL).
   */
  tokens?: Tensor
  /** Tokenizer whose BOS is used (default the model's). */
  tokenizer?: TokenizerView
}

/**
 * TL's `induction_loss`: random sequences repeated twice (with BOS written over the first token
 * when `prependBos`), and the mean next-token loss on the second half (positions
 * `subseqLen + 1` on of the per-token loss). Low loss there means the model has induction heads.
 *
 * TL draws the first halves from [100, 20000) with torch's RNG; here, without `tokens`, they
 * come from a CPython-style MT19937 seeded with `seed`, from [100, min(20000, d_vocab)).
 */
export async function inductionLoss(model: HookedTransformer, options: InductionLossOptions = {}): Promise<Tensor> {
  const given = opt<Tensor | undefined>(options, 'tokens', undefined)
  let batch: number
  let subseq: number
  let firstHalf: ArrayLike<number | bigint>
  if (given !== undefined) {
    if (given.ndim !== 2) throw new TransformerLensError('TL_SHAPE_MISMATCH', `tokens must be [batch, subseqLen], got [${given.shape}]`)
    ;[batch, subseq] = given.shape
    firstHalf = given.toArray() as ArrayLike<number | bigint>
  } else {
    batch = opt(options, 'batchSize', 4)
    subseq = opt(options, 'subseqLen', 384)
    for (const [k, v] of [['batchSize', batch], ['subseqLen', subseq]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `${k} must be a positive integer, got ${v}`)
    }
    const high = Math.min(20000, model.cfg.d_vocab)
    if (high <= 100) throw new TransformerLensError('TL_INVALID_ARGUMENT', `d_vocab ${model.cfg.d_vocab} leaves no tokens in [100, 20000)`)
    const rng = new PyRandom(opt(options, 'seed', Math.floor(Math.random() * 2 ** 32)))
    const ids = new Array<number>(batch * subseq)
    for (let i = 0; i < ids.length; i++) ids[i] = rng.randrange(100, high)
    firstHalf = ids
  }
  const prependBos = opt<boolean | undefined>(options, 'prependBos', undefined) ?? model.cfg.default_prepend_bos ?? true
  const seq = 2 * subseq
  const flat = new BigInt64Array(batch * seq)
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < subseq; p++) {
      const id = BigInt(firstHalf[b * subseq + p])
      flat[b * seq + p] = id
      flat[b * seq + subseq + p] = id
    }
  }
  if (prependBos) {
    const tok = opt<TokenizerView | null>(options, 'tokenizer', null) ?? model.tokenizer
    const bos = tok?.bosTokenId
    if (bos === null || bos === undefined) throw new TransformerLensError('TL_TOKENIZER', 'prependBos needs a tokenizer with a BOS token')
    for (let b = 0; b < batch; b++) flat[b * seq] = BigInt(bos)
  }
  const repeated = Tensor.from(flat, [batch, seq])
  const perToken = await model.forward(repeated, { returnType: 'loss', lossPerToken: true })
  repeated.dispose()
  const second = perToken.get(null, [subseq + 1, null])
  perToken.dispose()
  const out = second.mean()
  second.dispose()
  return out
}

/** A batch as `evaluateOnDataset` takes it: `{ tokens }` (TL's dataset rows) or the tokens. */
export type TokenBatch = { tokens: Tensor } | Tensor

export interface EvaluateOnDatasetOptions {
  /** Stop after `truncate + 1` batches, as TL (default 100). */
  truncate?: number
  /** Accepted for TL's signature; the engine runs on CPU. */
  device?: string
}

/**
 * TL's `evaluate_on_dataset`: the mean over batches of each batch's mean loss. As TL, it stops
 * once more than `truncate` batches have run (so `truncate + 1` batches count). `dataLoader` is
 * any (async) iterable of `{ tokens }` or token Tensors; they are not disposed.
 */
export async function evaluateOnDataset(model: HookedTransformer, dataLoader: Iterable<TokenBatch> | AsyncIterable<TokenBatch>, options: EvaluateOnDatasetOptions = {}): Promise<number> {
  const truncate = opt(options, 'truncate', 100)
  let runningLoss = 0
  let total = 0
  for await (const batch of dataLoader) {
    const tokens = batch instanceof Tensor ? batch : batch?.tokens
    if (!(tokens instanceof Tensor)) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'each batch must be a token Tensor or { tokens: Tensor }')
    const loss = await model.forward(tokens, { returnType: 'loss' })
    const mean = loss.mean()
    runningLoss += mean.item()
    loss.dispose()
    mean.dispose()
    total += 1
    if (total > truncate) break
  }
  if (total === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'the data loader gave no batches')
  return runningLoss / total
}

export interface DataLoaderOptions extends Omit<TokenizeAndConcatenateOptions, 'batchSize'> {
  /** Rows per loader batch (default 8). TL: `batch_size`. */
  batchSize?: number
  /** A new row order on every pass (default true, as TL's loaders). */
  shuffle?: boolean
  /** Drop the last, short batch (default true, as TL's loaders). TL: `drop_last`. */
  dropLast?: boolean
  /** Seed of the shuffles (default: a random seed). */
  seed?: number
  /** `tokenizeAndConcatenate`'s `batchSize` (HF `datasets.map`'s, 1000), which `batchSize` here is not. */
  mapBatchSize?: number
}

/**
 * Batches of `{ tokens }` rows over `tokens` (`[n_rows, seq]`), as torch's DataLoader over TL's
 * tokenized dataset: iterate it as many times as you like (a fresh shuffle each pass).
 * `dispose()` frees the rows.
 */
export class TokenDataLoader implements Iterable<{ tokens: Tensor }> {
  readonly tokens: Tensor
  readonly batchSize: number
  readonly shuffle: boolean
  readonly dropLast: boolean
  readonly #rng: PyRandom

  constructor(tokens: Tensor, options: { batchSize?: number; shuffle?: boolean; dropLast?: boolean; seed?: number } = {}) {
    if (tokens.ndim !== 2) throw new TransformerLensError('TL_SHAPE_MISMATCH', `tokens must be [n_rows, seq], got [${tokens.shape}]`)
    this.tokens = tokens
    this.batchSize = opt(options, 'batchSize', 8)
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `batchSize must be a positive integer, got ${this.batchSize}`)
    this.shuffle = opt(options, 'shuffle', true)
    this.dropLast = opt(options, 'dropLast', true)
    this.#rng = new PyRandom(opt(options, 'seed', Math.floor(Math.random() * 2 ** 32)))
  }

  /** Number of batches per pass. */
  get length(): number {
    const n = this.tokens.shape[0]
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize)
  }

  *[Symbol.iterator](): IterableIterator<{ tokens: Tensor }> {
    const n = this.tokens.shape[0]
    const order = [...Array(n).keys()]
    if (this.shuffle) this.#rng.shuffle(order)
    for (let b = 0; b < this.length; b++) {
      const ids = order.slice(b * this.batchSize, (b + 1) * this.batchSize)
      const idx = Tensor.from(new BigInt64Array(ids.map(BigInt)), [ids.length])
      const rows = this.tokens.indexSelect(0, idx)
      idx.dispose()
      yield { tokens: rows }
    }
  }

  dispose(): void {
    this.tokens.dispose()
  }
}

/**
 * TL's `make_*_data_loader` on text you hold: `tokenizeAndConcatenate(texts, model, options)`
 * rows, batched by a `TokenDataLoader` (shuffled, last short batch dropped, by default).
 */
export function makeDataLoader(texts: TextRows, model: HookedTransformer | TokenizerView, options: DataLoaderOptions = {}): TokenDataLoader {
  const tokens = tokenizeAndConcatenate(texts, model, {
    maxLength: opt<number | undefined>(options, 'maxLength', undefined),
    columnName: opt<string | undefined>(options, 'columnName', undefined),
    addBosToken: opt<boolean | undefined>(options, 'addBosToken', undefined),
    numProc: opt<number | undefined>(options, 'numProc', undefined),
    streaming: opt<boolean | undefined>(options, 'streaming', undefined),
    batchSize: opt<number | undefined>(options, 'mapBatchSize', undefined),
  })
  return new TokenDataLoader(tokens, {
    batchSize: opt(options, 'batchSize', 8),
    shuffle: opt(options, 'shuffle', true),
    dropLast: opt(options, 'dropLast', true),
    seed: opt<number | undefined>(options, 'seed', undefined),
  })
}
