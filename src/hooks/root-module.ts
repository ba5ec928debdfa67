/**
 * TL's `HookedRootModule`: a model's hook points and the hook management every TL model has
 * (`add_hook`, `add_perma_hook`, `check_and_add_hook`, `reset_hooks`, `remove_all_hook_fns`,
 * `clear_contexts`, the `hooks()` context with its levels, `hook_points`, `hook_dict`, and the
 * caching hooks of ./caching.ts). `HookedTransformer` inherits it, as in TL.
 */
import { TransformerLensError } from '../errors'
import { opt } from '../model/options'
import * as caching from './caching'
import { AddHookOptions, FwdHook, HookDir, HookFn, HookPoint, HookTarget } from './hook-point'
import type { HookContext } from './plan'
import { HookRegistry } from './registry'

export interface ResetHooksOptions {
  /** Empty every hook point's `ctx` (default true). TL: `clear_contexts`. */
  clearContexts?: boolean
  /** 'fwd', 'bwd' or 'both' (default). */
  direction?: HookDir | 'both'
  /** Remove permanent hooks too. TL: `including_permanent`. */
  includingPermanent?: boolean
  /** Only the (non-permanent) hooks added at this `hooks()` context level. */
  level?: number | null
}

export interface HooksContextOptions {
  fwdHooks?: FwdHook[]
  bwdHooks?: FwdHook[]
  /** Remove this context's hooks when it ends (default true). TL: `reset_hooks_end`. */
  resetHooksEnd?: boolean
  /** Also empty the hook points' `ctx` then. TL: `clear_contexts` (default false). */
  clearContexts?: boolean
}

function directionArg(d: unknown): HookDir | 'both' {
  if (d === 'fwd' || d === 'bwd' || d === 'both') return d
  throw new TransformerLensError('TL_INVALID_ARGUMENT', `invalid direction '${String(d)}': use 'fwd', 'bwd' or 'both'`)
}

export abstract class HookedRootModule {
  #names: string[] = []
  #index = new Map<string, number>()
  #points: HookPoint[] = []
  #registry = new HookRegistry()
  #contextLevel = 0
  #isCaching = false

  /**
   * Sets the hook table (names in firing order) after a load or a change of flags; the hooks on
   * a point stay with it. @internal
   */
  protected setHookTable(names: string[]): void {
    this.#names = names
    this.#index = new Map(names.map((n, i) => [n, i]))
    this.#points = names.map((n) => this.#registry.point(n))
  }

  /** What a run's hook plan reads. @internal */
  protected hookContext(): HookContext {
    return { registry: this.#registry, names: this.#names, index: this.#index, points: this.#points }
  }

  /** Every hook point name, in firing order. */
  hookNames(): string[] {
    return [...this.#names]
  }

  /** TL's `hook_dict`: name → HookPoint (firing order; TL's is module order). */
  get hookDict(): Map<string, HookPoint> {
    return new Map(this.#names.map((n, i) => [n, this.#points[i]]))
  }

  /**
   * TL's `hook_points()`: every HookPoint of the model (also those whose `use_*` flag is off,
   * which do not fire), in firing order (TL's are in module order).
   */
  hookPoints(): HookPoint[] {
    return [...this.#points]
  }

  /** TL's `context_level`: how many `hooks()` contexts are open. */
  get contextLevel(): number {
    return this.#contextLevel
  }

  /** TL's `is_caching`: set by the caching-hook methods, cleared by `resetHooks`. */
  get isCaching(): boolean {
    return this.#isCaching
  }

  #matching(name: HookTarget): [string, HookPoint][] {
    if (typeof name === 'string') {
      const i = this.#index.get(name)
      if (i === undefined) throw new TransformerLensError('TL_UNKNOWN_HOOK', `unknown hook name '${name}'`)
      return [[name, this.#points[i]]]
    }
    if (typeof name !== 'function') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a hook target must be a hook name or a name filter function')
    return this.#names.map((n, i) => [n, this.#points[i]] as [string, HookPoint]).filter(([n]) => name(n))
  }

  /**
   * TL's `add_hook`: a name or a name filter, and a hook function. A backward hook (`dir: 'bwd'`)
   * receives the gradient of the hook point's output when `backward()` is called on a scalar
   * computed from a later run's output; it may return a replacement gradient.
   */
  addHook(name: HookTarget, hook: HookFn, options: AddHookOptions = {}): void {
    if (typeof hook !== 'function') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a hook must be a function')
    for (const [n, p] of this.#matching(name)) this.checkAndAddHook(p, n, hook, options)
  }

  /** TL's `add_perma_hook`: `addHook` with `isPermanent` (kept by `resetHooks()`). */
  addPermaHook(name: HookTarget, hook: HookFn, options: { dir?: HookDir } = {}): void {
    this.addHook(name, hook, { dir: opt(options, 'dir', 'fwd'), isPermanent: true })
  }

  /** TL's `check_and_add_hook`: `checkHooksToAdd`, then adds the hook to `hookPoint`. */
  checkAndAddHook(hookPoint: HookPoint, hookPointName: string, hook: HookFn, options: AddHookOptions = {}): void {
    if (!(hookPoint instanceof HookPoint)) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'hookPoint must be a HookPoint')
    this.checkHooksToAdd(hookPoint, hookPointName, hook, options)
    hookPoint.addHook(hook, options)
  }

  /** TL's `check_hooks_to_add`: checks before a hook is added (none here; models override it). */
  checkHooksToAdd(_hookPoint: HookPoint, _hookPointName: string, _hook: HookFn, _options: AddHookOptions = {}): void {}

  /**
   * TL's `reset_hooks`: empties the hook contexts (unless `clearContexts: false`) and removes
   * temporary hooks (permanent ones too with `includingPermanent`), of both directions or of
   * `direction`, or only those of context `level`.
   */
  resetHooks(options: ResetHooksOptions = {}): void {
    const direction = directionArg(opt(options, 'direction', 'both'))
    if (opt(options, 'clearContexts', true)) this.clearContexts()
    this.removeAllHookFns({ direction, includingPermanent: opt(options, 'includingPermanent', false), level: opt(options, 'level', null) })
    this.#isCaching = false
  }

  /** TL's `remove_all_hook_fns`: `removeHooks` on every hook point (default: both directions). */
  removeAllHookFns(options: { direction?: HookDir | 'both'; includingPermanent?: boolean; level?: number | null } = {}): void {
    const dir = directionArg(opt(options, 'direction', 'both'))
    const o = { dir, includingPermanent: opt(options, 'includingPermanent', false), level: opt<number | null>(options, 'level', null) }
    for (const p of this.#registry.all()) p.removeHooks(o)
  }

  /** TL's `clear_contexts`: empties every hook point's `ctx`. */
  clearContexts(): void {
    for (const p of this.#registry.all()) p.clearContext()
  }

  /**
   * TL's `hooks()` context manager: `fwdHooks` / `bwdHooks` live (at a new context level) for
   * the duration of `fn`; when it ends only that level's hooks are removed.
   */
  async hooks<T>(options: HooksContextOptions, fn: (model: this) => Promise<T> | T): Promise<T> {
    const level = ++this.#contextLevel
    try {
      for (const [t, h] of opt<FwdHook[]>(options, 'fwdHooks', [])) this.#enable(t, h, 'fwd', level)
      for (const [t, h] of opt<FwdHook[]>(options, 'bwdHooks', [])) this.#enable(t, h, 'bwd', level)
      return await fn(this)
    } finally {
      if (opt(options, 'resetHooksEnd', true)) this.resetHooks({ clearContexts: opt(options, 'clearContexts', false), level })
      this.#contextLevel--
    }
  }

  /** TL's `_enable_hook`: straight onto the points, tagged with the level (no checks). */
  #enable(target: HookTarget, hook: HookFn, dir: HookDir, level: number): void {
    for (const [, p] of this.#matching(target)) p.addHook(hook, { dir, level })
  }

  /** Hooks kept after a `runWithHooks` with `resetHooksEnd: false`, tagged as TL tags them. @internal */
  protected keepRunHooks(fwd: readonly FwdHook[], bwd: readonly FwdHook[]): void {
    const level = this.#contextLevel + 1
    for (const [t, h] of fwd) this.#enable(t, h, 'fwd', level)
    for (const [t, h] of bwd) this.#enable(t, h, 'bwd', level)
  }

  // ---- caching hooks (./caching.ts) ----

  #cachingHost(): caching.CachingHost {
    return { hookDict: this.hookDict, markCaching: () => void (this.#isCaching = true) }
  }

  /** TL's `get_caching_hooks`: `[cache, fwdHooks, bwdHooks]` that fill `cache` once added. */
  getCachingHooks(options: caching.GetCachingHooksOptions = {}): [caching.CacheDict, FwdHook[], FwdHook[]] {
    return caching.getCachingHooks(this.#cachingHost(), options)
  }

  /** TL's `add_caching_hooks`: adds hooks that store activations in the returned cache. */
  addCachingHooks(options: caching.CachingHooksOptions = {}): caching.CacheDict {
    return caching.addCachingHooks(this.#cachingHost(), options)
  }

  /** TL's `cache_all` (deprecated in TL): caching hooks on every hook point, filling `cache`. */
  cacheAll(cache: caching.CacheDict | null, options: Omit<caching.CachingHooksOptions, 'cache' | 'namesFilter'> = {}): caching.CacheDict {
    return this.addCachingHooks({ ...options, namesFilter: () => true, cache })
  }

  /** TL's `cache_some` (deprecated in TL): caching hooks on the points `names` picks. */
  cacheSome(cache: caching.CacheDict | null, names: (name: string) => boolean, options: Omit<caching.CachingHooksOptions, 'cache' | 'namesFilter'> = {}): caching.CacheDict {
    return this.addCachingHooks({ ...options, namesFilter: names, cache })
  }
}

/** HookedTransformer's `check_hooks_to_add`: a flag-gated hook point needs its `use_*` flag on. */
export function checkFlaggedHook(cfg: Record<string, unknown>, name: string): void {
  const need = (flag: string, label = flag) => {
    if (!cfg[flag]) throw new TransformerLensError('TL_INVALID_ARGUMENT', `Cannot add hook ${name} if ${label} is False`)
  }
  if (name.endsWith('attn.hook_result')) need('use_attn_result', 'use_attn_result_hook')
  if (/hook_[qkv]_input$/.test(name)) need('use_split_qkv_input')
  if (name.endsWith('mlp_in')) need('use_hook_mlp_in')
  if (name.endsWith('attn_in')) need('use_attn_in')
}
