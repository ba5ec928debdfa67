import { TransformerLensError } from '../errors'
import { FwdHook, HookDir, HookFn, HookPoint } from './hook-point'

export type { HookDir } from './hook-point'

/**
 * A model's hook points by name, with the hooks added to them (TL keeps hooks on its HookPoint
 * modules). A point is made on first use and kept for the model's life: a hook-table rebuild
 * (a flag change, weight processing) keeps every point and its hooks. A run compiles the
 * points' hooks with its temporary ones into a per-hook-id list.
 */
export class HookRegistry {
  #points = new Map<string, HookPoint>()

  /** The hook point named `name`. */
  point(name: string): HookPoint {
    let p = this.#points.get(name)
    if (p === undefined) {
      p = new HookPoint(name)
      this.#points.set(name, p)
    }
    return p
  }

  /** Every hook point the model has had. */
  all(): HookPoint[] {
    return [...this.#points.values()]
  }

  /** Hooks on every point. */
  get count(): number {
    let n = 0
    for (const p of this.#points.values()) n += p.fwdHooks.length + p.bwdHooks.length
    return n
  }

  /** The points' hooks of one direction, then `extra` (appended after them), by hook id. */
  compile(names: readonly string[], index: ReadonlyMap<string, number>, extra: readonly FwdHook[] = [], dir: HookDir = 'fwd'): HookFn[][] {
    const perId: HookFn[][] = names.map((n) => {
      const p = this.#points.get(n)
      if (p === undefined) return []
      return (dir === 'fwd' ? p.fwdHooks : p.bwdHooks).map((h) => h.hook)
    })
    for (const [target, fn] of extra) {
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
