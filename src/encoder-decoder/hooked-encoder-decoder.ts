import * as fs from 'node:fs'

import { ActivationCache } from '../cache/activation-cache'
import { fromNative, native, nativeAsync, TransformerLensError } from '../errors'
import type { FactoredMatrix } from '../factored-matrix'
import type { FwdHook } from '../hooks/hook-point'
import { abortableDispatch, compilePlan } from '../hooks/plan'
import { FlaggedModule } from '../hooks/flagged-module'
import { withAbort } from '../model/abort'
import { namesFilterFn, NamesFilter } from '../model/generate'
import type { HookedTransformer } from '../model/hooked-transformer'
import { ensureModel } from '../model/loading'
import { modelDtypeArg, opt } from '../model/options'
import * as binding from '../native/binding'
import { architectureClass, architectureOf } from '../registry/architectures'
import { getOfficialModelName } from '../registry/models'
import { Tensor, wrapT } from '../tensor'
import { defaultDevice } from '../utils/devices'
import { boolArg, enumArg, invalidArg, stringArg, stringArrayArg, tokenIdsArg } from '../utils/args'
import {
  EncoderDecoderForwardOptions,
  EncoderDecoderGenerateOptions,
  EncoderDecoderPretrainedOptions,
  EncoderDecoderRunWithCacheOptions,
  EncoderDecoderRunWithHooksOptions,
  generateArgs,
  generateReturnType,
  maskArg,
} from './options'
import * as w from './weights'

const T5_ARCHITECTURE = 'T5ForConditionalGeneration'

/** TL's `HookedTransformerConfig` of a T5 model (snake_case fields). */
export type HookedEncoderDecoderConfig = Record<string, unknown> & {
  n_layers: number
  d_model: number
  n_ctx: number
  d_head: number
  n_heads: number
  d_vocab: number
  relative_attention_num_buckets: number
  relative_attention_max_distance: number
  tie_word_embeddings: boolean
}

export type EncoderDecoderInput = string | string[] | Tensor

/**
 * TL's `HookedEncoderDecoder`: a T5 encoder-decoder with a hook point at every TL activation
 * (`hook_embed`, `encoder.{L}.*`, `encoder_final_ln.*`, `decoder.{L}.*` with the
 * cross-attention's `decoder.{L}.cross_attn.*`, `decoder_final_ln.*`), running in Rust.
 *
 * The decoder is HuggingFace's: causal self-attention with unidirectional relative-position
 * buckets. TL 2.16.1's decoder has neither (a decoder position attends to later ones), so its
 * decoder logits differ from HF's; the encoder and the hook names are TL's.
 */
export class HookedEncoderDecoder extends FlaggedModule {
  #n: binding.NativeEncoderDecoder | null
  #cfg: HookedEncoderDecoderConfig

  private constructor(n: binding.NativeEncoderDecoder) {
    super()
    this.#n = n
    this.#cfg = JSON.parse(n.configJson())
    this.setHookTable(n.hookNames())
  }

  /**
   * Loads a `T5ForConditionalGeneration` (`t5-small`, `t5-base`, `t5-large`, or a folder) from
   * the HF cache (downloading it unless offline). No weight processing, as TL.
   */
  static async fromPretrained(modelName: string, options: EncoderDecoderPretrainedOptions = {}): Promise<HookedEncoderDecoder> {
    stringArg('modelName', modelName)
    const dtype = modelDtypeArg(options)
    const device = stringArg('device', opt(options, 'device', undefined) ?? defaultDevice())
    let official: string | null = null
    try {
      official = getOfficialModelName(modelName)
    } catch (e) {
      // A local folder is checked by its config.json when it is loaded.
      if (!fs.existsSync(modelName)) throw e
    }
    const arch = official === null ? null : architectureOf(official)
    if (arch !== null && arch !== T5_ARCHITECTURE) {
      const cls = arch === 'BertForMaskedLM' ? 'HookedEncoder' : architectureClass(arch)
      throw new TransformerLensError('TL_UNSUPPORTED', `'${modelName}' is a ${arch}, not an encoder-decoder: load it with ${cls}`)
    }
    const { dir, officialName } = await ensureModel(modelName, options)
    const n = await nativeAsync(() => binding.loadEncoderDecoder({ dir, officialName, dtype, device }))
    return new HookedEncoderDecoder(n)
  }

  get #native(): binding.NativeEncoderDecoder {
    if (this.#n === null) throw new TransformerLensError('TL_DISPOSED', 'this model was disposed')
    return this.#n
  }

  /** TL's config (snake_case fields). */
  get cfg(): HookedEncoderDecoderConfig {
    return this.#cfg
  }

  // TL's hook flags (setUseAttnResult, setUseSplitQkvInput, setUseHookMlpIn from FlaggedModule).
  // Under use_split_qkv_input / use_attn_in the decoder's cross-attention runs as without them
  // (TL 2.16.1 fails there).
  protected applyHookFlag(name: string, value: boolean): void {
    native(() => this.#native.setFlag(name, value))
    this.#cfg = JSON.parse(this.#native.configJson())
  }
  /**
   * `cfg.use_attn_in`: `hook_attn_in` fires with the self-attention's input repeated per head
   * (`[batch, pos, n_heads, d_model]`), and in the decoder `hook_cross_attn_in` on a copy of
   * `hook_resid_mid`. Excludes `use_split_qkv_input`.
   */
  setUseAttnIn(v: boolean): void {
    this.setHookFlag('use_attn_in', v)
  }

  /** The device the weights are on. */
  get device(): string {
    return this.#native.device
  }

  protected moveTo(device: string): void {
    native(() => this.#native.toDevice(device))
    this.#cfg = JSON.parse(this.#native.configJson())
  }

  /** Frees the weights now. */
  dispose(): void {
    if (this.#n !== null) native(() => this.#n!.dispose())
    this.#n = null
  }
  get disposed(): boolean {
    return this.#n === null
  }

  // ---- tokenization ----

  /**
   * TL's `to_tokens`: `[tokens, attentionMask]`, `[batch, pos]` int64, padded on the right, the
   * tokenizer's `</s>` appended; truncated to `n_ctx` (TL's `max_length`) unless `truncate: false`.
   */
  toTokens(input: string | string[], options: { truncate?: boolean } = {}): [Tensor, Tensor] {
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? stringArrayArg('input', input) : null
    if (texts === null) throw invalidArg('input', 'a string or an array of strings', input)
    const truncate = boolArg('truncate', opt(options, 'truncate', true))
    const [tokens, mask] = native(() => this.#native.toTokens(texts, truncate ? this.#cfg.n_ctx : undefined))
    return [wrapT(tokens), wrapT(mask)]
  }

  /** Decodes tokens (1-D → string, 2-D → one string per row). */
  toString(tokens: Tensor | number[], options: { skipSpecialTokens?: boolean } = {}): string | string[] {
    const skip = boolArg('skipSpecialTokens', opt(options, 'skipSpecialTokens', false))
    if (Array.isArray(tokens)) return native(() => this.#native.decode(tokenIdsArg('tokens', tokens), skip))
    if (!(tokens instanceof Tensor)) throw invalidArg('tokens', 'a Tensor or an array of token ids', tokens)
    const flat = tokenIdsArg('tokens', Array.from(tokens.toArray() as ArrayLike<number | bigint>, Number))
    if (tokens.ndim <= 1) return native(() => this.#native.decode(flat, skip))
    const w = tokens.shape[tokens.ndim - 1]
    const out: string[] = []
    for (let i = 0; i < flat.length; i += w) out.push(native(() => this.#native.decode(flat.slice(i, i + w), skip)))
    return out
  }

  #specialIds(): { pad: number; eos: number } {
    if (!this.#native.hasTokenizer()) throw new TransformerLensError('TL_TOKENIZER', 'this model has no tokenizer')
    const [pad, eos] = native(() => this.#native.specialIds())
    if (pad < 0) throw new TransformerLensError('TL_TOKENIZER', 'the tokenizer has no pad token (the decoder start token)')
    return { pad, eos }
  }

  /** TL's input handling: strings are tokenized (mask from the tokenizer, decoder from pad). */
  #inputs(input: EncoderDecoderInput, o: EncoderDecoderForwardOptions | undefined): { tokens: Tensor; mask?: Tensor; decoder: Tensor } {
    let mask = maskArg('oneZeroAttentionMask', opt<unknown>(o, 'oneZeroAttentionMask', undefined))
    let decoder = maskArg('decoderInput', opt<unknown>(o, 'decoderInput', undefined))
    let tokens: Tensor
    if (typeof input === 'string' || Array.isArray(input)) {
      const [t, m] = this.toTokens(input)
      tokens = t
      mask = mask ?? m
      decoder = decoder ?? Tensor.full([t.shape[0], 1], this.#specialIds().pad, 'int64')
    } else if (input instanceof Tensor) {
      tokens = input
      if (decoder === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'Must provide decoderInput if input is not a string or list of strings')
    } else {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', 'input must be a string, an array of strings or a Tensor of tokens')
    }
    return { tokens, mask, decoder }
  }

  async #run(input: EncoderDecoderInput, o: EncoderDecoderForwardOptions | undefined, extraHooks: readonly FwdHook[], cacheFilter: ((n: string) => boolean) | null) {
    const n = this.#native
    const returnType = enumArg('returnType', opt<unknown>(o, 'returnType', 'logits'), ['logits', null])
    const { tokens, mask, decoder } = this.#inputs(input, o)
    const plan = compilePlan(this.hookContext(), extraHooks, cacheFilter)
    const signal = opt<AbortSignal | undefined>(o, 'signal', undefined)
    if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'the run was aborted before it started')
    const want = returnType !== null
    let run: binding.NativeRun
    if (plan.dispatch) {
      const { dispatch, aborted } = abortableDispatch(plan.dispatch, signal)
      try {
        run = n.forwardWithHooks(tokens.native, decoder.native, mask?.native, want, plan.flags, dispatch)
      } catch (e) {
        throw aborted() ?? plan.hookError() ?? fromNative(e)
      }
    } else {
      run = await withAbort(signal, (abort) => nativeAsync(() => n.forward(tokens.native, decoder.native, mask?.native, want, plan.flags, abort)))
    }
    const logits = run.takeLogits()
    return { run, logits: logits ? wrapT(logits) : null }
  }

  /**
   * TL's `forward(input, decoder_input, return_type, one_zero_attention_mask)`: logits
   * `[batch, decoder_pos, d_vocab]` (null with `returnType: null`).
   */
  async forward(input: EncoderDecoderInput, options?: EncoderDecoderForwardOptions & { returnType?: 'logits' }): Promise<Tensor>
  async forward(input: EncoderDecoderInput, options?: EncoderDecoderForwardOptions): Promise<Tensor | null>
  async forward(input: EncoderDecoderInput, options?: EncoderDecoderForwardOptions): Promise<Tensor | null> {
    return (await this.#run(input, options, [], null)).logits
  }

  /** TL's `run_with_cache`: `[logits, cache]`, the cache in TL's firing order. */
  async runWithCache(input: EncoderDecoderInput, options: EncoderDecoderRunWithCacheOptions = {}): Promise<[Tensor, ActivationCache]> {
    const filter = namesFilterFn(opt<NamesFilter>(options, 'namesFilter', undefined))
    const { run, logits } = await this.#run(input, options, [], filter)
    const names = this.hookContext().names
    const dict = new Map<string, Tensor>()
    run.cacheIds().forEach((id, i) => dict.set(names[id], wrapT(run.takeCached(i)!)))
    // The cache's residual-stream helpers read HookedTransformer's names; `get` and the
    // dict-like access work on any model's names, as TL's ActivationCache.
    const cache = new ActivationCache(dict, this as unknown as HookedTransformer)
    if (opt(options, 'removeBatchDim', false)) cache.removeBatchDim()
    return [logits as Tensor, cache]
  }

  /** TL's `run_with_hooks`: `fwdHooks` for this run only (kept with `resetHooksEnd: false`). */
  async runWithHooks(input: EncoderDecoderInput, options: EncoderDecoderRunWithHooksOptions = {}): Promise<Tensor | null> {
    const hooks = opt<FwdHook[]>(options, 'fwdHooks', [])
    try {
      return (await this.#run(input, options, hooks, null)).logits
    } finally {
      if (!opt(options, 'resetHooksEnd', true)) this.keepRunHooks(hooks, [])
      else if (opt(options, 'clearContexts', false)) this.clearContexts()
    }
  }

  /**
   * TL's `generate`: the decoder starts from the pad token and adds `maxNewTokens` tokens
   * (sampled, or the argmax with `doSample: false`), stopping once every row has produced EOS.
   * The loop runs in Rust: the encoder once, the decoder through its KV cache. Returns the
   * decoder tokens `[batch, 1 + new]` (start token first), or row 0 decoded without special
   * tokens for a string input. Registered hooks fire at every step.
   */
  async generate(input: string, options?: EncoderDecoderGenerateOptions): Promise<string | Tensor>
  async generate(input: Tensor, options?: EncoderDecoderGenerateOptions): Promise<Tensor | string>
  async generate(input: string | Tensor = '', options: EncoderDecoderGenerateOptions = {}): Promise<string | Tensor> {
    const ids = this.#specialIds()
    const args = generateArgs(options, ids)
    const rt = generateReturnType(options, typeof input === 'string')
    let mask = maskArg('oneZeroAttentionMask', opt<unknown>(options, 'oneZeroAttentionMask', undefined))
    let tokens: Tensor
    if (typeof input === 'string') {
      const [t, m] = this.toTokens(input)
      tokens = t
      mask = mask ?? m
    } else if (input instanceof Tensor) {
      tokens = input
    } else {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', 'generate takes a string or a Tensor of tokens')
    }
    const plan = compilePlan(this.hookContext(), [], null)
    const n = this.#native
    let out: binding.NativeTensor
    if (plan.dispatch) {
      try {
        out = n.generateWithHooks(tokens.native, mask?.native, args, plan.flags, plan.dispatch)
      } catch (e) {
        throw plan.hookError() ?? fromNative(e)
      }
    } else {
      const signal = opt<AbortSignal | undefined>(options, 'signal', undefined)
      out = await withAbort(signal, (abort) => nativeAsync(() => n.generate(tokens.native, mask?.native, args, plan.flags, abort)))
    }
    const result = wrapT(out)
    if (rt === 'str') {
      const row = Array.from(result.toArray() as ArrayLike<number | bigint>, Number).slice(0, result.shape[1])
      return native(() => n.decode(row, true))
    }
    return result
  }

  // ---- weights ----

  /** TL's `state_dict()`: TL's keys and layouts (`encoder.0.attn.W_Q: [n_heads, d_model, d_head]`). */
  stateDict(): Map<string, Tensor> {
    return new Map(native(() => this.#native.stateDict()).map((e) => [e.name, wrapT(e.tensor)]))
  }

  /** `[d_vocab, d_model]` */
  get W_E(): Tensor {
    return w.single(this, 'embed.W_E')
  }
  /** `[d_model, d_vocab]` (the shared embedding, transposed) */
  get W_U(): Tensor {
    return w.single(this, 'unembed.W_U')
  }
  get b_U(): Tensor {
    return w.single(this, 'unembed.b_U')
  }
  /** TL raises here: T5 has no absolute positional embeddings. */
  get W_pos(): never {
    throw new TransformerLensError('TL_UNSUPPORTED', 'T5 does not have absolute positional embeddings. Uses relative positional embeddings instead.')
  }
  /** `[2 * n_layers, n_heads, d_model, d_head]`: the encoder's self-attention, then the decoder's (TL's stack). */
  get W_Q(): Tensor {
    return w.stacked(this, 'attn.W_Q')
  }
  get W_K(): Tensor {
    return w.stacked(this, 'attn.W_K')
  }
  get W_V(): Tensor {
    return w.stacked(this, 'attn.W_V')
  }
  /** `[2 * n_layers, n_heads, d_head, d_model]` */
  get W_O(): Tensor {
    return w.stacked(this, 'attn.W_O')
  }
  get b_Q(): Tensor {
    return w.stacked(this, 'attn.b_Q')
  }
  get b_K(): Tensor {
    return w.stacked(this, 'attn.b_K')
  }
  get b_V(): Tensor {
    return w.stacked(this, 'attn.b_V')
  }
  get b_O(): Tensor {
    return w.stacked(this, 'attn.b_O')
  }
  /** `[2 * n_layers, d_model, d_mlp]` */
  get W_in(): Tensor {
    return w.stacked(this, 'mlp.W_in')
  }
  get W_out(): Tensor {
    return w.stacked(this, 'mlp.W_out')
  }
  get b_in(): Tensor {
    return w.stacked(this, 'mlp.b_in')
  }
  get b_out(): Tensor {
    return w.stacked(this, 'mlp.b_out')
  }
  /** TL's `QK`: `FactoredMatrix(W_Q, W_K^T)` over the stacked layers. */
  get QK(): FactoredMatrix {
    return w.QK(this)
  }
  /** TL's `OV`: `FactoredMatrix(W_V, W_O)`. */
  get OV(): FactoredMatrix {
    return w.OV(this)
  }

  /** TL's `all_head_labels`: `EL{l}H{h}` for the encoder, then `DL{l}H{h}`. */
  allHeadLabels(): string[] {
    const out: string[] = []
    for (const p of ['EL', 'DL']) for (let l = 0; l < this.#cfg.n_layers; l++) for (let h = 0; h < this.#cfg.n_heads; h++) out.push(`${p}${l}H${h}`)
    return out
  }
}
