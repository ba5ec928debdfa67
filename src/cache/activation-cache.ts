import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'
import { getActName } from '../utils/act-name'

/**
 * Activations of one run, by TL hook name, in firing order. Tensors stay native until read.
 * `cache.get('blocks.0.attn.hook_pattern')`, or TL's shorthands: `cache.get('pattern', 0)`,
 * `cache.get('resid_post', -1)`, `cache.get('embed')`.
 */
export class ActivationCache {
  #dict: Map<string, Tensor>
  #nLayers: number
  #hasBatchDim: boolean

  /** @internal */
  constructor(dict: Map<string, Tensor>, nLayers: number, hasBatchDim = true) {
    this.#dict = dict
    this.#nLayers = nLayers
    this.#hasBatchDim = hasBatchDim
  }

  get hasBatchDim(): boolean {
    return this.#hasBatchDim
  }

  /** The full name a key resolves to (exact name, or TL's `get_act_name` shorthand). */
  resolveName(name: string, layer?: number | null, layerType?: string | null): string {
    if (layer == null && layerType == null && this.#dict.has(name)) return name
    let l = layer
    if (l != null && l < 0) l = this.#nLayers + l
    return getActName(name, l, layerType)
  }

  get(name: string, layer?: number | null, layerType?: string | null): Tensor {
    const key = this.resolveName(name, layer, layerType)
    const t = this.#dict.get(key)
    if (t === undefined) {
      throw new TransformerLensError('TL_UNKNOWN_HOOK', `'${key}' is not in this cache (it holds ${this.#dict.size} activations)`)
    }
    return t
  }

  has(name: string, layer?: number | null, layerType?: string | null): boolean {
    return this.#dict.has(this.resolveName(name, layer, layerType))
  }

  keys(): string[] {
    return [...this.#dict.keys()]
  }
  values(): Tensor[] {
    return [...this.#dict.values()]
  }
  entries(): [string, Tensor][] {
    return [...this.#dict.entries()]
  }
  items(): [string, Tensor][] {
    return this.entries()
  }
  get size(): number {
    return this.#dict.size
  }
  [Symbol.iterator](): IterableIterator<string> {
    return this.#dict.keys()
  }

  /** Removes the batch dim of size 1 from every activation (in place, returns this). */
  removeBatchDim(): this {
    if (!this.#hasBatchDim) return this
    for (const [k, t] of this.#dict) {
      if (t.shape[0] !== 1) {
        throw new TransformerLensError('TL_SHAPE_MISMATCH', `cannot remove the batch dim: '${k}' has batch size ${t.shape[0]}`)
      }
    }
    for (const [k, t] of this.#dict) {
      this.#dict.set(k, t.get(0))
      t.dispose()
    }
    this.#hasBatchDim = false
    return this
  }

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
