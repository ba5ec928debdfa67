import * as binding from '../native/binding'
import { TransformerLensError } from '../errors'
import { Tensor, wrapT } from '../tensor'
import { GradRecord, registerGradRun } from './backward'
import { FwdHook, HookPoint } from './hook-point'
import { HookRegistry } from './registry'

// Per hook id, what the native forward does there (the addon's flag bits).
const CACHE = 1
const CALL_JS = 2
const GRAD = 4

export interface HookPlan {
  flags: number[]
  dispatch: ((id: number, t: binding.NativeTensor) => binding.NativeTensor | undefined) | null
  hookError: () => unknown
  /** The gradient run id, when the run taps gradients. */
  gradRun?: number
}

/** What a run taps in the backward pass: extra backward hooks, and gradients to record. */
export interface GradPlan {
  bwdHooks?: readonly FwdHook[]
  record?: { filter: (name: string) => boolean; into: GradRecord[] }
}

/** A model's hook table and registered hooks, as a plan needs them. */
export interface HookContext {
  registry: HookRegistry
  names: readonly string[]
  index: ReadonlyMap<string, number>
  points: readonly HookPoint[]
}

/**
 * The per-run hook plan: flags per hook id (cache / call JS / tap the gradient) and, when JS
 * hooks are registered, the dispatcher the native forward calls on the JS thread.
 */
export function compilePlan(ctx: HookContext, extraHooks: readonly FwdHook[], cacheFilter: ((n: string) => boolean) | null, grad: GradPlan | null = null): HookPlan {
  const perId = ctx.registry.compile(ctx.names, ctx.index, extraHooks)
  const flags = new Array<number>(ctx.names.length).fill(0)
  let anyJs = false
  perId.forEach((fns, id) => {
    if (fns.length > 0) {
      flags[id] |= CALL_JS
      anyJs = true
    }
  })
  if (cacheFilter) ctx.names.forEach((name, id) => (flags[id] |= cacheFilter(name) ? CACHE : 0))
  const gradRun = grad ? gradPlan(ctx, grad, flags) : undefined
  if (!anyJs) return { flags, dispatch: null, hookError: () => undefined, gradRun }
  let hookError: unknown = undefined
  const points = ctx.points
  const dispatch = (id: number, t: binding.NativeTensor): binding.NativeTensor | undefined => {
    let cur = wrapT(t)
    let changed = false
    try {
      for (const fn of perId[id]) {
        const r = fn(cur, points[id])
        if (r === undefined || r === null) continue
        if (!(r instanceof Tensor)) throw new TransformerLensError('TL_HOOK', `hook on '${ctx.names[id]}' returned something that is not a Tensor`)
        cur = r
        changed = true
      }
    } catch (e) {
      hookError = e
      throw e
    }
    return changed ? cur.native : undefined
  }
  return { flags, dispatch, hookError: () => hookError, gradRun }
}

/**
 * Flags the hook points whose gradients the run taps (registered and extra backward hooks,
 * recorded gradients) and registers the run's backward hooks. Undefined when nothing is tapped.
 */
function gradPlan(ctx: HookContext, grad: GradPlan, flags: number[]): number | undefined {
  const perId = ctx.registry.compile(ctx.names, ctx.index, grad.bwdHooks ?? [], 'bwd')
  const ids = new Set<number>()
  if (grad.record) ctx.names.forEach((name, id) => grad.record!.filter(name) && ids.add(id))
  let any = ids.size > 0
  perId.forEach((fns, id) => {
    if (fns.length > 0 || ids.has(id)) {
      flags[id] |= GRAD
      any = true
    }
  })
  if (!any) return undefined
  const record = grad.record ? { ids, into: grad.record.into } : undefined
  return registerGradRun({ perId, points: ctx.points, record })
}

/**
 * The plan's dispatcher checking `signal` before each JS hook (on the JS thread the signal can
 * only flip from inside a hook); `aborted()` is the error it threw, if it did.
 */
export function abortableDispatch(
  dispatch: NonNullable<HookPlan['dispatch']>,
  signal: AbortSignal | undefined,
): { dispatch: NonNullable<HookPlan['dispatch']>; aborted: () => TransformerLensError | undefined } {
  let aborted: TransformerLensError | undefined
  if (!signal) return { dispatch, aborted: () => undefined }
  return {
    dispatch: (id, t) => {
      if (signal.aborted) throw (aborted = new TransformerLensError('TL_ABORTED', 'the forward pass was aborted'))
      return dispatch(id, t)
    },
    aborted: () => aborted,
  }
}
