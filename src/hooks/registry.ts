import { TransformerLensError } from '../errors'
import { FwdHook, HookFn, HookTarget } from './hook-point'

export type HookDir = 'fwd' | 'bwd'

interface Registered {
  target: HookTarget
  fn: HookFn
  dir: HookDir
  permanent: boolean
  /** Order key: prepended hooks sort before appended ones, each in registration order. */
  order: number
}

/**
 * The hooks registered on a model (TL's `add_hook` / `reset_hooks` / permanent hooks). A run
 * compiles them with its temporary hooks into a per-hook-id list.
 */
export class HookRegistry {
  #hooks: Registered[] = []
  #next = 1
  #first = -1

  add(target: HookTarget, fn: HookFn, opts: { permanent?: boolean; prepend?: boolean; dir?: HookDir } = {}): void {
    if (typeof fn !== 'function') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a hook must be a function')
    const dir = opts.dir ?? 'fwd'
    if (dir !== 'fwd' && dir !== 'bwd') throw new TransformerLensError('TL_INVALID_ARGUMENT', `invalid hook direction '${dir}': use 'fwd' or 'bwd'`)
    const order = opts.prepend ? this.#first-- : this.#next++
    this.#hooks.push({ target, fn, dir, permanent: opts.permanent ?? false, order })
  }

  /**
   * Removes temporary hooks (and permanent ones with `includingPermanent`) of one direction or
   * both (TL's `reset_hooks(direction=...)`).
   */
  reset(includingPermanent = false, direction: HookDir | 'both' = 'both'): void {
    if (direction !== 'fwd' && direction !== 'bwd' && direction !== 'both') {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `invalid direction '${direction}': use 'fwd', 'bwd' or 'both'`)
    }
    this.#hooks = this.#hooks.filter((h) => (direction !== 'both' && h.dir !== direction) || (h.permanent && !includingPermanent))
  }

  get count(): number {
    return this.#hooks.length
  }

  /** Registered hooks plus `extra` (appended after them), resolved to hook ids. */
  compile(names: readonly string[], index: ReadonlyMap<string, number>, extra: readonly FwdHook[] = [], dir: HookDir = 'fwd'): HookFn[][] {
    const all = this.#hooks
      .filter((h) => h.dir === dir)
      .sort((a, b) => a.order - b.order)
      .map((h) => [h.target, h.fn] as FwdHook)
    all.push(...extra)
    const perId: HookFn[][] = names.map(() => [])
    for (const [target, fn] of all) {
      if (typeof fn !== 'function') throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a hook must be a function')
      if (typeof target === 'string') {
        const id = index.get(target)
        if (id === undefined) throw new TransformerLensError('TL_UNKNOWN_HOOK', `unknown hook name '${target}'`)
        perId[id].push(fn)
      } else if (typeof target === 'function') {
        names.forEach((n, id) => {
          if (target(n)) perId[id].push(fn)
        })
      } else {
        throw new TransformerLensError('TL_INVALID_ARGUMENT', 'a hook target must be a hook name or a name filter function')
      }
    }
    return perId
  }
}
