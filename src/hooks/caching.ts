/**
 * TL's caching hooks (`HookedRootModule.get_caching_hooks` / `add_caching_hooks` / `cache_all` /
 * `cache_some`): JS hook functions that store each activation (and, with `inclBwd`, each
 * gradient as `{name}_grad`) in a cache dict. `runWithCache` caches natively instead, which
 * is cheaper; these are for TL code that manages its caching hooks itself.
 */
import { TransformerLensError } from '../errors'
import { opt } from '../model/options'
import { boolArg } from '../utils/args'
import type { NamesFilter } from '../model/generate'
import type { Tensor } from '../tensor'
import type { Device } from '../utils/devices'
import { Slice, SliceInput } from '../utils/slice'
import { FwdHook, HookFn, HookPoint } from './hook-point'

/** A cache dict: a Map (the default) or a plain object, filled by name. */
export type CacheDict = Map<string, Tensor> | Record<string, Tensor>

export interface CachingHooksOptions {
  /** Which hook points to cache (default: every one). TL: `names_filter`. */
  namesFilter?: NamesFilter
  /** Also cache gradients (`{name}_grad`) through backward hooks. TL: `incl_bwd`. */
  inclBwd?: boolean
  /** Where to store the activations (default: where they are computed). */
  device?: Device | null
  /** Store `activation[0]` (batch size 1). TL: `remove_batch_dim`. */
  removeBatchDim?: boolean
  /** The dict to fill (default: a new Map). */
  cache?: CacheDict | null
}

export interface GetCachingHooksOptions extends CachingHooksOptions {
  /** Keep these positions only (TL's `pos_slice`: dim -3 for q/k/v/z/result, else -2). */
  posSlice?: Slice | SliceInput | null
}

/** The model side the caching hooks need. */
export interface CachingHost {
  hookDict: Map<string, HookPoint>
  /** Marks the model as caching (TL's `is_caching = True`). */
  markCaching(): void
}

/** TL's names-filter normalisation: a name is `==`, a list is `in`, a function is itself. */
export function namesFilterPredicate(f: unknown): (name: string) => boolean {
  if (f === null || f === undefined) return () => true
  if (typeof f === 'string') return (n) => n === f
  if (Array.isArray(f)) {
    const s = new Set(f)
    return (n) => s.has(n)
  }
  if (typeof f === 'function') return f as (name: string) => boolean
  throw new TransformerLensError('TL_INVALID_ARGUMENT', 'names_filter must be a string, list of strings, or function')
}

function cacheArg(c: unknown): CacheDict {
  if (c === null || c === undefined) return new Map()
  if (c instanceof Map || (typeof c === 'object' && !Array.isArray(c))) return c as CacheDict
  throw new TransformerLensError('TL_INVALID_ARGUMENT', 'cache must be a Map or a plain object')
}

function store(cache: CacheDict, key: string, t: Tensor): void {
  if (cache instanceof Map) cache.set(key, t)
  else cache[key] = t
}

const HEAD_POS = /(hook_q|hook_k|hook_v|hook_z|hook_result)$/

/** TL's `save_hook`: the activation (on `device`, without the batch dim, sliced) under its name. */
function saveHook(cache: CacheDict, isBackward: boolean, device: Device | null, removeBatchDim: boolean, posSlice: Slice | null): HookFn {
  return (tensor, hook) => {
    const name = isBackward ? `${hook.name}_grad` : hook.name
    let t = device ? tensor.to(device) : tensor
    if (removeBatchDim) t = t.get(0)
    if (posSlice !== null) {
      const posDim = HEAD_POS.test(hook.name) ? -3 : -2
      if (t.ndim >= -posDim) t = posSlice.apply(t, posDim)
    }
    store(cache, name, t)
  }
}

function common(o: CachingHooksOptions) {
  return {
    cache: cacheArg(opt<unknown>(o, 'cache', null)),
    inclBwd: boolArg('inclBwd', opt(o, 'inclBwd', false)),
    device: opt<Device | null>(o, 'device', null),
    removeBatchDim: boolArg('removeBatchDim', opt(o, 'removeBatchDim', false)),
  }
}

/**
 * TL's `get_caching_hooks`: `[cache, fwdHooks, bwdHooks]`, hooks that fill `cache` when added
 * (e.g. through `hooks({ fwdHooks, bwdHooks }, fn)`); nothing is added to the model.
 */
export function getCachingHooks(host: CachingHost, o: GetCachingHooksOptions = {}): [CacheDict, FwdHook[], FwdHook[]] {
  const { cache, inclBwd, device, removeBatchDim } = common(o)
  const ps = opt<Slice | SliceInput | null>(o, 'posSlice', null)
  const posSlice = ps === null ? null : Slice.unwrap(ps)
  const filter = namesFilterPredicate(opt<unknown>(o, 'namesFilter', null))
  host.markCaching()
  const fwd: FwdHook[] = []
  const bwd: FwdHook[] = []
  for (const name of host.hookDict.keys()) {
    if (!filter(name)) continue
    fwd.push([name, saveHook(cache, false, device, removeBatchDim, posSlice)])
    if (inclBwd) bwd.push([name, saveHook(cache, true, device, removeBatchDim, posSlice)])
  }
  return [cache, fwd, bwd]
}

/**
 * TL's `add_caching_hooks`: adds (temporary) hooks to every point `namesFilter` picks that store
 * its activation in `cache` (and, with `inclBwd`, its gradient as `{name}_grad`) whenever the
 * model runs; returns the cache. `resetHooks()` removes them.
 */
export function addCachingHooks(host: CachingHost, o: CachingHooksOptions = {}): CacheDict {
  const { cache, inclBwd, device, removeBatchDim } = common(o)
  const filter = namesFilterPredicate(opt<unknown>(o, 'namesFilter', null))
  host.markCaching()
  for (const [name, hp] of host.hookDict) {
    if (!filter(name)) continue
    hp.addHook(saveHook(cache, false, device, removeBatchDim, null), 'fwd')
    if (inclBwd) hp.addHook(saveHook(cache, true, device, removeBatchDim, null), 'bwd')
  }
  return cache
}
