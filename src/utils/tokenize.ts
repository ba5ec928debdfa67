/**
 * TL's `utils.tokenize_and_concatenate` over in-memory text: join the texts with EOS, tokenize,
 * cut into rows of `maxLength` (a BOS column first with `addBosToken`), drop the ragged end.
 */
import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { opt } from '../model/options'
import { TokenizerView } from '../model/tokenizer'
import { Tensor } from '../tensor'
import { I32_MAX, intArg, invalidArg, U32_MAX } from './args'

export interface TokenizeAndConcatenateOptions {
  /** Row length, BOS included (default 1024). TL: `max_length`. */
  maxLength?: number
  /** The field holding the text when rows are objects (default 'text'). TL: `column_name`. */
  columnName?: string
  /** Start each row with BOS (default true). TL: `add_bos_token`. */
  addBosToken?: boolean
  /**
   * TL maps the dataset with `num_proc` workers (default 10), and HF `datasets` gives each worker
   * a contiguous shard, tokenized on its own: the shards, and so the rows, depend on it.
   * TL: `num_proc`.
   */
  numProc?: number
  /** TL's `streaming` (one shard, no workers). */
  streaming?: boolean
  /** HF `datasets.map`'s batch size (1000): each batch of a shard is joined on its own. */
  batchSize?: number
}

/** Rows as TL's dataset column: strings, or objects holding one in `columnName`. */
export type TextRows = readonly string[] | readonly Record<string, unknown>[]

const NUM_CHUNKS = 20

/** HF `datasets`' `shard(num_shards, index, contiguous=True)` bounds. */
function shardBounds(n: number, numShards: number): [number, number][] {
  const div = Math.floor(n / numShards)
  const mod = n % numShards
  const out: [number, number][] = []
  for (let i = 0; i < numShards; i++) {
    const start = div * i + Math.min(i, mod)
    out.push([start, start + div + (i < mod ? 1 : 0)])
  }
  return out
}

/** TL's inner `tokenize_function` for one batch of texts: rows of `seqLen` ids (before BOS). */
function tokenizeBatch(texts: string[], tok: TokenizerView, eos: string, padId: number, seqLen: number): number[][] {
  const full = texts.join(eos)
  if (full.trim() === '') return []
  // Python slices strings by code point; so does Array.from.
  const chars = Array.from(full)
  const chunkLength = Math.floor((chars.length - 1) / NUM_CHUNKS) + 1
  let ids: number[] = []
  for (let i = 0; i < NUM_CHUNKS; i++) {
    const chunk = chars.slice(i * chunkLength, (i + 1) * chunkLength).join('')
    // The tokenizer's own special tokens are added per chunk, as the HF tokenizer call does.
    // TL pads the chunks to one length and then drops every pad id, which is the same as
    // concatenating them and dropping pad ids, *including real tokens equal to the pad id*:
    // with a model's tokenizer (pad = EOS) the EOS separators go too. Kept as TL.
    for (const id of tok.encode(chunk, { addSpecialTokens: true })) if (id !== padId) ids.push(id)
  }
  let numBatches: number
  if (ids.length < seqLen) {
    numBatches = 1
    ids = ids.concat(new Array<number>(seqLen - ids.length).fill(padId))
  } else {
    numBatches = Math.floor(ids.length / seqLen)
  }
  const rows: number[][] = []
  for (let b = 0; b < numBatches; b++) rows.push(ids.slice(b * seqLen, (b + 1) * seqLen))
  return rows
}

/**
 * `[n_rows, maxLength]` int64 tokens from `texts` (strings, or objects with a `columnName`
 * field) with the tokenizer of `model` (a HookedTransformer or its TokenizerView), as TL's
 * `tokenize_and_concatenate` on a HF dataset of those rows.
 *
 * A tokenizer without a pad token gets one in TL (`<PAD>`, the next free id); its id pads a
 * short text here too, though the tokenizer itself is not changed.
 */
export function tokenizeAndConcatenate(texts: TextRows, model: HookedTransformer | TokenizerView, options: TokenizeAndConcatenateOptions = {}): Tensor {
  const tok = model instanceof TokenizerView ? model : model.tokenizer
  if (tok === null) throw new TransformerLensError('TL_TOKENIZER', 'this model has no tokenizer')
  if (!Array.isArray(texts)) throw invalidArg('texts', 'an array of strings or rows', texts)
  const maxLength = intArg('maxLength', opt<unknown>(options, 'maxLength', 1024), { min: 1, max: I32_MAX })
  const column = opt(options, 'columnName', 'text')
  const addBos = opt(options, 'addBosToken', true)
  const streaming = opt(options, 'streaming', false)
  const batchSize = intArg('batchSize', opt<unknown>(options, 'batchSize', 1000), { min: 1, max: U32_MAX })
  if (tok.eosTokenId === null) throw new TransformerLensError('TL_TOKENIZER', 'Tokenizer must have an EOS token.')
  if (addBos && tok.bosTokenId === null) throw new TransformerLensError('TL_TOKENIZER', 'Tokenizer must have a BOS token to add one.')
  const rowsIn: string[] = texts.map((r, i) => {
    const v = typeof r === 'string' ? r : r[column]
    if (typeof v !== 'string') throw new TransformerLensError('TL_INVALID_ARGUMENT', `row ${i} has no string '${column}'`)
    return v
  })
  const eos = tok.decode([tok.eosTokenId])
  const padId = tok.padTokenId ?? tok.vocabSize
  const seqLen = addBos ? maxLength - 1 : maxLength
  if (seqLen < 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `maxLength ${maxLength} leaves no room for tokens`)
  // datasets.map: num_proc is capped at the number of rows; each worker maps one contiguous shard.
  const numProc = streaming ? 1 : Math.max(1, Math.min(intArg('numProc', opt<unknown>(options, 'numProc', 10), { min: 1, max: U32_MAX }), rowsIn.length))
  const out: number[][] = []
  for (const [a, b] of shardBounds(rowsIn.length, numProc)) {
    for (let i = a; i < b; i += batchSize) {
      for (const row of tokenizeBatch(rowsIn.slice(i, Math.min(i + batchSize, b)), tok, eos, padId, seqLen)) {
        out.push(addBos ? [tok.bosTokenId as number, ...row] : row)
      }
    }
  }
  const flat = new BigInt64Array(out.length * maxLength)
  out.forEach((row, r) => row.forEach((id, c) => (flat[r * maxLength + c] = BigInt(id))))
  return Tensor.from(flat, [out.length, maxLength])
}
