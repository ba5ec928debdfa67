import { fromNative, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import type { Tensor } from '../tensor'
import { wrapT } from '../tensor'
import { HookFn, HookPoint } from './hook-point'

/** One gradient a run's tap saw, for `runWithCache({ inclBwd: true })`. */
export interface GradRecord {
  hook: number
  seq: number
  grad: Tensor
}

/** The backward side of one forward run, fixed when the forward ran (as torch's module hooks). */
export interface GradRunHooks {
  /** Backward hooks per hook id. */
  perId: readonly HookFn[][]
  points: readonly HookPoint[]
  /** Hook ids whose gradients are recorded (incl_bwd), and where they go. */
  record?: { ids: ReadonlySet<number>; into: GradRecord[] }
}

const runs = new Map<number, GradRunHooks>()
let nextRun = 1

/** Forgets runs whose autograd graphs were freed. */
function sweep(): void {
  for (const id of binding.takeFinishedGradRuns()) runs.delete(id)
}

/** Registers a run's backward hooks; the id goes to the native forward as `gradRun`. */
export function registerGradRun(hooks: GradRunHooks): number {
  sweep()
  const id = nextRun++
  runs.set(id, hooks)
  return id
}

/**
 * What TL's backward hooks do at one hook point: each hook sees the incoming gradient; a hook
 * may return a replacement (a Tensor, or TL's one-element tuple `[grad]`) and the last one
 * returned is what flows on upstream.
 */
function fire(run: GradRunHooks, hook: number, seq: number, grad: Tensor): Tensor | undefined {
  if (run.record?.ids.has(hook)) run.record.into.push({ hook, seq, grad })
  let out: Tensor | undefined
  for (const fn of run.perId[hook] ?? []) {
    let r: unknown = fn(grad, run.points[hook])
    if (Array.isArray(r) && r.length === 1) r = r[0]
    if (r === undefined || r === null) continue
    if (typeof r !== 'object' || !('native' in r)) {
      throw new TransformerLensError('TL_HOOK', `backward hook on '${run.points[hook].name}' returned something that is not a Tensor`)
    }
    out = r as Tensor
  }
  return out
}

/**
 * Backpropagates from a scalar tensor through the runs it depends on (those made with
 * backward hooks or `inclBwd`), firing their backward hooks.
 */
export function backward(root: Tensor): void {
  let hookError: unknown
  const dispatch = (runId: number, hook: number, seq: number, g: binding.NativeTensor): binding.NativeTensor | undefined => {
    const run = runs.get(runId)
    if (!run) return undefined
    try {
      return fire(run, hook, seq, wrapT(g))?.native
    } catch (e) {
      hookError ??= e
      throw e
    }
  }
  try {
    binding.backward(root.native, dispatch)
  } catch (e) {
    throw hookError ?? fromNative(e)
  } finally {
    sweep()
  }
}

/**
 * TL's incl_bwd cache entries from recorded gradients: torch runs backward hooks in reverse
 * order of their creation, so a key enters the cache when its last-created tap fires and
 * keeps the value of its first-created one (ln1 is tapped three times per block, as in TL).
 */
export function gradEntries(records: GradRecord[], names: readonly string[]): Map<string, Tensor> {
  const out = new Map<string, Tensor>()
  for (const r of [...records].sort((a, b) => b.seq - a.seq)) out.set(`${names[r.hook]}_grad`, r.grad)
  return out
}
