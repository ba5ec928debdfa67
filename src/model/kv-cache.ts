import { native } from '../errors'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { boolArg, intArg, invalidArg } from '../utils/args'

const NATIVE = Symbol('native')

/** One layer's cached keys and values (TL's `HookedTransformerKeyValueCacheEntry`). */
export class HookedTransformerKeyValueCacheEntry {
  readonly #n: binding.NativeKvCache
  readonly layer: number

  /** @internal */
  constructor(n: binding.NativeKvCache, layer: number) {
    this.#n = n
    this.layer = layer
  }

  /** `[batch, pos_so_far, n_heads, d_head]` (a copy). */
  get pastKeys(): Tensor {
    return wrapT(native(() => this.#n.pastKeys(this.layer)))
  }
  /** `[batch, pos_so_far, n_heads, d_head]` (a copy). */
  get pastValues(): Tensor {
    return wrapT(native(() => this.#n.pastValues(this.layer)))
  }
  /** A frozen entry is read but not extended by runs. */
  get frozen(): boolean {
    return native(() => this.#n.entryFrozen(this.layer))
  }
  set frozen(v: boolean) {
    boolArg('frozen', v)
    native(() => this.#n.setEntryFrozen(this.layer, v))
  }
}

/**
 * TL's `HookedTransformerKeyValueCache`: past keys and values per layer and the attention mask
 * of every position seen so far, kept natively. Pass it as `pastKvCache` to `forward`; each run
 * appends its positions unless the cache is frozen.
 */
export class HookedTransformerKeyValueCache {
  readonly [NATIVE]: binding.NativeKvCache
  readonly entries: readonly HookedTransformerKeyValueCacheEntry[]

  /** @internal */
  constructor(n: binding.NativeKvCache) {
    this[NATIVE] = n
    const layers = native(() => n.nLayers())
    this.entries = Array.from({ length: layers }, (_, i) => new HookedTransformerKeyValueCacheEntry(n, i))
  }

  /** TL's `init_cache`: an empty cache for `model` and `batchSize` rows. */
  static initCache(model: { initKvCache(batchSize?: number): HookedTransformerKeyValueCache }, batchSize = 1): HookedTransformerKeyValueCache {
    return model.initKvCache(batchSize)
  }

  /** Entry `layer` (negative counts from the end), as TL's `cache[i]`. */
  get(layer: number): HookedTransformerKeyValueCacheEntry {
    intArg('layer', layer)
    const n = this.entries.length
    const i = layer < 0 ? layer + n : layer
    const e = this.entries[i]
    if (!e) throw new RangeError(`layer ${layer} is out of range for a cache of ${n} layers`)
    return e
  }

  /** Positions cached so far (TL's `get_pos_offset`). */
  get length(): number {
    return native(() => this[NATIVE].length())
  }
  get batchSize(): number {
    return native(() => this[NATIVE].batchSize())
  }
  get frozen(): boolean {
    return native(() => this[NATIVE].isFrozen())
  }
  /** `[batch, pos_so_far]` int64. */
  get previousAttentionMask(): Tensor {
    return wrapT(native(() => this[NATIVE].previousAttentionMask()))
  }

  freeze(): void {
    native(() => this[NATIVE].freeze())
  }
  unfreeze(): void {
    native(() => this[NATIVE].unfreeze())
  }
  /** TL's `append_attention_mask`: past + new mask, stored unless frozen. */
  appendAttentionMask(mask: Tensor): Tensor {
    if (!(mask instanceof Tensor)) throw invalidArg('mask', 'a Tensor', mask)
    return wrapT(native(() => this[NATIVE].appendAttentionMask(mask.native)))
  }
  /** A deep copy, to extend one prefix in several directions. */
  clone(): HookedTransformerKeyValueCache {
    return new HookedTransformerKeyValueCache(native(() => this[NATIVE].duplicate()))
  }
}

/** @internal */
export function nativeKv(c: HookedTransformerKeyValueCache): binding.NativeKvCache {
  return c[NATIVE]
}

/** @internal */
export function wrapKv(n: binding.NativeKvCache): HookedTransformerKeyValueCache {
  return new HookedTransformerKeyValueCache(n)
}
