/**
 * The rest of TL's model surface against TransformerLens (golden/surface/*, from
 * scripts/reference/make_surface_fixtures.py): weight processing on a loaded model
 * (processWeights, the single steps in place and on a state dict, refactorFactoredAttnMatrices,
 * loadAndProcessStateDict), inputToEmbed / getResidual / lossFn / getPosOffset, and the
 * HookedRootModule / HookPoint methods (caching hooks, permanent hooks, levels, contexts).
 */
import test, { ExecutionContext } from 'ava'

import { HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import { canonicalizeRefactored, plain, Plain, replayHooks, T } from './helpers/surface'

useFixtureHub()

const TOL = 1e-4
const MODELS = ['gpt2', '01-ai/Yi-6B']
const slugOf = (m: string) => m.replace('/', '__')

interface Case {
  keys: string[]
  weights: Record<string, string>
  logits?: string
  replay?: { method: string; kwargs?: Record<string, unknown> }
  normalization_type?: string
  method?: string
  kwargs?: Record<string, unknown>
}

const STEP_METHODS: Record<string, string> = {
  fold_layer_norm: 'foldLayerNorm',
  center_writing_weights: 'centerWritingWeights',
  center_unembed: 'centerUnembed',
  fold_value_biases: 'foldValueBiases',
  refactor_factored_attn_matrices: 'refactorFactoredAttnMatrices',
}

type Stepper = (sd?: Map<string, Tensor>, o?: object) => Map<string, Tensor> | void

function method(m: HookedTransformer, name: string): Stepper {
  return (m as unknown as Record<string, Stepper>)[STEP_METHODS[name]].bind(m)
}

/** This model's state dict (TL's keys in TL's order) with the weights of TL's unprocessed model. */
function unprocessedDict(m: HookedTransformer, g: ReturnType<typeof golden>, base: Case): Map<string, Tensor> {
  const sd = m.stateDict()
  for (const [k, blob] of Object.entries(base.weights)) sd.set(k, T(g.tensors.get(blob)))
  return sd
}

/** The state dict's weights (and the logits) against a case; refactored weights up to sign. */
async function compareCase(t: ExecutionContext, label: string, g: ReturnType<typeof golden>, c: Case, sd: Map<string, Tensor>, m?: HookedTransformer) {
  t.deepEqual([...sd.keys()], c.keys, `${label}: state dict keys`)
  const refactored = /refactor/.test(label)
  const ours = new Map<string, Plain>()
  const theirs = new Map<string, Plain>()
  for (const [k, blob] of Object.entries(c.weights)) {
    if (!sd.has(k)) continue
    ours.set(k, plain(sd.get(k)!))
    theirs.set(k, plain(g.tensors.get(blob)!))
  }
  if (refactored) {
    const layers = new Set([...ours.keys()].map((k) => /^blocks\.(\d+)\./.exec(k)?.[1]).filter((l) => l !== undefined))
    for (const l of layers) {
      canonicalizeRefactored(ours, Number(l))
      canonicalizeRefactored(theirs, Number(l))
    }
  }
  for (const [k, p] of ours) assertClose(t, Tensor.from(p.data, p.shape), { dtype: 'F32', shape: theirs.get(k)!.shape, data: theirs.get(k)!.data }, TOL, `${label}.${k}`)
  if (m && c.logits) assertClose(t, await m.forward(T(g.tensors.get('tokens'))), g.tensors.get(c.logits), TOL, `${label}.logits`)
}

for (const id of MODELS) {
  const g = () => golden('surface', `${slugOf(id)}_processing`)
  const cases = () => g().json.cases as Record<string, Case>
  const errorsOf = () => g().json.cases.errors as Record<string, { type: string; message: string }>

  test(`${id}: processing steps, processWeights and loadAndProcessStateDict on a loaded model match TL`, async (t) => {
    const all = cases()
    const base = all.base
    let n = 0
    for (const [name, c] of Object.entries(all)) {
      if (name === 'errors' || !c.replay) continue
      const { method: how, kwargs = {} } = c.replay
      let m: HookedTransformer
      if (how === 'from_pretrained') {
        m = await HookedTransformer.fromPretrained(id, kwargs)
      } else {
        m = await HookedTransformer.fromPretrainedNoProcessing(id)
        if (how === 'process_weights') m.processWeights(kwargs)
        else if (how === 'load_and_process_state_dict') m.loadAndProcessStateDict(unprocessedDict(m, g(), base), kwargs)
        else method(m, how)()
      }
      t.is(m.cfg.normalization_type, c.normalization_type ?? null, `${name}: normalization_type`)
      await compareCase(t, name, g(), c, m.stateDict(), m)
      // Weight properties and the hook table follow the new weights.
      const wu = m.W_U
      assertClose(t, wu, g().tensors.get(c.weights['unembed.W_U']), TOL, `${name}.W_U property`)
      t.deepEqual(m.hookNames(), m.hookPoints().map((p) => p.name))
      m.dispose()
      n++
    }
    t.true(n >= (id === 'gpt2' ? 12 : 10))
  })

  test(`${id}: loadAndProcessStateDict into a processed model is TL's from_pretrained path`, async (t) => {
    const m = await HookedTransformer.fromPretrained(id)
    const c = cases()['load_and_process.default']
    m.loadAndProcessStateDict(unprocessedDict(m, g(), cases().base))
    await compareCase(t, 'into_processed', g(), c, m.stateDict(), m)
    m.dispose()
  })

  test(`${id}: TL's processing methods on a state dict return TL's dict and leave the model alone`, async (t) => {
    const m = await HookedTransformer.fromPretrainedNoProcessing(id)
    const before = await m.forward(T(g().tensors.get('tokens')))
    let n = 0
    for (const [name, c] of Object.entries(cases())) {
      if (!name.startsWith('sd.') || name === 'errors') continue
      const out = method(m, c.method!)(unprocessedDict(m, g(), cases().base), c.kwargs) as Map<string, Tensor>
      await compareCase(t, name, g(), c, out)
      n++
    }
    t.true(n >= 5)
    assertClose(t, await m.forward(T(g().tensors.get('tokens'))), { dtype: 'F32', shape: before.shape, data: before.toArray() as Float32Array }, 0, 'model unchanged')
    m.dispose()
  })

  test(`${id}: where TL raises, the same step is a TransformerLensError naming the same thing`, async (t) => {
    const errors = errorsOf()
    const expect = (e: unknown, tl: { type: string; message: string }, label: string) => {
      t.true(e instanceof TransformerLensError, label)
      const code = (e as TransformerLensError).code
      if (tl.type === 'KeyError') {
        t.is(code, 'TL_MISSING_WEIGHT', label)
        t.true((e as Error).message.includes(`'${tl.message}'`), `${label}: ${(e as Error).message}`)
      } else {
        t.true(['TL_INVALID_ARGUMENT', 'TL_UNSUPPORTED'].includes(code), label)
        t.true((e as Error).message.includes(tl.message), `${label}: ${(e as Error).message}`)
      }
    }
    const processed = await HookedTransformer.fromPretrained(id)
    const logits = await processed.forward(T(g().tensors.get('tokens')))
    expect(t.throws(() => processed.processWeights()), errors['process_weights.on_processed'], 'processWeights on processed weights')
    // A failed step leaves the model as it was.
    assertClose(t, await processed.forward(T(g().tensors.get('tokens'))), { dtype: 'F32', shape: logits.shape, data: logits.toArray() as Float32Array }, 0, 'unchanged after a failed step')
    const m = await HookedTransformer.fromPretrainedNoProcessing(id)
    for (const [name, e] of Object.entries(errors)) {
      if (name.startsWith('sd.')) {
        const c = e as unknown as { method: string; kwargs: object; type: string; message: string }
        expect(t.throws(() => method(m, c.method)(unprocessedDict(m, g(), cases().base), c.kwargs)), e, name)
      } else if (name === 'refactor') {
        expect(t.throws(() => m.refactorFactoredAttnMatrices()), e, name)
      } else if (name === 'process_weights.refactor') {
        expect(t.throws(() => m.processWeights({ refactorFactoredAttnMatrices: true })), e, name)
      }
    }
    t.is(m.cfg.normalization_type, (cases().base as unknown as { cfg: { normalization_type: string } }).cfg.normalization_type, 'unchanged after failed steps')
    processed.dispose()
    m.dispose()
  })

  test(`${id}: inputToEmbed, getResidual, getPosOffset and lossFn match TL`, async (t) => {
    const f = golden('surface', `${slugOf(id)}_forward`)
    const G = (k: string) => f.tensors.get(k)
    const prompts = f.json.prompts as string[]
    const model = await HookedTransformer.fromPretrained(id)
    const left = await HookedTransformer.fromPretrained(id, { defaultPaddingSide: 'left' })
    const check = async (name: string, out: Promise<[Tensor, Tensor, Tensor | null, Tensor | null]>) => {
      const [residual, tokens, short, mask] = await out
      assertClose(t, residual, G(`${name}.residual`), TOL, `${name}.residual`)
      assertClose(t, tokens, G(`${name}.tokens`), 0, `${name}.tokens`)
      t.is(short, null)
      t.is(mask !== null, f.json.cases[name].attention_mask, `${name}: mask or none`)
      if (mask) assertClose(t, mask, G(`${name}.attention_mask`), 0, `${name}.attention_mask`)
    }
    await check('ite.single', model.inputToEmbed(prompts[0]))
    await check('ite.right', model.inputToEmbed(prompts))
    await check('ite.padding_left_arg', model.inputToEmbed(prompts, { paddingSide: 'left' }))
    await check('ite.tokenizer_left', left.inputToEmbed(prompts))
    await check('ite.given_mask', model.inputToEmbed(T(G('given.tokens')), { attentionMask: T(G('given.mask')) }))

    const kv = left.initKvCache(2)
    await left.forward(T(G('kv.first')), { pastKvCache: kv })
    t.is(left.getPosOffset(null, 2), f.json.cases.kv.pos_offset_none)
    t.is(left.getPosOffset(kv, 2), f.json.cases.kv.pos_offset)
    t.is((t.throws(() => left.getPosOffset(kv, 3)) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
    await check('ite.kv', left.inputToEmbed(T(G('kv.next')), { pastKvCache: kv }))
    assertClose(t, kv.previousAttentionMask, G('kv.previous_attention_mask'), 0, 'kv.previous_attention_mask')
    t.is(left.getPosOffset(kv, 2), f.json.cases.kv.pos_offset_after)

    const embed = T(G('res.embed'))
    const tokens = T(G('res.tokens'))
    const [residual, short] = model.getResidual(embed, 0) as [Tensor, Tensor | null]
    assertClose(t, residual, G('res.plain'), TOL, 'res.plain')
    t.is(short, null)
    const five = model.getResidual(embed.get(null, [0, 5]), 3, { tokens: tokens.get(null, [0, 5]), returnShortformerPosEmbed: false }) as Tensor
    assertClose(t, five, G('res.offset3'), TOL, 'res.offset3')
    const lt = T(G('res.left.tokens'))
    assertClose(t, (left.getResidual(left.embed(lt), 0, { attentionMask: T(G('res.left.mask')) }) as [Tensor, null])[0], G('res.left'), TOL, 'res.left')
    if (G('res.hooked')) {
      const hooked = await model.hooks({ fwdHooks: [['hook_pos_embed', (x) => x.mul(2)]] }, (mm) => (mm.getResidual(embed, 0) as [Tensor, null])[0])
      assertClose(t, hooked, G('res.hooked'), TOL, 'res.hooked')
    }

    const logits = T(G('loss.logits'))
    const batch = T(G('given.tokens'))
    const mask = T(G('given.mask'))
    assertClose(t, model.lossFn(logits, batch), G('loss.mean'), 1e-5, 'loss.mean')
    assertClose(t, model.lossFn(logits, batch, { perToken: true }), G('loss.per_token'), 1e-5, 'loss.per_token')
    assertClose(t, model.lossFn(logits, batch, { attentionMask: mask }), G('loss.masked'), 1e-5, 'loss.masked')
    assertClose(t, model.lossFn(logits, batch, { attention_mask: mask, per_token: true } as object), G('loss.masked_per_token'), 1e-5, 'loss.masked_per_token')
    model.dispose()
    left.dispose()
  })
}

test('gpt2: hook points, caching hooks, permanent hooks, levels and contexts behave as TL', async (t) => {
  const g = golden('surface', 'hooks')
  const m = await HookedTransformer.fromPretrained('gpt2')
  const names = g.json.names as { hook_points: string[]; fired: string[] }
  // TL's hook points, in firing order here (TL's hook_dict is in module order); those its
  // use_* flags leave unused are points too, whose hooks fire once the flag is on.
  t.deepEqual([...m.hookPoints().map((p) => p.name)].sort(), [...names.hook_points].sort())
  t.deepEqual(m.hookPoints().map((p) => p.name).filter((n) => names.fired.includes(n)), names.fired)
  const { obs, tensors } = await replayHooks(m, T(g.tensors.get('tokens')))
  const steps = g.json.steps as [string, unknown][]
  t.is(obs.length, steps.length)
  for (const [i, [label, value]] of steps.entries()) {
    if (label === 'incl_bwd.keys') {
      // Backward hooks of independent branches (V vs. pattern within a block) may fire in
      // another order than torch's: the gradient keys are compared as a set.
      const split = (ks: string[]) => [ks.filter((k) => !k.endsWith('_grad')), ks.filter((k) => k.endsWith('_grad')).sort()]
      t.deepEqual(split(obs[i][1] as string[]), split(value as string[]), label)
    } else if (label === 'get_caching_hooks') {
      // TL lists the hooks in hook_dict (module) order, this library in firing order.
      const [fwd, ...rest] = value as [string[], ...unknown[]]
      const [ours, ...ourRest] = obs[i][1] as [string[], ...unknown[]]
      t.deepEqual([[...ours].sort(), ...ourRest], [[...fwd].sort(), ...rest], label)
    } else if (label === 'flag_error') {
      t.is((obs[i][1] as { type: string }).type, 'TL_INVALID_ARGUMENT')
      t.is((obs[i][1] as { message: string }).message, (value as { message: string }).message)
    } else {
      t.deepEqual(obs[i], [label, value], `step ${i} (${label})`)
    }
  }
  let n = 0
  for (const [k, v] of tensors) {
    assertClose(t, v, g.tensors.get(k), TOL, k)
    n++
  }
  t.is(n, [...g.tensors.keys()].filter((k) => k !== 'tokens').length)
  m.dispose()
})

test('hooks on a point a flag turns off come back with the flag; setFlag keeps HookPoint identity', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const point = m.hookDict.get('blocks.0.hook_resid_pre')!
  m.setUseAttnResult(true)
  t.is(m.hookDict.get('blocks.0.hook_resid_pre'), point)
  let fired = 0
  m.addHook('blocks.0.attn.hook_result', () => void fired++)
  m.setUseAttnResult(false)
  await m.forward('Hello')
  t.is(fired, 0)
  m.setUseAttnResult(true)
  await m.forward('Hello')
  t.is(fired, 1)
  m.processWeights({ foldLn: false, centerWritingWeights: false, centerUnembed: false })
  await m.forward('Hello')
  t.is(fired, 2, 'hooks survive processing')
  m.dispose()
})
