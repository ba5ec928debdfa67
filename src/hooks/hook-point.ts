import { Tensor } from '../tensor'

/** What a hook function receives beside the activation: TL's HookPoint, read-only. */
export class HookPoint {
  readonly name: string

  constructor(name: string) {
    this.name = name
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
