import { ActivationCache } from '../cache/activation-cache'
import { native, nativeAsync, TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { fireForwardHooks, type FwdHook } from '../hooks/hook-point'
import { FlaggedModule } from '../hooks/flagged-module'
import * as circuits from '../model/circuits'
import type { HookedTransformer } from '../model/hooked-transformer'
import { ensureModel, EnsureModelOptions } from '../model/loading'
import { DtypeOptions, modelDtypeArg, opt } from '../model/options'
import * as weights from '../model/weights'
import { NamesFilter, namesFilterFn } from '../model/generate'
import * as binding from '../native/binding'
import { architectureOf } from '../registry/architectures'
import { getOfficialModelName } from '../registry/models'
import { Tensor, wrapT } from '../tensor'
import { boolArg, enumArg, invalidArg, stringArg, stringArrayArg } from '../utils/args'
import { defaultDevice, Device } from '../utils/devices'
import { EncoderForwardOptions, EncoderHead, EncoderHost, EncoderInputs, encoderInputs, EncoderRunWithCacheOptions, EncoderRunWithHooksOptions, runCache, runEncoder, runOutput } from './run'

export type { EncoderForwardOptions, EncoderRunWithCacheOptions, EncoderRunWithHooksOptions }

/** TL's `HookedEncoder.from_pretrained` options. */
export interface EncoderLoadOptions extends EnsureModelOptions, DtypeOptions {
  /** `'cpu'`, `'cuda'` or `'cuda:N'` (default `TL_DEVICE`, else `'cpu'`). */
  device?: Device
}

/** TL's config of a HookedEncoder (`HookedTransformerConfig`, snake_case fields). */
export type HookedEncoderConfig = Record<string, unknown> & {
  n_layers: number
  d_model: number
  n_ctx: number
  d_head: number
  n_heads: number
  d_vocab: number
  d_mlp: number
  model_name: string
}

export type EncoderInput = string | string[] | Tensor
type EncoderOutput = Tensor | string | string[] | null

/** The internals `BertNextSentencePrediction` shares with its model. @internal */
export interface EncoderInternals extends EncoderHost {
  toTokens(input: string[], pair: boolean, truncate: boolean): [Tensor, Tensor, Tensor]
}
const INTERNALS = new WeakMap<HookedEncoder, EncoderInternals>()
/** @internal */
export function encoderInternals(model: HookedEncoder): EncoderInternals {
  const i = INTERNALS.get(model)
  if (i === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'expected a HookedEncoder')
  return i
}

/**
 * TL's `HookedEncoder`: a BERT-style encoder (post-norm blocks, bidirectional attention, MLM
 * head, pooler and NSP head) with a hook point at every TL activation, running in Rust. As in
 * TL, weights are loaded without processing.
 */
export class HookedEncoder extends FlaggedModule {
  #n: binding.NativeEncoder | null
  #cfg: HookedEncoderConfig

  private constructor(n: binding.NativeEncoder) {
    super()
    this.#n = n
    this.setHookTable(n.hookNames())
    this.#cfg = JSON.parse(n.configJson())
    const host: EncoderInternals = {
      native: () => this.#native,
      hookContext: () => this.hookContext(),
      toTokens: (input, pair, truncate) => this.#toTokens(input, pair, truncate),
    }
    INTERNALS.set(this, host)
  }

  /**
   * TL's `HookedEncoder.from_pretrained`: a BERT checkpoint (`bert-base-cased`, ..., TL's names
   * and aliases, or a local folder) from the HF cache, downloaded into it when missing (unless
   * `localFilesOnly` / `HF_HUB_OFFLINE`). A checkpoint without heads (a bare `BertModel`) loads
   * its trunk: `encoderOutput` and caches work, MLM/NSP outputs are `TL_MISSING_WEIGHT`.
   */
  static async fromPretrained(modelName: string, options: EncoderLoadOptions = {}): Promise<HookedEncoder> {
    stringArg('modelName', modelName)
    const dtype = modelDtypeArg(options)
    const device = stringArg('device', opt(options, 'device', undefined) ?? defaultDevice())
    let official: string | null = null
    try {
      official = getOfficialModelName(modelName)
    } catch {
      // A local folder (or an unknown name, which ensureModel names).
    }
    const arch = official === null ? null : architectureOf(official)
    if (arch !== null && arch !== 'BertForMaskedLM') {
      throw new TransformerLensError('TL_UNSUPPORTED', `'${official}' is a ${arch} model, not a BERT encoder: load it with HookedTransformer.fromPretrained (HookedEncoder loads BertForMaskedLM checkpoints)`)
    }
    const { dir, officialName } = await ensureModel(modelName, options)
    return new HookedEncoder(await nativeAsync(() => binding.loadEncoderModel({ dir, officialName, dtype, device })))
  }

  get #native(): binding.NativeEncoder {
    if (this.#n === null) throw new TransformerLensError('TL_DISPOSED', 'this model was disposed')
    return this.#n
  }

  /** TL's config (snake_case fields, as `model.cfg` in Python). */
  get cfg(): HookedEncoderConfig {
    return this.#cfg
  }

  /** Which parts the checkpoint has: 'mlm' (MLM head and unembedding), 'pooler', 'nsp'. */
  get heads(): string[] {
    return native(() => this.#native.heads())
  }

  /** Whether a tokenizer was loaded with the model (TL's `model.tokenizer is not None`). */
  get hasTokenizer(): boolean {
    return this.#native.hasTokenizer()
  }

  protected applyHookFlag(name: string, value: boolean): void {
    native(() => this.#native.setFlag(name, value))
    this.#cfg = JSON.parse(this.#native.configJson())
  }

  // ---- tokenization ----

  #toTokens(texts: string[], pair: boolean, truncate: boolean): [Tensor, Tensor, Tensor] {
    const out = native(() => this.#native.toTokens(texts, pair, truncate ? this.#cfg.n_ctx : undefined))
    return [wrapT(out[0]), wrapT(out[1]), wrapT(out[2])]
  }

  /**
   * TL's `to_tokens`: `[tokens, tokenTypeIds, attentionMask]`, each `[batch, pos]` int64; an
   * array is a batch, padded on the right. `truncate` (default true) cuts at `n_ctx`.
   */
  toTokens(input: string | string[], options: { truncate?: boolean; moveToDevice?: boolean } = {}): [Tensor, Tensor, Tensor] {
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? stringArrayArg('input', input) : null
    if (texts === null) throw invalidArg('input', 'a string or an array of strings', input)
    return this.#toTokens(texts, false, boolArg('truncate', opt(options, 'truncate', true)))
  }

  /** transformers' `tokenizer.decode(ids)`. */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return native(() => this.#native.decode(ids, opt(options, 'skipSpecialTokens', false)))
  }

  /** transformers' `tokenizer.mask_token_id` (null without a tokenizer mask token). */
  get maskTokenId(): number | null {
    return native(() => this.#native.maskTokenId()) ?? null
  }

  #inputs(input: EncoderInput, o: EncoderForwardOptions | undefined): EncoderInputs {
    return encoderInputs(input, o, (x) => (typeof x === 'string' || Array.isArray(x) ? this.toTokens(x as string | string[]) : null))
  }

  // ---- running ----

  #returnType(o: EncoderForwardOptions | undefined): 'logits' | 'predictions' | null {
    return enumArg('returnType', opt<EncoderForwardOptions['returnType']>(o, 'returnType', 'logits'), ['logits', 'predictions', null]) as 'logits' | 'predictions' | null
  }

  /** TL's predictions: the argmax token at each `[MASK]`, decoded; several become `Prediction i: ...`. */
  #predictions(logits: Tensor, tokens: Tensor): string | string[] {
    if (!this.hasTokenizer) throw new TransformerLensError('TL_TOKENIZER', "Must have a tokenizer to use return_type='predictions'")
    const ids = native(() => this.#native.maskPredictions(logits.native, tokens.native))
    const text = this.decode(ids)
    return text.includes(' ') ? text.split(' ').map((p, i) => `Prediction ${i}: ${p}`) : text
  }

  async #run(head: EncoderHead, input: EncoderInput, o: EncoderForwardOptions | undefined, hooks: readonly FwdHook[], cache: ((n: string) => boolean) | null) {
    const returnType = this.#returnType(o)
    const x = this.#inputs(input, o)
    // A checkpoint without an MLM head (a bare BertModel) has nothing to run after the blocks
    // when no output is asked for: the run (and its cache) stops there.
    if (head === 'mlm' && returnType === null && !this.heads.includes('mlm')) head = 'trunk'
    const run = await runEncoder(INTERNALS.get(this)!, head, x, o, hooks, cache)
    const out = runOutput(run)
    let result: EncoderOutput = out
    if (returnType === null) {
      out.dispose()
      result = null
    } else if (returnType === 'predictions') {
      result = this.#predictions(out, x.tokens)
      out.dispose()
    }
    return { run, result }
  }

  /**
   * TL's `forward`: masked-language-model logits `[batch, pos, d_vocab]`, or with
   * `returnType: 'predictions'` TL's strings for the `[MASK]` tokens, or null.
   */
  async forward(input: EncoderInput, options?: EncoderForwardOptions & { returnType?: 'logits' }): Promise<Tensor>
  async forward(input: EncoderInput, options: EncoderForwardOptions & { returnType: 'predictions' }): Promise<string | string[]>
  async forward(input: EncoderInput, options?: EncoderForwardOptions): Promise<EncoderOutput>
  async forward(input: EncoderInput, options?: EncoderForwardOptions): Promise<EncoderOutput> {
    return (await this.#run('mlm', input, options, [], null)).result
  }

  /**
   * TL's `encoder_output`: the residual stream after the last block, `[batch, pos, d_model]`
   * (hooks fire as in TL).
   */
  async encoderOutput(tokens: Tensor, tokenTypeIds: Tensor | null = null, oneZeroAttentionMask: Tensor | null = null): Promise<Tensor> {
    if (!(tokens instanceof Tensor)) throw invalidArg('tokens', 'a Tensor', tokens)
    return (await this.#run('trunk', tokens, { tokenTypeIds, oneZeroAttentionMask }, [], null)).result as Tensor
  }

  /** TL's `run_with_cache`: `[output, cache]`; `namesFilter` picks what is kept. */
  async runWithCache(input: EncoderInput, options: EncoderRunWithCacheOptions = {}): Promise<[EncoderOutput, ActivationCache]> {
    const filter = namesFilterFn(opt<NamesFilter>(options, 'namesFilter', undefined))
    const { run, result } = await this.#run('mlm', input, options, [], filter)
    return [result, runCache(run, INTERNALS.get(this)!, this, boolArg('removeBatchDim', opt(options, 'removeBatchDim', false)))]
  }

  /** TL's `run_with_hooks`: `fwdHooks` for this run only (kept with `resetHooksEnd: false`). */
  async runWithHooks(input: EncoderInput, options: EncoderRunWithHooksOptions = {}): Promise<EncoderOutput> {
    const hooks = opt<FwdHook[]>(options, 'fwdHooks', [])
    try {
      return (await this.#run('mlm', input, options, hooks, null)).result
    } finally {
      if (!opt(options, 'resetHooksEnd', true)) this.keepRunHooks(hooks, [])
      else if (opt(options, 'clearContexts', false)) this.clearContexts()
    }
  }

  /**
   * TL's `model.pooler(resid)`: `tanh(resid[:, 0] @ W + b)`, `[batch, d_model]`. As calling TL's
   * module, the hooks on `pooler.hook_pooler_out` (added with `addHook` or inside `hooks()`) fire on it.
   */
  pooler(resid: Tensor): Tensor {
    return this.#fire('pooler.hook_pooler_out', wrapT(native(() => this.#native.pooler(resid.native))))
  }

  /** TL's `model.nsp_head(pooled)`: `[batch, 2]`; the hooks on `nsp_head.hook_nsp_out` fire on it. */
  nspHead(pooled: Tensor): Tensor {
    return this.#fire('nsp_head.hook_nsp_out', wrapT(native(() => this.#native.nspHead(pooled.native))))
  }

  #fire(name: string, x: Tensor): Tensor {
    const point = this.hookDict.get(name)
    return point ? fireForwardHooks(point, x) : x
  }

  // ---- weights (TL's properties; layer weights stacked over layers) ----

  /** TL's `state_dict()`: keys and layouts as TL (`blocks.0.attn.W_Q: [n_heads, d_model, d_head]`). */
  stateDict(): Map<string, Tensor> {
    return new Map(native(() => this.#native.stateDict()).map((e) => [e.name, wrapT(e.tensor)]))
  }

  get #asModel(): HookedTransformer {
    // The layer weights share TL's keys with HookedTransformer's (`blocks.{l}.attn.W_Q`, ...).
    return this as unknown as HookedTransformer
  }
  #top(key: string): Tensor {
    const t = weights.param(this.#asModel, key)
    if (t === null) throw new TransformerLensError('TL_MISSING_WEIGHT', `this model has no weight '${key}'`)
    return t
  }
  /** `[d_model, d_vocab]` */
  get W_U(): Tensor {
    return this.#top('unembed.W_U')
  }
  /** `[d_vocab]` */
  get b_U(): Tensor {
    return this.#top('unembed.b_U')
  }
  /** `[d_vocab, d_model]` */
  get W_E(): Tensor {
    return this.#top('embed.embed.W_E')
  }
  /** `[n_ctx, d_model]` */
  get W_pos(): Tensor {
    return this.#top('embed.pos_embed.W_pos')
  }
  /** `[d_vocab + n_ctx, d_model]` */
  get W_E_pos(): Tensor {
    const [e, p] = [this.W_E, this.W_pos]
    try {
      return Tensor.cat([e, p], 0)
    } finally {
      e.dispose()
      p.dispose()
    }
  }
  get W_Q(): Tensor {
    return weights.W_Q(this.#asModel)
  }
  get W_K(): Tensor {
    return weights.W_K(this.#asModel)
  }
  get W_V(): Tensor {
    return weights.W_V(this.#asModel)
  }
  get W_O(): Tensor {
    return weights.W_O(this.#asModel)
  }
  get W_in(): Tensor {
    return weights.W_in(this.#asModel)
  }
  get W_out(): Tensor {
    return weights.W_out(this.#asModel)
  }
  get b_Q(): Tensor {
    return weights.b_Q(this.#asModel)
  }
  get b_K(): Tensor {
    return weights.b_K(this.#asModel)
  }
  get b_V(): Tensor {
    return weights.b_V(this.#asModel)
  }
  get b_O(): Tensor {
    return weights.b_O(this.#asModel)
  }
  get b_in(): Tensor {
    return weights.b_in(this.#asModel)
  }
  get b_out(): Tensor {
    return weights.b_out(this.#asModel)
  }
  /** TL's `QK`: `W_Q W_Kᵀ` per head, `[n_layers, n_heads, d_model, d_model]` (factored). */
  get QK(): FactoredMatrix {
    return circuits.QK(this.#asModel)
  }
  /** TL's `OV`: `W_V W_O` per head, `[n_layers, n_heads, d_model, d_model]` (factored). */
  get OV(): FactoredMatrix {
    return circuits.OV(this.#asModel)
  }
  /** TL's `all_head_labels`: `L{l}H{h}`. */
  allHeadLabels(): string[] {
    const out: string[] = []
    for (let l = 0; l < this.#cfg.n_layers; l++) for (let h = 0; h < this.#cfg.n_heads; h++) out.push(`L${l}H${h}`)
    return out
  }

  // ---- devices and lifetime ----

  /** `'cpu'` or `'cuda:N'`. */
  get device(): string {
    return native(() => this.#native.device)
  }
  protected moveTo(device: string): void {
    native(() => this.#native.toDevice(device))
    weights.releaseWeights(this.#asModel)
    this.#cfg = JSON.parse(this.#native.configJson())
  }

  /** Frees the weights (runs in flight finish first); later use is `TL_DISPOSED`. */
  dispose(): void {
    weights.releaseWeights(this.#asModel)
    this.#n?.dispose()
    this.#n = null
  }
  get disposed(): boolean {
    return this.#n === null
  }
}
