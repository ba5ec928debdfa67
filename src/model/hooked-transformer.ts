import { ActivationCache } from '../cache/activation-cache'
import { fromNative, native, nativeAsync, TransformerLensError } from '../errors'
import { AddHookOptions, FwdHook, HookFn, HookPoint } from '../hooks/hook-point'
import { checkFlaggedHook } from '../hooks/root-module'
import { gradEntries, GradRecord } from '../hooks/backward'
import { abortableDispatch, compilePlan, GradPlan } from '../hooks/plan'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { loadNativeModel } from './loading'
import { ForwardOptions, opt, paddingLeftArg } from './options'
import { TokenizerView, tokenizerOwner } from './tokenizer'
import { nativeTokenizer, SetTokenizerOptions, tlNativeTokenizer, TokenizerSource } from './set-tokenizer'
import * as weights from './weights'
import { WeightProperties } from './weight-properties'
import { HookedTransformerKeyValueCache, nativeKv, wrapKv } from './kv-cache'
import { withAbort } from './abort'
import { boolArg, enumArg, intArg, invalidArg, optIntArg, stringArg, stringArrayArg, tokenIdArg, tokenIdsArg, U32_MAX } from '../utils/args'
import { generate, GenerateChunk, GenerateOptions, generateStream, generateWithCache, GenerationHost, NamesFilter, namesFilterFn } from './generate'
import * as processing from './processing'
import * as parts from './forward-parts'
import { FromConfigOptions, prepareConfig } from './from-config'

/** The native model behind a HookedTransformer, for modules of this package (training, lenses). */
const NATIVE_OF = new WeakMap<HookedTransformer, () => binding.NativeModel>()
export function nativeModelOf(model: HookedTransformer): binding.NativeModel {
  const get = NATIVE_OF.get(model)
  if (get === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'expected a HookedTransformer')
  return get()
}


export type Input = string | string[] | Tensor
/** TL's `HookedTransformerConfig`, with TL's snake_case field names. */
export type HookedTransformerConfig = Record<string, unknown> & {
  n_layers: number
  d_model: number
  n_ctx: number
  d_head: number
  n_heads: number
  d_vocab: number
  model_name: string
  normalization_type: string | null
  default_prepend_bos: boolean
}

export type { NamesFilter }

export interface RunWithCacheOptions extends ForwardOptions {
  namesFilter?: NamesFilter
  removeBatchDim?: boolean
  /**
   * TL's `incl_bwd`: backpropagate from the output (which must be a scalar: pass
   * `returnType: 'loss'`) and also cache the gradient of every kept activation as `{name}_grad`.
   */
  inclBwd?: boolean
}

export interface RunWithHooksOptions extends ForwardOptions {
  fwdHooks?: FwdHook[]
  /** Backward hooks: they fire when `backward()` is called on a scalar computed from the output. */
  bwdHooks?: FwdHook[]
  resetHooksEnd?: boolean
  /** Empty the hook points' `ctx` when the run's hooks are removed. TL: `clear_contexts`. */
  clearContexts?: boolean
}

type ForwardResult = Tensor | { logits: Tensor; loss: Tensor } | null


/** A transformer with a hook point at every TL activation, running in Rust. */
export class HookedTransformer extends WeightProperties {
  #n: binding.NativeModel | null
  #cfg: HookedTransformerConfig
  /** The tokenizer (null for models without one). */
  readonly tokenizer: TokenizerView | null

  private constructor(n: binding.NativeModel) {
    super()
    this.#n = n
    this.#cfg = this.#refresh(n)
    this.tokenizer = n.hasTokenizer() ? new TokenizerView(n) : null
    NATIVE_OF.set(this, () => this.#native)
  }

  /**
   * TL's `HookedTransformer(cfg, tokenizer)`: a model of the config (TL's snake_case
   * `HookedTransformerConfig` fields, TL's defaults and derived fields) with weights initialised
   * by `cfg.init_mode` (gpt2, xavier_uniform/normal, kaiming_uniform/normal, muP) at TL's scales,
   * from a seeded stream of our own (not torch's bits).
   */
  static fromConfig(cfg: Partial<HookedTransformerConfig> & Record<string, unknown>, options: FromConfigOptions = {}): HookedTransformer {
    let tok: binding.NativeTokenizer | undefined
    let vocab: number | undefined
    if (options.tokenizer !== undefined) {
      const owner = options.tokenizer instanceof TokenizerView ? tokenizerOwner(options.tokenizer) : undefined
      if (owner === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', "options.tokenizer must be another model's tokenizer")
      tok = native(() => owner.tokenizerHandle())
      vocab = Number(JSON.parse(native(() => owner.tokenizerInfo())).vocabSize)
    }
    const { json, seed, dtype } = prepareConfig(cfg, options, vocab)
    const n = native(() => binding.createModel(json, seed, dtype, options.device))
    if (tok !== undefined) native(() => n.setTokenizer(tok!, paddingLeftArg(options)))
    return new HookedTransformer(n)
  }

  /**
   * Writes the model to `dir` in TL's format: `model.safetensors` (TL's state-dict names and
   * layouts), `config.json` (TL's config) and the tokenizer's files. `fromPretrained(dir)` loads
   * it back (with TL's processing unless turned off).
   */
  save(dir: string): void {
    stringArg('dir', dir)
    native(() => this.#native.save(dir))
  }

  /** Re-reads the config and hook table (after load, a `use_*` flag change, or processing). */
  #refresh(n: binding.NativeModel): HookedTransformerConfig {
    this.setHookTable(n.hookNames())
    return JSON.parse(n.configJson())
  }

  /**
   * Loads a model from a folder or the HF cache (downloading it from the hub into the cache when
   * missing, unless `localFilesOnly` / `HF_HUB_OFFLINE`) and processes its weights as TL does.
   */
  static async fromPretrained(modelName: string, options: processing.PretrainedOptions = {}): Promise<HookedTransformer> {
    const refactor = boolArg('refactorFactoredAttnMatrices', opt(options, 'refactorFactoredAttnMatrices', false))
    const model = new HookedTransformer(await loadNativeModel(modelName, options))
    await tlNativeTokenizer(model, modelName, options)
    if (refactor) model.refactorFactoredAttnMatrices()
    return model
  }

  /** `fromPretrained` with every weight-processing step off, as TL's. */
  static async fromPretrainedNoProcessing(modelName: string, options: processing.PretrainedOptions = {}): Promise<HookedTransformer> {
    return HookedTransformer.fromPretrained(modelName, {
      foldLn: false,
      centerWritingWeights: false,
      centerUnembed: false,
      foldValueBiases: false,
      ...options,
    })
  }

  get #native(): binding.NativeModel {
    if (this.#n === null) throw new TransformerLensError('TL_DISPOSED', 'this model was disposed')
    return this.#n
  }

  /** TL's config (snake_case fields, as `model.cfg` in Python). */
  get cfg(): HookedTransformerConfig {
    return this.#cfg
  }

  // ---- tokenization ----

  /** TL's `to_tokens`: `[batch, pos]` int64. */
  toTokens(input: string | string[], options: { prependBos?: boolean; paddingSide?: 'left' | 'right'; truncate?: boolean } = {}): Tensor {
    if (this.tokenizer === null) throw new TransformerLensError('TL_TOKENIZER', 'this model has no tokenizer')
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? stringArrayArg('input', input) : null
    if (texts === null) throw invalidArg('input', 'a string or an array of strings', input)
    const prependBos = boolArg('prependBos', opt(options, 'prependBos', this.#cfg.default_prepend_bos))
    const paddingSide = enumArg('paddingSide', opt(options, 'paddingSide', this.tokenizer.paddingSide), ['left', 'right'])
    const truncate = boolArg('truncate', opt(options, 'truncate', true))
    return wrapT(native(() => this.#native.toTokens(texts, prependBos, paddingSide === 'left', truncate ? this.#cfg.n_ctx : undefined)))
  }

  /** TL's `to_str_tokens` for a string or a 1-D/2-D (batch 1) token tensor. */
  toStrTokens(input: string | Tensor, options: { prependBos?: boolean } = {}): string[] {
    if (typeof input !== 'string' && !(input instanceof Tensor)) throw invalidArg('input', 'a string or a Tensor of tokens', input)
    const tokens = typeof input === 'string' ? this.toTokens(input, options) : input
    const flat = tokens.toArray()
    if (tokens.ndim > 2 || (tokens.ndim === 2 && tokens.shape[0] !== 1)) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `toStrTokens takes one sequence, got shape [${tokens.shape}]`)
    }
    const n = this.#native
    return Array.from(flat as ArrayLike<number | bigint>, (id, i) => {
      const one = [tokenIdArg(`tokens[${i}]`, Number(id))]
      return native(() => n.decode(one, false))
    })
  }

  /** TL's `to_string`: decodes tokens (1-D → string, 2-D → one string per row). */
  toString(tokens: Tensor | number[]): string | string[] {
    if (Array.isArray(tokens)) {
      const ids = tokenIdsArg('tokens', tokens)
      return native(() => this.#native.decode(ids, false))
    }
    if (!(tokens instanceof Tensor)) throw invalidArg('tokens', 'a Tensor or an array of token ids', tokens)
    const shape = tokens.shape
    const flat = tokenIdsArg('tokens', Array.from(tokens.toArray() as ArrayLike<number | bigint>, Number))
    if (shape.length <= 1) return native(() => this.#native.decode(flat, false))
    const w = shape[shape.length - 1]
    const out: string[] = []
    for (let i = 0; i < flat.length; i += w) out.push(native(() => this.#native.decode(flat.slice(i, i + w), false)))
    return out
  }

  #tokens(input: Input, o: ForwardOptions | undefined): Tensor {
    if (input instanceof Tensor) return input
    if (typeof input === 'string' || Array.isArray(input)) {
      return this.toTokens(input, { prependBos: opt(o, 'prependBos', undefined), paddingSide: opt(o, 'paddingSide', undefined) })
    }
    throw new TransformerLensError('TL_INVALID_ARGUMENT', 'input must be a string, an array of strings or a Tensor of tokens')
  }

  // ---- hooks (TL's HookedRootModule: src/hooks/root-module.ts) ----

  /** TL's `check_hooks_to_add`: a flag-gated hook point needs its flag. */
  override checkHooksToAdd(_point: HookPoint, name: string, _hook: HookFn, _o: AddHookOptions = {}): void {
    checkFlaggedHook(this.#cfg, name)
  }

  // ---- running ----

  async #run(input: Input, o: ForwardOptions | undefined, extraHooks: readonly FwdHook[], cacheFilter: ((n: string) => boolean) | null, grad: GradPlan = {}) {
    const n = this.#native
    const returnType = enumArg('returnType', opt<ForwardOptions['returnType']>(o, 'returnType', 'logits'), ['logits', 'loss', 'both', null])
    const startAtLayer = optIntArg('startAtLayer', opt<unknown>(o, 'startAtLayer', undefined))
    const stopAtLayer = optIntArg('stopAtLayer', opt<unknown>(o, 'stopAtLayer', undefined))
    let x: Tensor
    if (startAtLayer !== undefined && startAtLayer !== null) {
      if (!(input instanceof Tensor)) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'with startAtLayer the input must be a residual-stream Tensor')
      x = input
    } else {
      x = this.#tokens(input, o)
    }
    const plan = compilePlan(this.hookContext(), extraHooks, cacheFilter, grad)
    const args = {
      returnType: returnType === null ? 'none' : (returnType ?? 'logits'),
      lossPerToken: boolArg('lossPerToken', opt(o, 'lossPerToken', false)),
      startAtLayer: startAtLayer ?? undefined,
      stopAtLayer: stopAtLayer ?? undefined,
      gradRun: plan.gradRun,
    }
    const kv = opt<HookedTransformerKeyValueCache | undefined>(o, 'pastKvCache', undefined) ?? undefined
    if (kv !== undefined && !(kv instanceof HookedTransformerKeyValueCache)) throw invalidArg('pastKvCache', 'a HookedTransformerKeyValueCache', kv)
    const mask = this.#attentionMask(x, o, kv, startAtLayer)
    const signal = opt<AbortSignal | undefined>(o, 'signal', undefined)
    if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'the run was aborted before it started')
    let run: binding.NativeRun
    if (plan.dispatch) {
      // On the JS thread the signal can only flip from inside a hook: check it at every tap.
      const { dispatch, aborted } = abortableDispatch(plan.dispatch, signal)
      try {
        run = n.forwardWithHooks(x.native, args, plan.flags, dispatch, mask?.native, kv ? nativeKv(kv) : undefined)
      } catch (e) {
        throw aborted() ?? plan.hookError() ?? fromNative(e)
      }
    } else {
      run = await withAbort(signal, (abort) => nativeAsync(() => n.forward(x.native, args, plan.flags, abort, mask?.native, kv ? nativeKv(kv) : undefined)))
    }
    return { run, returnType, stopAtLayer }
  }

  /**
   * TL's rule for when a run needs an explicit attention mask: left padding, a given mask, or
   * a KV cache. Without a given mask it is computed from the tokens (TL's `get_attention_mask`).
   */
  #attentionMask(x: Tensor, o: ForwardOptions | undefined, kv: HookedTransformerKeyValueCache | undefined, startAtLayer: number | undefined): Tensor | undefined {
    const given = opt<Tensor | undefined>(o, 'attentionMask', undefined)
    if (given !== undefined && given !== null) {
      if (!(given instanceof Tensor)) throw invalidArg('attentionMask', 'a Tensor', given)
      return given
    }
    const paddingSide = opt(o, 'paddingSide', this.tokenizer?.paddingSide ?? 'right')
    if (paddingSide !== 'left' && kv === undefined) return undefined
    if (startAtLayer !== undefined && startAtLayer !== null) {
      if (kv !== undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'with startAtLayer and a KV cache, pass attentionMask explicitly (TL does not compute it from a residual stream)')
      return undefined
    }
    if (this.tokenizer === null) {
      if (kv !== undefined) return undefined
      throw new TransformerLensError('TL_TOKENIZER', 'cannot compute an attention mask without a tokenizer: pass attentionMask')
    }
    return this.tokenizer.attentionMask(x, boolArg('prependBos', opt(o, 'prependBos', this.#cfg.default_prepend_bos)), paddingSide === 'left')
  }

  #result(run: binding.NativeRun, returnType: ForwardOptions['returnType'], stopAtLayer: number | undefined): ForwardResult {
    if (stopAtLayer !== undefined && stopAtLayer !== null) return wrapT(run.takeResidual()!)
    const logits = run.takeLogits()
    const loss = run.takeLoss()
    if (returnType === null) return null
    if (returnType === 'loss') return wrapT(loss!)
    if (returnType === 'both') return { logits: wrapT(logits!), loss: wrapT(loss!) }
    return wrapT(logits!)
  }

  /** The run's cached activations, then `extra` entries (gradients). */
  #cache(run: binding.NativeRun, extra?: ReadonlyMap<string, Tensor>): ActivationCache {
    const ids = run.cacheIds()
    const dict = new Map<string, Tensor>()
    const names = this.hookContext().names
    ids.forEach((id, i) => dict.set(names[id], wrapT(run.takeCached(i)!)))
    for (const [k, v] of extra ?? []) dict.set(k, v)
    return new ActivationCache(dict, this)
  }

  /**
   * TL's `forward`. Returns logits by default; with `returnType: 'loss'` the loss, with
   * `'both'` `{ logits, loss }`, with `stopAtLayer` the residual stream, with null nothing.
   */
  async forward(input: Input, options?: ForwardOptions & { returnType?: 'logits' }): Promise<Tensor>
  async forward(input: Input, options: ForwardOptions & { returnType: 'loss' }): Promise<Tensor>
  async forward(input: Input, options: ForwardOptions & { returnType: 'both' }): Promise<{ logits: Tensor; loss: Tensor }>
  async forward(input: Input, options?: ForwardOptions): Promise<ForwardResult>
  async forward(input: Input, options?: ForwardOptions): Promise<ForwardResult> {
    const { run, returnType, stopAtLayer } = await this.#run(input, options, [], null, {})
    return this.#result(run, returnType, stopAtLayer)
  }

  /** TL's `run_with_cache`: `[output, cache]`; `namesFilter` picks what is kept. */
  async runWithCache(input: Input, options: RunWithCacheOptions = {}): Promise<[Tensor, ActivationCache]> {
    const filter = namesFilterFn(opt<NamesFilter>(options, 'namesFilter', undefined))
    const inclBwd = opt(options, 'inclBwd', false)
    const grads: GradRecord[] = []
    const { run, returnType, stopAtLayer } = await this.#run(input, options, [], filter, inclBwd ? { record: { filter, into: grads } } : {})
    const out = this.#result(run, returnType, stopAtLayer)
    let gradCache: Map<string, Tensor> | undefined
    if (inclBwd) {
      if (!(out instanceof Tensor) || out.numel() !== 1) {
        throw new TransformerLensError('TL_INVALID_ARGUMENT', "inclBwd backpropagates from the output, which must be a scalar: pass returnType: 'loss'")
      }
      out.backward()
      gradCache = gradEntries(grads, this.hookContext().names)
    }
    const cache = this.#cache(run, gradCache)
    if (opt(options, 'removeBatchDim', false)) cache.removeBatchDim()
    return [out as Tensor, cache]
  }

  /**
   * TL's `run_with_hooks`: `fwdHooks` / `bwdHooks` for this run only (other hooks stay as they
   * are). With `resetHooksEnd: false` they stay added afterwards, as TL leaves them.
   */
  async runWithHooks(input: Input, options: RunWithHooksOptions = {}): Promise<ForwardResult> {
    const hooks = opt<FwdHook[]>(options, 'fwdHooks', [])
    const bwdHooks = opt<FwdHook[]>(options, 'bwdHooks', [])
    try {
      const { run, returnType, stopAtLayer } = await this.#run(input, options, hooks, null, { bwdHooks })
      return this.#result(run, returnType, stopAtLayer)
    } finally {
      if (!opt(options, 'resetHooksEnd', true)) this.keepRunHooks(hooks, bwdHooks)
      else if (opt(options, 'clearContexts', false)) this.clearContexts()
    }
  }

  // ---- generation ----

  #host(): GenerationHost {
    return {
      native: this.#native,
      tokenizer: this.tokenizer,
      defaultPrependBos: this.#cfg.default_prepend_bos,
      toTokens: (input, o) => this.toTokens(input, o),
      plan: (cacheFilter) => compilePlan(this.hookContext(), [], cacheFilter),
      cacheOf: (run) => this.#cache(run),
    }
  }

  /**
   * TL's `generate`: samples (or, with `doSample: false`, takes the argmax of) `maxNewTokens`
   * tokens, decoding through the KV cache in Rust. Padded batches are masked at every step, so
   * each row continues exactly as its prompt alone would. Registered hooks fire at every step.
   */
  async generate(input: string, options?: GenerateOptions & { returnType?: 'input' | 'str' }): Promise<string>
  async generate(input: string[], options?: GenerateOptions & { returnType?: 'input' | 'str' }): Promise<string | string[]>
  async generate(input: string | string[] | Tensor, options: GenerateOptions & { returnType: 'tokens' | 'embeds' }): Promise<Tensor>
  async generate(input: Tensor, options?: GenerateOptions & { returnType?: 'input' | 'tokens' }): Promise<Tensor>
  async generate(input?: string | string[] | Tensor, options?: GenerateOptions): Promise<string | string[] | Tensor>
  async generate(input: string | string[] | Tensor = '', options: GenerateOptions = {}): Promise<string | string[] | Tensor> {
    return generate(this.#host(), input, options)
  }

  /**
   * `generate` that also caches activations (`namesFilter` as in `runWithCache`) at every step:
   * `[output, caches]` with one ActivationCache per step. The first covers the prompt; each
   * later one holds only the new position (earlier ones come from the KV cache).
   */
  async generateWithCache(input: string | string[] | Tensor, options: GenerateOptions & { namesFilter?: NamesFilter } = {}): Promise<[string | string[] | Tensor, ActivationCache[]]> {
    return generateWithCache(this.#host(), input, options)
  }

  /** `generate` as an async iterator of steps: each row's new token and text piece. */
  generateStream(input: string | string[] | Tensor, options: GenerateOptions = {}): AsyncGenerator<GenerateChunk, void, void> {
    return generateStream(this.#host(), input, options)
  }

  /** An empty KV cache for this model (TL's `HookedTransformerKeyValueCache.init_cache`). */
  initKvCache(batchSize = 1): HookedTransformerKeyValueCache {
    intArg('batchSize', batchSize, { min: 1, max: U32_MAX })
    return wrapKv(native(() => this.#native.initKvCache(batchSize)))
  }

  // ---- weights and flags ----

  /** TL's `state_dict()`: keys and layouts as TL (`blocks.0.attn.W_Q: [n_heads, d_model, d_head]`). */
  stateDict(): Map<string, Tensor> {
    return new Map(native(() => this.#native.stateDict()).map((e) => [e.name, wrapT(e.tensor)]))
  }

  // ---- weight processing (./processing.ts; the numbers in crates/engine/src/process/steps.rs) ----

  #processing: processing.ProcessingHost = {
    apply: (names, tensors, args) => {
      const out = native(() => this.#native.processWeights(names, tensors, args))
      if (args.step === 'model') {
        weights.releaseWeights(this)
        this.#cfg = this.#refresh(this.#native)
      }
      return out
    },
  }

  /** TL's `process_weights_`: processes this model's weights in place (value biases always folded). */
  processWeights(options: processing.ProcessWeightsOptions = {}): void {
    processing.processWeights(this.#processing, options)
  }
  /** TL's `load_and_process_state_dict`: loads a TL-layout state dict (keys it lacks keep this model's weights) and processes it. */
  loadAndProcessStateDict(stateDict: processing.StateDictInput, options: processing.LoadAndProcessOptions = {}): void {
    processing.loadAndProcessStateDict(this.#processing, stateDict, options)
  }
  /** TL's `fold_layer_norm(state_dict, ...)`: the folded state dict. Without one: folds this model's norms in place. */
  foldLayerNorm(stateDict: processing.StateDictInput, options?: processing.FoldLayerNormOptions): Map<string, Tensor>
  foldLayerNorm(): void
  foldLayerNorm(stateDict?: processing.StateDictInput, options: processing.FoldLayerNormOptions = {}): Map<string, Tensor> | void {
    return processing.step(this.#processing, 'fold_layer_norm', stateDict, options)
  }
  /** TL's `center_writing_weights(state_dict)`. Without a state dict: in place (LayerNorm models only, as TL processes). */
  centerWritingWeights(stateDict: processing.StateDictInput): Map<string, Tensor>
  centerWritingWeights(): void
  centerWritingWeights(stateDict?: processing.StateDictInput): Map<string, Tensor> | void {
    return processing.step(this.#processing, 'center_writing_weights', stateDict)
  }
  /** TL's `center_unembed(state_dict)`. Without a state dict: in place. */
  centerUnembed(stateDict: processing.StateDictInput): Map<string, Tensor>
  centerUnembed(): void
  centerUnembed(stateDict?: processing.StateDictInput): Map<string, Tensor> | void {
    return processing.step(this.#processing, 'center_unembed', stateDict)
  }
  /** TL's `fold_value_biases(state_dict)`. Without a state dict: in place. */
  foldValueBiases(stateDict: processing.StateDictInput): Map<string, Tensor>
  foldValueBiases(): void
  foldValueBiases(stateDict?: processing.StateDictInput): Map<string, Tensor> | void {
    return processing.step(this.#processing, 'fold_value_biases', stateDict)
  }
  /** TL's `refactor_factored_attn_matrices(state_dict)` (not for rotary models). Without a state dict: in place. */
  refactorFactoredAttnMatrices(stateDict: processing.StateDictInput): Map<string, Tensor>
  refactorFactoredAttnMatrices(): void
  refactorFactoredAttnMatrices(stateDict?: processing.StateDictInput): Map<string, Tensor> | void {
    return processing.step(this.#processing, 'refactor_factored_attn_matrices', stateDict)
  }

  // ---- parts of forward (./forward-parts.ts) ----

  /** TL's `input_to_embed`: `[residual, tokens, shortformerPosEmbed, attentionMask]`. */
  inputToEmbed(input: Input, options: parts.InputToEmbedOptions = {}): Promise<[Tensor, Tensor, Tensor | null, Tensor | null]> {
    return parts.inputToEmbed(this, input, options)
  }
  /** TL's `get_residual`: token embeddings plus position embeddings (`[residual, shortformerPosEmbed]` by default). */
  getResidual(embed: Tensor, posOffset: number, options: parts.GetResidualOptions = {}): Tensor | [Tensor, Tensor | null] {
    return parts.getResidual(this, embed, posOffset, options)
  }
  /** TL's `get_pos_offset`: positions already in `pastKvCache` (0 without one). */
  getPosOffset(pastKvCache: HookedTransformerKeyValueCache | null | undefined, batchSize: number): number {
    return parts.getPosOffset(this, pastKvCache, batchSize)
  }
  /** TL's `loss_fn`: next-token cross-entropy of `logits` against `tokens`. */
  lossFn(logits: Tensor, tokens: Tensor, options: { attentionMask?: Tensor | null; perToken?: boolean } = {}): Tensor {
    return parts.lossFn(logits, tokens, options)
  }

  // ---- devices ----

  /** `'cpu'` or `'cuda:N'`: where the weights live (also `cfg.device`). */
  get device(): string {
    return native(() => this.#native.device)
  }

  protected moveTo(device: string): void {
    native(() => this.#native.toDevice(device))
    this.#cfg = JSON.parse(this.#native.configJson())
  }

  protected applyHookFlag(name: string, value: boolean): void {
    native(() => this.#native.setFlag(name, value))
    this.#cfg = this.#refresh(this.#native)
  }
  setUseAttnIn(v: boolean): void {
    this.setHookFlag('use_attn_in', v)
  }
  /** TL's `set_ungroup_grouped_query_attention`: K/V hooks (and the KV cache) see one head per query head. */
  setUngroupGroupedQueryAttention(v: boolean): void {
    this.setHookFlag('ungroup_grouped_query_attention', v)
  }

  /** TL's `to_single_str_token`: the string of one token id. */
  toSingleStrToken(token: number): string {
    tokenIdArg('token', token)
    const s = this.toStrTokens(Tensor.from(BigInt64Array.from([BigInt(token)]), [1]))
    if (s.length !== 1) throw new TransformerLensError('TL_INVALID_ARGUMENT', `token ${token} does not decode to one token`)
    return s[0]
  }

  /**
   * TL's `get_token_position`: where `singleToken` (a string of one token, an id, or a 0-d
   * Tensor) occurs in `input` (a string or one row of tokens), first or last.
   */
  getTokenPosition(singleToken: string | number | Tensor, input: string | Tensor, options: { mode?: 'first' | 'last'; prependBos?: boolean; paddingSide?: 'left' | 'right' } = {}): number {
    let tokens = typeof input === 'string' ? this.toTokens(input, options) : input
    if (tokens.ndim === 2) {
      if (tokens.shape[0] !== 1) throw new TransformerLensError('TL_SHAPE_MISMATCH', `getTokenPosition takes one sequence, got shape [${tokens.shape}]`)
      tokens = tokens.get(0)
    }
    const id = typeof singleToken === 'string' ? this.toSingleToken(singleToken) : typeof singleToken === 'number' ? singleToken : singleToken.item()
    const hits = tokens.eq(id).float()
    if (hits.sum().item() === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'The token does not occur in the prompt')
    const mode = opt(options, 'mode', 'first')
    const n = tokens.shape[0]
    const pos = Tensor.arange(0, n).float()
    // Misses move past the end for 'first' and to 0 for 'last'.
    if (mode === 'first') return pos.add(hits.neg().add(1).mul(n)).min().item()
    if (mode === 'last') return pos.mul(hits).max().item()
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `mode must be 'first' or 'last', got '${mode}'`)
  }

  /** TL's `to_single_token`: the id of a string that is exactly one token. */
  toSingleToken(s: string): number {
    stringArg('s', s)
    return weights.toSingleToken(this, s)
  }

  /**
   * Frees the weights. Safe while runs are in flight (an async forward or generation, or from
   * inside a hook of a run on this model): they finish normally with the weights they started
   * with, which are freed as the last of them ends. Using the model afterwards throws TL_DISPOSED.
   */
  dispose(): void {
    weights.releaseWeights(this)
    this.#n?.dispose()
    this.#n = null
  }
  get disposed(): boolean {
    return this.#n === null
  }

  // ---- set_tokenizer (src/model/set-tokenizer.ts) ----

  /**
   * TL's `set_tokenizer(tokenizer, default_padding_side)`: from now on string input, `toTokens`,
   * `toStrTokens`, `generate`, ... use this tokenizer (a model loaded without one gains one).
   * `source` is a tokenizer folder or tokenizer.json path, a model name or hub id (HF cache, else
   * downloaded unless `localFilesOnly` / `HF_HUB_OFFLINE`), or another model's `tokenizer`
   * (shared). As TL: eos defaults to `<|endoftext|>`, pad and bos to eos, padding is on
   * `defaultPaddingSide` ('right' unless given) and `cfg.tokenizer_prepends_bos` is updated.
   * `model.tokenizer` is a new TokenizerView afterwards.
   */
  async setTokenizer(source: TokenizerSource, options: SetTokenizerOptions = {}): Promise<void> {
    const paddingLeft = paddingLeftArg(options)
    void this.#native // TL_DISPOSED before any download
    const tok = await nativeTokenizer(source, options)
    native(() => this.#native.setTokenizer(tok, paddingLeft))
    ;(this as { tokenizer: TokenizerView | null }).tokenizer = new TokenizerView(this.#native)
    this.#cfg = JSON.parse(this.#native.configJson())
  }
}
