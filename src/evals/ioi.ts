/**
 * TL's Indirect Object Identification eval (`evals.IOIDataset`, `evals.ioi_eval`).
 * Paper: https://arxiv.org/pdf/2211.00593.pdf
 */
import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { opt } from '../model/options'
import { TokenizerView } from '../model/tokenizer'
import { Tensor } from '../tensor'
import { PyRandom } from './py-random'

/** One IOI prompt: the text, the indirect object (" Mary") and the subject (" John"). */
export interface IOISample {
  text: string
  IO: string
  S: string
}

/** TL's `__getitem__`, as token ids (TL: LongTensors): the prompt (BOS first if `prependBos`), IO and S. */
export interface IOIItem {
  prompt: number[]
  IO: number[]
  S: number[]
}

/** Anything `ioiEval` can score: a length and items as `IOIDataset.getItem` gives them. */
export interface IOIItems {
  readonly length: number
  getItem(idx: number): IOIItem
}

export interface IOIDatasetOptions {
  /** Templates with `[A]`, `[B]` and `[NOUN_TYPE]` slots (default TL's two). */
  templates?: string[]
  /** Names for `[A]` and `[B]` (default TL's `['John', 'Mary']`). */
  names?: string[]
  /** Fillers per noun slot (default TL's LOCATION and OBJECT lists). */
  nouns?: Record<string, string[]>
  /** Number of samples (default 1000); with `symmetric`, `2 * floor(n / 2)`. TL: `num_samples`. */
  numSamples?: number
  /** Each draw also adds its A/B-swapped prompt. */
  symmetric?: boolean
  /** Start each item's prompt with the BOS token (default true). TL: `prepend_bos`. */
  prependBos?: boolean
  /**
   * The seed of the draws (default 42, TL's). TL calls `random.seed(42)` at the start of every
   * `get_sample`, so all its samples are the same draw; this port draws with CPython's generator
   * (MT19937, `random.choice` / `random.sample`), so the default dataset is TL's prompt for prompt.
   */
  seed?: number
  /**
   * Reseed before every sample, as TL does (default true). With false, the samples come from one
   * stream seeded once, and so differ from each other (not TL's behaviour).
   */
  reseedEachSample?: boolean
}

export class IOIDataset implements IOIItems {
  readonly tokenizer: TokenizerView
  readonly prependBos: boolean
  readonly templates: string[]
  readonly names: string[]
  readonly nouns: Record<string, string[]>
  readonly samples: IOISample[] = []
  readonly seed: number
  readonly reseedEachSample: boolean
  readonly #rng: PyRandom

  /** `tokenizer`: a HookedTransformer (its tokenizer is used) or a TokenizerView. */
  constructor(tokenizer: TokenizerView | HookedTransformer, options: IOIDatasetOptions = {}) {
    const tok = tokenizer instanceof TokenizerView ? tokenizer : tokenizer.tokenizer
    if (tok === null) throw new TransformerLensError('TL_TOKENIZER', 'IOIDataset needs a tokenizer')
    this.tokenizer = tok
    this.prependBos = opt(options, 'prependBos', true)
    this.templates = opt(options, 'templates', IOIDataset.getDefaultTemplates())
    this.names = opt(options, 'names', IOIDataset.getDefaultNames())
    this.nouns = opt(options, 'nouns', IOIDataset.getDefaultNouns())
    this.seed = opt(options, 'seed', 42)
    this.reseedEachSample = opt(options, 'reseedEachSample', true)
    this.#rng = new PyRandom(this.seed)
    const numSamples = opt(options, 'numSamples', 1000)
    const symmetric = opt(options, 'symmetric', false)
    const draws = symmetric ? Math.floor(numSamples / 2) : numSamples
    for (let i = 0; i < draws; i++) this.samples.push(...this.getSample(symmetric))
  }

  /** TL's `__len__`. */
  get length(): number {
    return this.samples.length
  }

  /** TL's `__getitem__` (negative indices count from the end, as Python's list). */
  getItem(idx: number): IOIItem {
    const i = idx < 0 ? idx + this.samples.length : idx
    const sample = this.samples[i]
    if (!Number.isInteger(i) || sample === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', `index ${idx} out of range for ${this.samples.length} samples`)
    const encode = (s: string) => this.tokenizer.encode(s)
    let prompt = encode(sample.text)
    if (this.prependBos) {
      if (this.tokenizer.bosTokenId === null) throw new TransformerLensError('TL_TOKENIZER', 'the tokenizer has no BOS token')
      prompt = [this.tokenizer.bosTokenId, ...prompt]
    }
    return { prompt, IO: encode(sample.IO), S: encode(sample.S) }
  }

  *[Symbol.iterator](): IterableIterator<IOIItem> {
    for (let i = 0; i < this.samples.length; i++) yield this.getItem(i)
  }

  /**
   * TL's `get_sample`: a template with its noun slots filled, two distinct names for A and B,
   * and with `symmetric` the A/B-swapped prompt too. IO and S get a leading space.
   */
  getSample(symmetric = false): IOISample[] {
    const rng = this.#rng
    if (this.reseedEachSample) rng.seed(this.seed)
    let template = rng.choice(this.templates)
    for (const [nounType, list] of Object.entries(this.nouns)) template = template.split(`[${nounType}]`).join(rng.choice(list))
    const [a, b] = rng.sample(this.names, 2)
    const fill = (x: string, y: string) => template.split('[A]').join(x).split('[B]').join(y)
    const out: IOISample[] = [{ text: fill(a, b), IO: ' ' + a, S: ' ' + b }]
    if (symmetric) out.push({ text: fill(b, a), IO: ' ' + b, S: ' ' + a })
    return out
  }

  static getDefaultNames(): string[] {
    return ['John', 'Mary']
  }

  static getDefaultTemplates(): string[] {
    return [
      '[A] and [B] went to the [LOCATION] to buy [OBJECT]. [B] handed the [OBJECT] to [A]',
      'Then, [B] and [A] went to the [LOCATION]. [B] gave the [OBJECT] to [A]',
    ]
  }

  static getDefaultNouns(): Record<string, string[]> {
    return { LOCATION: ['store', 'market'], OBJECT: ['milk', 'eggs', 'bread'] }
  }
}

export interface IOIEvalOptions {
  /** Prompts per forward pass (default 8). TL: `batch_size`. */
  batchSize?: number
  /** Samples of the default dataset (default 1000; ignored with a dataset). TL: `num_samples`. */
  numSamples?: number
  /** Symmetric default dataset (ignored with a dataset). */
  symmetric?: boolean
  /** BOS on the default dataset's prompts (default true; ignored with a dataset). */
  prependBos?: boolean
  /** Tokenizer for the default dataset (default the model's). */
  tokenizer?: TokenizerView
}

export interface IOIEvalResult {
  /** Mean of logit(IO) - logit(S) at the position predicting the first differing token. */
  logitDifference: number
  /** Fraction of prompts whose logit difference is > 0. */
  accuracy: number
  'Logit Difference': number
  Accuracy: number
}

/**
 * TL's `ioi_eval`: for each prompt, the logit of the indirect object minus that of the subject
 * at the position predicting the first token where their encodings differ; its mean and the
 * fraction that is positive. Prompts of a batch are right-padded with token 0, as TL's collate
 * (causal attention keeps padding out of the scored positions). TL shuffles the batches; the
 * result does not depend on the order, so here they run in order.
 */
export async function ioiEval(model: HookedTransformer, dataset?: IOIItems | null, options: IOIEvalOptions = {}): Promise<IOIEvalResult> {
  const batchSize = opt(options, 'batchSize', 8)
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `batchSize must be a positive integer, got ${batchSize}`)
  const ds: IOIItems =
    dataset ??
    new IOIDataset(opt<TokenizerView | HookedTransformer>(options, 'tokenizer', model), {
      numSamples: opt(options, 'numSamples', 1000),
      symmetric: opt(options, 'symmetric', false),
      prependBos: opt(options, 'prependBos', true),
    })
  if (ds.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'the IOI dataset is empty')
  let totalCorrect = 0
  let totalLogitDiff = 0
  for (let start = 0; start < ds.length; start += batchSize) {
    const items: IOIItem[] = []
    for (let i = start; i < Math.min(start + batchSize, ds.length); i++) items.push(ds.getItem(i))
    const maxLen = Math.max(...items.map((it) => it.prompt.length))
    const flat = new BigInt64Array(items.length * maxLen) // pad_sequence pads with 0
    items.forEach((it, r) => it.prompt.forEach((id, c) => (flat[r * maxLen + c] = BigInt(id))))
    const tokens = Tensor.from(flat, [items.length, maxLen])
    const logits = await model.forward(tokens, { returnType: 'logits' })
    try {
      for (const [i, it] of items.entries()) {
        const prefixLength = it.prompt.length - it.IO.length
        const minLen = Math.min(it.IO.length, it.S.length)
        let startIdx = -1
        for (let k = 0; k < minLen; k++) {
          if (it.IO[k] !== it.S[k]) {
            startIdx = k
            break
          }
        }
        if (startIdx < 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', `item ${start + i}: IO and S tokens do not differ within their common length`)
        const logitIdx = prefixLength + startIdx - 1
        if (logitIdx < 0 || logitIdx >= maxLen) throw new TransformerLensError('TL_INVALID_ARGUMENT', `item ${start + i}: position ${logitIdx} is outside the prompt`)
        const row = logits.get(i, logitIdx)
        const v = row.toArray() as ArrayLike<number>
        row.dispose()
        // float32 subtraction as TL's tensors, accumulated as Python floats.
        const diff = Math.fround(v[it.IO[startIdx]] - v[it.S[startIdx]])
        if (diff > 0) totalCorrect += 1
        totalLogitDiff += diff
      }
    } finally {
      logits.dispose()
      tokens.dispose()
    }
  }
  const logitDifference = totalLogitDiff / ds.length
  const accuracy = totalCorrect / ds.length
  return { logitDifference, accuracy, 'Logit Difference': logitDifference, Accuracy: accuracy }
}
