import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'
import { opt } from '../model/options'

export type HookDir = 'fwd' | 'bwd'

/** TL's `LensHandle`: one hook function added to a hook point. */
export interface LensHandle {
  readonly hook: HookFn
  /** Survives `resetHooks()` / `removeHooks()` unless `includingPermanent`. */
  readonly isPermanent: boolean
  /** The `hooks()` context level it was added in (null when added outside one). */
  readonly contextLevel: number | null
}

export interface AddHookOptions {
  dir?: HookDir
  isPermanent?: boolean
  /** TL's `level`: the context level to tag the hook with (`hooks()` sets it). */
  level?: number | null
  /** Run before the hooks already on this point. */
  prepend?: boolean
}

export interface RemoveHooksOptions {
  /** 'fwd' (HookPoint's default), 'bwd' or 'both'. */
  dir?: HookDir | 'both'
  includingPermanent?: boolean
  /** Only hooks added at this context level (permanent ones stay unless `includingPermanent`). */
  level?: number | null
}

function dirArg(dir: unknown, both: boolean): HookDir | 'both' {
  if (dir === 'fwd' || dir === 'bwd' || (both && dir === 'both')) return dir
  throw new TransformerLensError('TL_INVALID_ARGUMENT', `Invalid direction ${String(dir)}`)
}

/**
 * TL's HookPoint: a named activation of the model. It holds the hooks added to it (`fwdHooks`,
 * `bwdHooks`, as TL's lists of handles) and a `ctx` object hooks may keep state in. A hook
 * function receives `(activation, hookPoint)`.
 */
export class HookPoint {
  readonly name: string
  fwdHooks: LensHandle[] = []
  bwdHooks: LensHandle[] = []
  /** TL's `ctx`: a place for hooks to keep state between calls; `clearContext()` empties it. */
  ctx: Record<string, unknown> = {}

  constructor(name: string) {
    this.name = name
  }

  /** TL's `add_hook`: adds `hook` (forward by default; `prepend` puts it first). */
  addHook(hook: HookFn, options: AddHookOptions | HookDir = {}): void {
    const o: AddHookOptions = typeof options === 'string' ? { dir: options } : options
    if (typeof hook !== 'function') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a hook must be a function')
    const dir = dirArg(opt(o, 'dir', 'fwd'), false)
    const level = opt<number | null>(o, 'level', null)
    if (level !== null && !Number.isInteger(level)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `level must be an integer or null, got ${String(level)}`)
    const handle: LensHandle = { hook, isPermanent: opt<unknown>(o, 'isPermanent', false) === true, contextLevel: level }
    const list = dir === 'fwd' ? this.fwdHooks : this.bwdHooks
    if (opt(o, 'prepend', false)) list.unshift(handle)
    else list.push(handle)
  }

  /** TL's `add_perma_hook`: a hook that `resetHooks()` keeps. */
  addPermaHook(hook: HookFn, options: { dir?: HookDir } | HookDir = {}): void {
    const dir = typeof options === 'string' ? options : opt(options, 'dir', 'fwd')
    this.addHook(hook, { dir, isPermanent: true })
  }

  /**
   * TL's `remove_hooks`: removes this point's forward hooks (or `dir` 'bwd' / 'both'), except
   * permanent ones, and with `level` only those added at that context level;
   * `includingPermanent` removes every one.
   */
  removeHooks(options: RemoveHooksOptions | HookDir | 'both' = {}): void {
    const o: RemoveHooksOptions = typeof options === 'string' ? { dir: options } : options
    const dir = dirArg(opt(o, 'dir', 'fwd'), true)
    const all = opt(o, 'includingPermanent', false)
    const level = opt<number | null>(o, 'level', null)
    const keep = (h: LensHandle) => !all && (h.isPermanent || (level !== null && h.contextLevel !== level))
    if (dir === 'fwd' || dir === 'both') this.fwdHooks = this.fwdHooks.filter(keep)
    if (dir === 'bwd' || dir === 'both') this.bwdHooks = this.bwdHooks.filter(keep)
  }

  /** TL's `clear_context`: a fresh, empty `ctx`. */
  clearContext(): void {
    this.ctx = {}
  }

  /** The block index of a `blocks.{L}.…` hook point. */
  layer(): number {
    const m = /^blocks\.(\d+)\./.exec(this.name)
    if (!m) throw new Error(`hook point '${this.name}' is not inside a block`)
    return Number(m[1])
  }
}

/** A forward hook: return nothing to keep the activation, or a same-shape replacement. */
export type HookFn = (activation: Tensor, hook: HookPoint) => Tensor | void | undefined
/** A hook target: an exact hook name, or a predicate over names (TL's name filter). */
export type HookTarget = string | ((name: string) => boolean)
export type FwdHook = [HookTarget, HookFn]

/**
 * Runs a point's forward hooks on `x` in order, as torch runs a module's forward hooks: each
 * sees the current value and may return a replacement. For activations computed in TS
 * (`getResidual`'s positional embedding).
 */
export function fireForwardHooks(point: HookPoint, x: Tensor): Tensor {
  let cur = x
  for (const h of [...point.fwdHooks]) {
    const r = h.hook(cur, point)
    if (r === undefined || r === null) continue
    if (!(r instanceof Tensor)) throw new TransformerLensError('TL_HOOK', `hook on '${point.name}' returned something that is not a Tensor`)
    cur = r
  }
  return cur
}
