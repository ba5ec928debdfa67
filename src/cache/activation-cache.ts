import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import type { TokensArg } from '../model/weights'
import { Tensor } from '../tensor'
import { getActName } from '../utils/act-name'
import { Slice, SliceInput } from '../utils/slice'
import { ApplyLnOptions, applyLnToStack } from './apply-ln'
import { WithLabels } from './common'
import * as components from './components'
import * as residual from './residual'

/**
 * Activations of one run, by TL hook name, in firing order (TL's `ActivationCache`). Tensors stay
 * native until read. `cache.get('blocks.0.attn.hook_pattern')`, or TL's shorthands:
 * `cache.get('pattern', 0)`, `cache.get('resid_post', -1)`, `cache.get('embed')`.
 *
 * Access and batch handling live here; the residual-stream analysis (`accumulatedResid`,
 * `decomposeResid`, `logitAttrs`, `getFullResidDecomposition`) is in ./residual.ts, LayerNorm
 * scaling (`applyLnToStack`) in ./apply-ln.ts and the per-head / per-neuron stacks in
 * ./components.ts. Options take camelCase or TL's snake_case names; with `returnLabels` a
 * method returns `[tensor, labels]`, as TL returns a tuple.
 *
 * Every tensor a method returns is new and the caller's to dispose; `get` returns the cached
 * tensor itself (disposing it removes it from use, as the cache owns it).
 */
export class ActivationCache {
  #dict: Map<string, Tensor>
  #model: HookedTransformer
  #hasBatchDim: boolean

  /** @internal */
  constructor(dict: Map<string, Tensor>, model: HookedTransformer, hasBatchDim = true) {
    this.#dict = dict
    this.#model = model
    this.#hasBatchDim = hasBatchDim
  }

  /** The model these activations came from. */
  get model(): HookedTransformer {
    return this.#model
  }

  /** False after `removeBatchDim()` or an int batch slice. TL: `has_batch_dim`. */
  get hasBatchDim(): boolean {
    return this.#hasBatchDim
  }

  /** TL: `has_embed` ('hook_embed' is cached). */
  get hasEmbed(): boolean {
    return this.#dict.has('hook_embed')
  }

  /** TL: `has_pos_embed` ('hook_pos_embed' is cached). */
  get hasPosEmbed(): boolean {
    return this.#dict.has('hook_pos_embed')
  }

  // ---- dict-like access ----

  /**
   * The full name a key resolves to, as TL's `__getitem__`: an exact cached name as is, else
   * TL's `get_act_name(name, layer, layerType)`, with a negative layer counted from the end.
   */
  resolveName(name: string, layer?: number | null, layerType?: string | null): string {
    if (layer == null && layerType == null && this.#dict.has(name)) return name
    let l = layer
    if (l != null && l < 0) l = this.#model.cfg.n_layers + l
    return getActName(name, l, layerType)
  }

  /** TL's `cache[name]` / `cache[name, layer]` / `cache[name, layer, layer_type]`. */
  get(name: string, layer?: number | null, layerType?: string | null): Tensor {
    const key = this.resolveName(name, layer, layerType)
    const t = this.#dict.get(key)
    if (t === undefined) {
      throw new TransformerLensError('TL_UNKNOWN_HOOK', `'${key}' is not in this cache (it holds ${this.#dict.size} activations)`)
    }
    return t
  }

  /** Whether `get` with these arguments finds an activation. */
  has(name: string, layer?: number | null, layerType?: string | null): boolean {
    return this.#dict.has(this.resolveName(name, layer, layerType))
  }

  /** Hook names in firing order (then any computed ones, e.g. head results, in the order added). */
  keys(): string[] {
    return [...this.#dict.keys()]
  }
  values(): Tensor[] {
    return [...this.#dict.values()]
  }
  entries(): [string, Tensor][] {
    return [...this.#dict.entries()]
  }
  /** TL's `items()`: the same as `entries()`. */
  items(): [string, Tensor][] {
    return this.entries()
  }
  /** TL's `len(cache)`. */
  get size(): number {
    return this.#dict.size
  }
  /** Iterates over the names, as TL's `for key in cache`. */
  [Symbol.iterator](): IterableIterator<string> {
    return this.#dict.keys()
  }

  /** @internal Adds a computed activation (TL writes `cache_dict` directly for head results). */
  _store(name: string, t: Tensor): void {
    const old = this.#dict.get(name)
    this.#dict.set(name, t)
    if (old !== undefined && old !== t) old.dispose()
  }

  // ---- batch dim and device ----

  /** Removes the batch dim (size 1) from every activation, in place; returns this. TL: `remove_batch_dim`. */
  removeBatchDim(): this {
    if (!this.#hasBatchDim) {
      console.warn('Tried removing batch dimension after already having removed it.')
      return this
    }
    for (const [k, t] of this.#dict) {
      if (t.shape[0] !== 1) {
        throw new TransformerLensError('TL_SHAPE_MISMATCH', `Cannot remove batch dimension from cache with batch size > 1, for key ${k} with shape [${t.shape}]`)
      }
    }
    for (const [k, t] of this.#dict) {
      this.#dict.set(k, t.get(0))
      t.dispose()
    }
    this.#hasBatchDim = false
    return this
  }

  /**
   * A new cache with `batchSlice` applied to dim 0 of every activation (an int removes the
   * batch dim). TL: `apply_slice_to_batch_dim`. This cache is left as it is.
   */
  applySliceToBatchDim(batchSlice: Slice | SliceInput): ActivationCache {
    const s = Slice.from(batchSlice)
    // TL asserts `has_batch_dim or batch_slice.mode == "empty"`, but no Slice has mode "empty"
    // (a TL bug: a cache without a batch dim always fails). The intent, an identity slice, is kept.
    if (!this.#hasBatchDim && s.mode !== 'identity') {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', 'Cannot index into a cache without a batch dim')
    }
    const out = new Map<string, Tensor>()
    try {
      for (const [k, t] of this.#dict) out.set(k, s.apply(t, 0))
    } catch (e) {
      for (const t of out.values()) t.dispose()
      throw e
    }
    return new ActivationCache(out, this.#model, s.mode !== 'int' && this.#hasBatchDim)
  }

  /** TL's `to(device)`: this build runs on the CPU only, so 'cpu' is the one device accepted. */
  to(device: string): this {
    if (device !== 'cpu') throw new TransformerLensError('TL_UNSUPPORTED', `device '${device}' is not available in this build (cpu only)`)
    return this
  }

  /**
   * TL's `toggle_autodiff` switches torch's global autograd. Here there is no global switch to
   * flip: a run builds an autograd graph only when it has backward hooks or `inclBwd`, and no
   * other run ever does, so this accepts a boolean and changes nothing.
   */
  toggleAutodiff(mode = false): void {
    if (typeof mode !== 'boolean') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'toggleAutodiff takes a boolean')
  }

  // ---- residual stream (./residual.ts) ----

  /** TL's `accumulated_resid`: the residual stream before each layer, stacked (logit lens). */
  accumulatedResid<O extends residual.AccumulatedResidOptions>(options?: O): WithLabels<O> {
    return residual.accumulatedResid(this, options)
  }

  /** TL's `decompose_resid`: the residual stream split into embeddings and layer outputs. */
  decomposeResid<O extends residual.DecomposeResidOptions>(options?: O): WithLabels<O> {
    return residual.decomposeResid(this, options)
  }

  /** TL's `apply_ln_to_stack`: a stack of residual components scaled by a cached LayerNorm scale. */
  applyLnToStack(residualStack: Tensor, options?: ApplyLnOptions): Tensor {
    return applyLnToStack(this, residualStack, options)
  }

  /** TL's `logit_attrs`: each component's contribution to the logit of `tokens` (minus `incorrectTokens`). */
  logitAttrs(residualStack: Tensor, tokens: TokensArg, options?: residual.LogitAttrsOptions): Tensor {
    return residual.logitAttrs(this, residualStack, tokens, options)
  }

  /** TL's `get_full_resid_decomposition`: heads, neurons (or MLP outputs), embeddings and biases. */
  getFullResidDecomposition<O extends residual.FullResidOptions>(options?: O): WithLabels<O> {
    return residual.getFullResidDecomposition(this, options)
  }

  // ---- heads and neurons (./components.ts) ----

  /** TL's `compute_head_results`: adds `blocks.{l}.attn.hook_result` for every layer. */
  computeHeadResults(): void {
    components.computeHeadResults(this)
  }

  /** TL's `stack_head_results`: every head's output, `[layer * n_heads, ..., d_model]`. */
  stackHeadResults<O extends components.StackHeadResultsOptions>(options?: O): WithLabels<O> {
    return components.stackHeadResults(this, options)
  }

  /** TL's `stack_activation`: one activation name stacked over layers `0..layer-1`. */
  stackActivation(activationName: string, options?: components.StackActivationOptions): Tensor {
    return components.stackActivation(this, activationName, options)
  }

  /** TL's `get_neuron_results`: each neuron's output `[..., n_neurons, d_model]` in one layer. */
  getNeuronResults(layer: number, options?: components.NeuronResultsOptions): Tensor {
    return components.getNeuronResults(this, layer, options)
  }

  /** TL's `stack_neuron_results`: every neuron's output in layers `0..layer-1`. */
  stackNeuronResults<O extends components.StackNeuronResultsOptions>(layer: number | null, options?: O): WithLabels<O> {
    return components.stackNeuronResults(this, layer, options)
  }

  // ---- lifetime ----

  /** Frees every cached tensor. */
  dispose(): void {
    for (const t of this.#dict.values()) t.dispose()
    this.#dict.clear()
  }
  [Symbol.dispose](): void {
    this.dispose()
  }

  toString(): string {
    return `ActivationCache with keys ${JSON.stringify(this.keys())}`
  }
}
