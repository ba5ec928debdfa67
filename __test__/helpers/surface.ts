/**
 * Helpers of __test__/surface.test.ts: golden tensors as Tensors, sign-canonical refactored
 * weights, and the replay of make_surface_fixtures.py's hook steps on this library.
 */
import { HookedTransformer, HookPoint, Tensor, TransformerLensError } from '../../src/index'
import type { Golden } from './safetensors'

/** A golden tensor as a Tensor (int64 stays int64). */
export function T(g: Golden | undefined): Tensor {
  if (!g) throw new Error('missing golden tensor')
  return g.dtype === 'I64' ? Tensor.from(g.data as BigInt64Array, g.shape, 'int64') : Tensor.from(g.data as Float32Array, g.shape)
}

export interface Plain {
  shape: number[]
  data: Float32Array
}

export function plain(t: Tensor | Golden): Plain {
  if (t instanceof Tensor) return { shape: t.shape, data: Float32Array.from(t.toArray() as Float32Array) }
  return { shape: t.shape, data: Float32Array.from(t.data as Float32Array) }
}

/**
 * The refactored weights with each singular pair's sign fixed (SVD gives singular vectors up to
 * sign; torch and faer choose differently): per head and component j, the entry of largest
 * magnitude of `[W_Q[h, :, j]; b_Q[h, j]]` (and of `W_V[h, :, j]`) is made positive, flipping
 * the paired K (and O) entries with it. Works in place on layer `l`'s weights.
 */
export function canonicalizeRefactored(sd: Map<string, Plain>, l: number): void {
  const g = (k: string) => sd.get(`blocks.${l}.attn.${k}`)!
  const [wq, bq, wk, bk, wv, wo] = ['W_Q', 'b_Q', 'W_K', 'b_K', 'W_V', 'W_O'].map(g)
  const [h, d, dh] = wq.shape
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < dh; j++) {
      const at = (w: Plain, r: number) => i * d * dh + r * dh + j
      const sign = (w: Plain, bias: Plain | null) => {
        let best = bias ? bias.data[i * dh + j] : 0
        for (let r = 0; r < d; r++) if (Math.abs(w.data[at(w, r)]) > Math.abs(best)) best = w.data[at(w, r)]
        return best < 0 ? -1 : 1
      }
      const s = sign(wq, bq)
      for (let r = 0; r < d; r++) {
        wq.data[at(wq, r)] *= s
        wk.data[at(wk, r)] *= s
      }
      bq.data[i * dh + j] *= s
      bk.data[i * dh + j] *= s
      const v = sign(wv, null)
      for (let r = 0; r < d; r++) wv.data[at(wv, r)] *= v
      for (let c = 0; c < d; c++) wo.data[i * dh * d + j * d + c] *= v
    }
  }
}

function errorOf(fn: () => void): { type: string; message: string } {
  try {
    fn()
  } catch (e) {
    return { type: (e as TransformerLensError).code, message: (e as Error).message }
  }
  throw new Error('expected an error')
}

/** make_surface_fixtures.py's `golden_hooks` steps, on this library: `[label, value]` pairs and cached tensors. */
export async function replayHooks(model: HookedTransformer, tokens: Tensor): Promise<{ obs: [string, unknown][]; tensors: Map<string, Tensor> }> {
  const obs: [string, unknown][] = []
  const tensors = new Map<string, Tensor>()
  const nFwd = () => model.hookPoints().reduce((a, p) => a + p.fwdHooks.length, 0)
  const nBwd = () => model.hookPoints().reduce((a, p) => a + p.bwdHooks.length, 0)
  const emb = () => model.hookDict.get('hook_embed')!.fwdHooks.length
  const calls: string[] = []
  const mk = (tag: string) => () => void calls.push(tag)
  const ran = (label: string) => {
    obs.push([label, [...calls]])
    calls.length = 0
  }
  const keys = (c: Map<string, Tensor> | Record<string, Tensor>) => (c instanceof Map ? [...c.keys()] : Object.keys(c))
  const run = () => model.forward(tokens)

  // Caching hooks.
  let cache = new Map<string, Tensor>()
  model.cacheAll(cache)
  obs.push(['cache_all', [model.isCaching, nFwd(), nBwd()]])
  await run()
  obs.push(['cache_all.keys', keys(cache)])
  for (const [k, v] of cache) tensors.set(`cache_all.${k}`, v)
  model.resetHooks()
  obs.push(['reset', [model.isCaching, nFwd()]])
  cache = new Map()
  model.cacheSome(cache, (n) => n.endsWith('hook_pattern') || n === 'hook_embed')
  await run()
  obs.push(['cache_some.keys', keys(cache)])
  model.resetHooks()
  const c1 = model.addCachingHooks({ namesFilter: 'blocks.1.hook_resid_post' })
  await run()
  obs.push(['add_caching_hooks.str', keys(c1)])
  model.resetHooks()
  const c2 = model.addCachingHooks({ names_filter: ['hook_embed', 'ln_final.hook_normalized'], remove_batch_dim: true } as object) as Map<string, Tensor>
  await run()
  obs.push(['add_caching_hooks.list', [...c2].map(([k, v]) => [k, v.shape])])
  model.resetHooks()
  cache = new Map()
  model.cacheSome(cache, (n) => n.startsWith('blocks.1.') && !n.includes('ln'), { inclBwd: true })
  obs.push(['incl_bwd', [nFwd(), nBwd()]])
  const loss = await model.forward(tokens, { returnType: 'loss' })
  loss.backward()
  obs.push(['incl_bwd.keys', keys(cache)])
  for (const [k, v] of cache) tensors.set(`incl_bwd.${k}`, v)
  model.resetHooks()
  const pick = ['blocks.0.attn.hook_z', 'blocks.0.attn.hook_pattern', 'blocks.0.hook_resid_post']
  const [pc, fwd, bwd] = model.getCachingHooks({ namesFilter: (n) => pick.includes(n), posSlice: -1 })
  obs.push(['get_caching_hooks', [fwd.map(([n]) => n), bwd.length, model.isCaching, nFwd()]])
  await model.hooks({ fwdHooks: fwd }, run)
  obs.push(['get_caching_hooks.keys', keys(pc)])
  for (const [k, v] of pc as Map<string, Tensor>) tensors.set(`pos_slice.${k}`, v)

  // Permanent hooks, resetHooks and removeAllHookFns.
  model.addPermaHook('hook_embed', mk('perma'))
  model.addHook('hook_embed', mk('temp'))
  obs.push(['added', emb()])
  await run()
  ran('run')
  model.resetHooks()
  obs.push(['reset', emb()])
  await run()
  ran('run')
  model.removeAllHookFns()
  obs.push(['remove_all', emb()])
  model.removeAllHookFns({ includingPermanent: true })
  obs.push(['remove_all_permanent', emb()])

  // runWithHooks leaves other hooks alone; resetHooksEnd: false keeps its own.
  model.addHook('hook_embed', mk('temp'))
  await model.runWithHooks(tokens, { fwdHooks: [['hook_embed', mk('rwh')]] })
  ran('run_with_hooks')
  obs.push(['after_run_with_hooks', emb()])
  await model.runWithHooks(tokens, { fwdHooks: [['hook_embed', mk('kept')]], resetHooksEnd: false })
  ran('run_with_hooks.kept')
  obs.push(['kept', [emb(), model.hookDict.get('hook_embed')!.fwdHooks.map((h) => h.contextLevel)]])
  await run()
  ran('run')
  model.resetHooks()

  // hooks() context levels.
  await model.hooks({ fwdHooks: [['hook_embed', mk('outer')]] }, async () => {
    obs.push(['outer', [emb(), model.contextLevel]])
    await model.hooks({ fwdHooks: [['hook_embed', mk('inner')]] }, async () => {
      obs.push(['inner', [emb(), model.contextLevel, model.hookDict.get('hook_embed')!.fwdHooks.map((h) => h.contextLevel)]])
      await run()
      ran('run.inner')
    })
    obs.push(['inner_done', emb()])
    await run()
    ran('run.outer')
  })
  obs.push(['outer_done', [emb(), model.contextLevel]])

  // Hook contexts.
  const count = (_x: Tensor, hook: HookPoint) => void (hook.ctx.n = ((hook.ctx.n as number | undefined) ?? 0) + 1)
  const point = model.hookDict.get('blocks.0.ln1.hook_scale')!
  model.addHook('blocks.0.ln1.hook_scale', count)
  await run()
  await run()
  obs.push(['ctx', { ...point.ctx }])
  model.resetHooks({ clearContexts: false })
  obs.push(['ctx.kept', { ...point.ctx }])
  model.clearContexts()
  obs.push(['ctx.cleared', { ...point.ctx }])
  model.addHook('blocks.0.ln1.hook_scale', count)
  await run()
  obs.push(['ctx.again', { ...point.ctx }])
  model.resetHooks()
  obs.push(['ctx.reset', { ...point.ctx }])

  // HookPoint methods.
  const hp = model.hookDict.get('blocks.0.hook_resid_pre')!
  hp.addHook(mk('a'))
  hp.addHook(mk('b'), { prepend: true })
  hp.addPermaHook(mk('p'))
  hp.addHook(mk('g'), { dir: 'bwd' })
  await run()
  ran('hp.run')
  hp.removeHooks()
  obs.push(['hp.remove_hooks', [hp.fwdHooks.length, hp.bwdHooks.length]])
  hp.removeHooks({ dir: 'both', includingPermanent: true })
  obs.push(['hp.remove_hooks.all', [hp.fwdHooks.length, hp.bwdHooks.length]])
  hp.addHook(mk('l3'), { level: 3 })
  hp.addHook(mk('l4'), { level: 4 })
  hp.removeHooks({ level: 3 })
  await run()
  ran('hp.level')
  hp.removeHooks({ includingPermanent: true })

  // Name filters, and the flag checks of checkHooksToAdd.
  model.addHook((n) => n.endsWith('hook_resid_post'), mk('f'))
  obs.push(['filter', model.hookPoints().filter((p) => p.fwdHooks.length > 0).map((p) => p.name)])
  model.resetHooks()
  const name = 'blocks.0.attn.hook_result'
  obs.push(['flag_error', errorOf(() => model.addHook(name, mk('x')))])
  model.setUseAttnResult(true)
  model.addHook(name, mk('x'))
  obs.push(['flag_on', model.hookDict.get(name)!.fwdHooks.length])
  model.resetHooks()
  model.setUseAttnResult(false)
  return { obs, tensors }
}
