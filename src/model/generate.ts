import { fromNative, native, nativeAsync, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { sampleArgs } from '../utils/sample-logits'
import { withAbort } from './abort'
import { opt } from './options'
import type { TokenizerView } from './tokenizer'
import type { ActivationCache } from '../cache/activation-cache'
import { boolArg, enumArg, intArg, invalidArg, optFnArg, tokenIdArg, tokenIdsArg, U32_MAX } from '../utils/args'

/** TL's `generate` options (snake_case names accepted too). */
export interface GenerateOptions {
  /** Default 10. TL: `max_new_tokens`. */
  maxNewTokens?: number
  /** Stop a row at an end token; finished rows are padded with it. Default true. */
  stopAtEos?: boolean
  /** End token(s); default the tokenizer's EOS. */
  eosTokenId?: number | number[]
  /** Sample (default true) or take the argmax. */
  doSample?: boolean
  topK?: number
  topP?: number
  /** Default 1; 0 is greedy. */
  temperature?: number
  /** Subtracts `freqPenalty × count` from each token's logit. */
  freqPenalty?: number
  /** Decode through the KV cache (default true). TL: `use_past_kv_cache`. */
  useKvCache?: boolean
  prependBos?: boolean
  paddingSide?: 'left' | 'right'
  /**
   * 'input' (default: same kind as the input), 'str', 'tokens' or 'embeds' (`[batch, pos,
   * d_model]`: the prompt's embeddings, then the generated tokens'). From an embeddings prompt,
   * 'tokens' and 'str' hold the generated tokens only, as TL.
   */
  returnType?: 'input' | 'str' | 'tokens' | 'embeds'
  /** Seeds the sampler: the same seed gives the same tokens. */
  seed?: number | bigint
  /** `[batch, pos]` padding mask for a token prompt (default: TL's rule from pad tokens). */
  attentionMask?: Tensor
  /** Stops the generation between steps (and between blocks). */
  signal?: AbortSignal
  /** Called after each step with the number of new tokens so far. */
  onProgress?: (p: { step: number; total: number }) => void
  /** Accepted for TL compatibility; progress goes to `onProgress`. */
  verbose?: boolean
}

/** One step of `generateStream`: a token per row, and the text each row gained. */
export interface GenerateChunk {
  step: number
  tokens: number[]
  text: string[]
  /** Rows that have produced an end token. */
  finished: boolean[]
}

/** @internal What generation needs from the model. */
export interface GenerationHost {
  native: binding.NativeModel
  tokenizer: TokenizerView | null
  defaultPrependBos: boolean
  toTokens(input: string | string[], o: { prependBos?: boolean; paddingSide?: 'left' | 'right' }): Tensor
  /** The hook plan of a step: flags (caching what `cacheFilter` picks) and, with JS hooks, the dispatcher. */
  plan(cacheFilter: ((name: string) => boolean) | null): { flags: number[]; dispatch: ((id: number, t: binding.NativeTensor) => binding.NativeTensor | undefined) | null; hookError: () => unknown }
  /** Wraps one captured step as an ActivationCache. */
  cacheOf(run: binding.NativeRun): ActivationCache
}

interface Prepared {
  gen: binding.NativeGeneration
  inputKind: InputKind
  returnType: InputKind
  promptLen: number
  batch: number
  maxNew: number
  stopTokens: number[]
}

type InputKind = 'str' | 'tokens' | 'embeds'

function prepare(host: GenerationHost, input: string | string[] | Tensor, o: GenerateOptions): Prepared {
  if (o !== null && o !== undefined && typeof o !== 'object') throw invalidArg('options', 'an object', o)
  // Every option is checked before anything runs (napi would wrap a count modulo 2^32).
  const maxNew = intArg('maxNewTokens', opt<unknown>(o, 'maxNewTokens', 10), { min: 0, max: U32_MAX })
  let tokens: Tensor
  let mask: Tensor | undefined = opt<Tensor | undefined>(o, 'attentionMask', undefined)
  if (mask !== undefined && mask !== null && !(mask instanceof Tensor)) throw invalidArg('attentionMask', 'a Tensor', mask)
  let inputKind: InputKind
  const prependBos = boolArg('prependBos', opt(o, 'prependBos', host.defaultPrependBos))
  const paddingSide = opt<'left' | 'right' | undefined>(o, 'paddingSide', undefined)
  if (paddingSide !== undefined) enumArg('paddingSide', paddingSide, ['left', 'right'])
  const stopAtEos = boolArg('stopAtEos', opt(o, 'stopAtEos', true))
  const eos = opt<unknown>(o, 'eosTokenId', undefined)
  if (eos !== undefined && eos !== null && !Array.isArray(eos)) tokenIdArg('eosTokenId', eos)
  const eosList = Array.isArray(eos) ? tokenIdsArg('eosTokenId', eos) : null
  const rt = opt<'input' | InputKind>(o, 'returnType', 'input')
  enumArg('returnType', rt, ['input', 'str', 'tokens', 'embeds'])
  const useKvCache = boolArg('useKvCache', opt(o, 'useKvCache', opt(o, 'usePastKvCache', true)))
  const sample = sampleArgs(o, boolArg('doSample', opt(o, 'doSample', true)))
  optFnArg('onProgress', opt<unknown>(o, 'onProgress', undefined))
  if (typeof input === 'string' || Array.isArray(input)) {
    if (host.tokenizer === null) throw new TransformerLensError('TL_TOKENIZER', 'this model has no tokenizer: pass a token Tensor')
    inputKind = 'str'
    tokens = host.toTokens(input, { prependBos, paddingSide })
  } else if (input instanceof Tensor) {
    if (input.isFloatingPoint()) {
      if (input.ndim !== 3) throw new TransformerLensError('TL_SHAPE_MISMATCH', `generate takes [batch, pos, d_model] embeddings, got shape [${input.shape}]`)
      inputKind = 'embeds'
      tokens = input
    } else {
      inputKind = 'tokens'
      tokens = input.ndim === 1 ? input.reshape([1, input.shape[0]]) : input
    }
  } else {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', 'input must be a string, an array of strings, a Tensor of tokens or a Tensor of embeddings')
  }
  if (inputKind !== 'embeds' && tokens.ndim !== 2) throw new TransformerLensError('TL_SHAPE_MISMATCH', `generate takes [batch, pos] tokens, got shape [${tokens.shape}]`)
  const [batch, promptLen] = tokens.shape
  // A padded batch of tokens gets its mask from TL's rule; a single row has no padding.
  if (mask === undefined && batch > 1 && host.tokenizer !== null && inputKind !== 'embeds') {
    const side = paddingSide ?? host.tokenizer.paddingSide
    mask = host.tokenizer.attentionMask(tokens, prependBos, side === 'left')
  }
  let stopTokens: number[] = []
  let eosPad = 0
  if (stopAtEos) {
    const tokEos = host.tokenizer?.eosTokenId ?? null
    if (eos === undefined || eos === null) {
      if (tokEos === null) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'stopAtEos needs an eosTokenId: the model has no tokenizer EOS')
      stopTokens = [tokEos]
      eosPad = tokEos
    } else if (typeof eos === 'number') {
      stopTokens = [eos]
      eosPad = eos
    } else if (eosList !== null) {
      if (eosList.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'eosTokenId must not be an empty list')
      stopTokens = eosList
      eosPad = tokEos ?? eosList[0]
    }
  }
  const returnType = rt === 'input' ? inputKind : rt
  if (returnType === 'str' && host.tokenizer === null) throw new TransformerLensError('TL_TOKENIZER', "returnType 'str' needs a tokenizer")
  const args: binding.GenerateArgs = {
    maxNewTokens: maxNew,
    stopTokens,
    eosPad,
    useKvCache,
    sample,
  }

  const gen = native(() => host.native.startGeneration(tokens.native, mask?.native, args))
  return { gen, inputKind, returnType, promptLen, batch, maxNew, stopTokens }
}

/** One or more steps; JS hooks run step by step on the JS thread. */
async function advance(host: GenerationHost, p: Prepared, steps: number, signal: AbortSignal | undefined, cacheFilter: ((n: string) => boolean) | null = null): Promise<number[]> {
  const plan = host.plan(cacheFilter)
  if (plan.dispatch === null) {
    return withAbort(signal, (abort) => nativeAsync(() => p.gen.step(steps, plan.flags, abort)))
  }
  const out: number[] = []
  for (let i = 0; i < steps; i++) {
    if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'the generation was aborted')
    let got: number[]
    try {
      got = p.gen.stepWithHooks(plan.flags, plan.dispatch)
    } catch (e) {
      throw plan.hookError() ?? fromNative(e)
    }
    if (got.length === 0) break
    out.push(...got)
    // Let timers and I/O run between steps.
    await new Promise<void>((r) => setImmediate(r))
  }
  return out
}

function finish(host: GenerationHost, p: Prepared): string | string[] | Tensor {
  if (p.returnType === 'embeds') return wrapT(native(() => p.gen.outputEmbeds()))
  // As TL: from embeddings, only the generated tokens.
  const tokens = wrapT(native(() => (p.inputKind === 'embeds' ? p.gen.newTokens() : p.gen.outputTokens())))
  if (p.returnType === 'tokens') return tokens
  const rows = tokens.toList() as number[][]
  const texts = rows.map((r) => native(() => host.native.decode(r, true)))
  return texts.length === 1 ? texts[0] : texts
}

/** TL's `generate`; the decode loop runs in Rust. */
async function runAll(host: GenerationHost, input: string | string[] | Tensor, o: GenerateOptions, cacheFilter: ((n: string) => boolean) | null): Promise<Prepared> {
  const signal = opt<AbortSignal | undefined>(o, 'signal', undefined)
  if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'the generation was aborted before it started')
  const p = prepare(host, input, o)
  const onProgress = opt<GenerateOptions['onProgress']>(o, 'onProgress', undefined)
  if (!onProgress) {
    await advance(host, p, p.maxNew, signal, cacheFilter)
  } else {
    // Progress in chunks: one pool task per chunk, not per token.
    const chunk = Math.max(1, Math.ceil(p.maxNew / 20))
    while (!native(() => p.gen.isDone())) {
      const got = await advance(host, p, chunk, signal, cacheFilter)
      onProgress({ step: native(() => p.gen.produced()), total: p.maxNew })
      if (got.length === 0) break
    }
  }
  return p
}

/** TL's `generate`; the decode loop runs in Rust. */
export async function generate(host: GenerationHost, input: string | string[] | Tensor, o: GenerateOptions = {}): Promise<string | string[] | Tensor> {
  return finish(host, await runAll(host, input, o, null))
}

/**
 * `generate` that also caches activations at every step, as `runWithCache` does for one run:
 * one ActivationCache per step (the first covers the prompt, each later one only the new
 * position, since earlier positions come from the KV cache).
 */
export async function generateWithCache(
  host: GenerationHost,
  input: string | string[] | Tensor,
  o: GenerateOptions & { namesFilter?: NamesFilter } = {},
): Promise<[string | string[] | Tensor, ActivationCache[]]> {
  const p = await runAll(host, input, o, namesFilterFn(opt<NamesFilter>(o, 'namesFilter', undefined)))
  const caches = native(() => p.gen.takeCaptured()).map((run) => host.cacheOf(run))
  return [finish(host, p), caches]
}

export type NamesFilter = string | readonly string[] | ((name: string) => boolean) | null | undefined

/** A names filter (a name, a list, a predicate; none = everything) as a predicate. */
export function namesFilterFn(f: NamesFilter): (name: string) => boolean {
  if (f == null) return () => true
  if (typeof f === 'string') return (n) => n === f
  if (typeof f === 'function') return f
  if (Array.isArray(f)) {
    const s = new Set(f)
    return (n) => s.has(n)
  }
  throw new TransformerLensError('TL_INVALID_ARGUMENT', 'namesFilter must be a name, a list of names or a predicate')
}

/**
 * Streams a generation: yields after every step with each row's new token and the text it
 * added (held back while a multi-byte character is incomplete). Breaking out of the loop stops
 * the generation.
 */
export async function* generateStream(host: GenerationHost, input: string | string[] | Tensor, o: GenerateOptions = {}): AsyncGenerator<GenerateChunk, void, void> {
  const signal = opt<AbortSignal | undefined>(o, 'signal', undefined)
  if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'the generation was aborted before it started')
  const p = prepare(host, input, o)
  const newTokens: number[][] = Array.from({ length: p.batch }, () => [])
  const emitted: string[] = new Array(p.batch).fill('')
  const finished: boolean[] = new Array(p.batch).fill(false)
  for (let step = 1; ; step++) {
    const got = await advance(host, p, 1, signal)
    if (got.length === 0) return
    const last = native(() => p.gen.isDone())
    const text = got.map((t, r) => {
      if (finished[r]) return ''
      newTokens[r].push(t)
      if (p.stopTokens.includes(t)) finished[r] = true
      if (host.tokenizer === null) return ''
      const held = !finished[r] && !last
      let full: string
      try {
        full = native(() => host.native.decode(newTokens[r], true))
      } catch (e) {
        // A tokenizer decoding with errors="strict" (Qwen v1's tokenizer_config.json may say
        // so) refuses an incomplete character: hold it back as below.
        if (held && e instanceof TransformerLensError && e.code === 'TL_TOKENIZER') return ''
        throw e
      }
      // Hold back an incomplete multi-byte character until a later token completes it.
      if (full.endsWith('\uFFFD') && held) return ''
      const piece = full.startsWith(emitted[r]) ? full.slice(emitted[r].length) : full
      emitted[r] = full
      return piece
    })
    yield { step, tokens: got, text, finished: [...finished] }
  }
}
