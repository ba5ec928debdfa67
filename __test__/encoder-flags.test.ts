/**
 * TL's hook flags (`model.cfg.use_attn_result = True`, ...) on HookedEncoder (BERT) and
 * HookedEncoderDecoder (T5), against scripts/reference/encoder_flags_fixtures.py: the flagged
 * hooks' values, the cache key order, the logits (equal to the flags-off logits), edits at the
 * flagged hooks, and argument errors.
 *
 * T5's decoder is HF's (see encoder-decoder.test.ts). Its cross-attention under use_attn_in or
 * use_split_qkv_input fails in TL 2.16.1; here it runs as with the flags off (hook_cross_attn_in
 * fires), and the goldens come from TL with that change.
 */
import test from 'ava'

import { BertNextSentencePrediction, HookedEncoder, HookedEncoderDecoder, Tensor, TransformerLensError } from '../src/index'
import { assertClose, maxAbsDiff } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import type { Golden } from './helpers/safetensors'

useFixtureHub()

const TOL = 1e-4
const SAME = 1e-5
const bert = () => golden('google-bert/bert-base-cased', 'flags')
const t5 = () => golden('google-t5/t5-small', 'flags')
const gt = (set: ReturnType<typeof bert>, name: string): Golden => {
  const x = set.tensors.get(name)
  if (!x) throw new Error(`no golden ${name}`)
  return x
}
const tensorOf = (x: Golden) => Tensor.from(Array.from(x.data as ArrayLike<number | bigint>, Number), x.shape, x.dtype === 'I64' ? 'int64' : 'float32')
const diff = (a: Tensor, b: Tensor) => maxAbsDiff(a.toArray() as Float32Array, b.toArray() as Float32Array)
const zeroHead0 = (x: Tensor) => x.sliceAssign([null, null, 0], 0)
const EDITS: Record<string, (x: Tensor) => Tensor> = { zero_head0: zeroHead0, plus_one: (x) => x.add(1) }

function code(f: () => unknown): string | undefined {
  try {
    f()
  } catch (e) {
    return e instanceof TransformerLensError ? e.code : `not a TransformerLensError: ${String(e)}`
  }
  return undefined
}

// ---- BERT

const bertInputs = () => ({
  tokens: tensorOf(gt(bert(), 'tokens')),
  opts: { tokenTypeIds: tensorOf(gt(bert(), 'token_type_ids')), oneZeroAttentionMask: tensorOf(gt(bert(), 'attention_mask')) },
})

async function bertWithFlags(): Promise<HookedEncoder> {
  const m = await HookedEncoder.fromPretrained('bert-base-cased')
  m.setUseAttnResult(true)
  m.setUseSplitQkvInput(true)
  m.setUseHookMlpIn(true)
  return m
}

test('BERT: the flagged hooks fire with TL\'s values, in TL\'s cache order; the logits do not move', async (t) => {
  const { tokens, opts } = bertInputs()
  const m = await HookedEncoder.fromPretrained('bert-base-cased')
  const off = (await m.forward(tokens, opts)) as Tensor
  const [, offCache] = await m.runWithCache(tokens, opts)
  t.false(offCache.keys().some((k) => /hook_[qkv]_input|hook_result|hook_mlp_in/.test(k)))
  m.setUseAttnResult(true)
  m.setUseSplitQkvInput(true)
  m.setUseHookMlpIn(true)
  t.true(m.cfg.use_attn_result === true && m.cfg.use_split_qkv_input === true && m.cfg.use_hook_mlp_in === true)
  const [logits, cache] = await m.runWithCache(tokens, opts)
  t.deepEqual(cache.keys(), bert().json.hook_names)
  const flagged = [...bert().tensors.keys()].filter((k) => k.startsWith('cache.'))
  t.is(flagged.length, m.cfg.n_layers * 5)
  for (const key of flagged) assertClose(t, cache.get(key.slice(6)), gt(bert(), key), TOL, `bert.flags.${key}`)
  t.deepEqual(cache.get('blocks.1.attn.hook_result').shape, [2, tokens.shape[1], 4, 32])
  assertClose(t, logits as Tensor, gt(bert(), 'logits'), TOL, 'bert.flags.logits')
  t.true(diff(logits as Tensor, off) <= SAME)
  // Each flag alone, and back off.
  for (const set of [(x: HookedEncoder) => x.setUseAttnResult(true), (x: HookedEncoder) => x.setUseSplitQkvInput(true), (x: HookedEncoder) => x.setUseHookMlpIn(true)]) {
    const one = await HookedEncoder.fromPretrained('bert-base-cased')
    set(one)
    t.true(diff((await one.forward(tokens, opts)) as Tensor, off) <= SAME)
    one.dispose()
  }
  m.setUseAttnResult(false)
  m.setUseSplitQkvInput(false)
  m.setUseHookMlpIn(false)
  t.is(m.cfg.use_attn_result, false)
  const [, again] = await m.runWithCache(tokens, opts)
  t.deepEqual(again.keys(), offCache.keys())
  m.dispose()
})

test('BERT: editing hook_q_input changes the result as in TL; addHook fires on flagged points', async (t) => {
  const { tokens, opts } = bertInputs()
  const m = await bertWithFlags()
  const edited = await m.runWithHooks(tokens, { ...opts, fwdHooks: [['blocks.0.hook_q_input', zeroHead0]] })
  assertClose(t, edited as Tensor, gt(bert(), 'edit.logits'), TOL, 'bert.flags.edit.logits')
  const seen: string[] = []
  m.addHook('blocks.1.hook_mlp_in', (x, hook) => void seen.push(`${hook.name} ${x.shape}`))
  m.addHook('blocks.0.attn.hook_result', (x) => x.mul(0))
  const zeroed = (await m.forward(tokens, opts)) as Tensor
  t.deepEqual(seen, [`blocks.1.hook_mlp_in ${[2, tokens.shape[1], 32]}`])
  t.true(diff(zeroed, tensorOf(gt(bert(), 'logits'))) > 1e-3)
  m.resetHooks()
  m.dispose()
})

test('BERT: next-sentence prediction runs with the model\'s flags', async (t) => {
  const m = await bertWithFlags()
  const nsp = new BertNextSentencePrediction(m)
  const [logits, cache] = await nsp.runWithCache(bert().json.pair)
  assertClose(t, logits as Tensor, gt(bert(), 'nsp.logits'), TOL, 'bert.flags.nsp.logits')
  t.true(cache.keys().includes('blocks.0.attn.hook_result'))
  m.dispose()
})

test('BERT: flag arguments are checked; use_attn_in is not one of BertBlock\'s flags', async (t) => {
  const m = await HookedEncoder.fromPretrained('bert-base-cased')
  t.is(code(() => m.setUseAttnResult('yes' as unknown as boolean)), 'TL_INVALID_ARGUMENT')
  t.is(code(() => m.setUseSplitQkvInput(1 as unknown as boolean)), 'TL_INVALID_ARGUMENT')
  t.is(code(() => m.setUseHookMlpIn(undefined as unknown as boolean)), 'TL_INVALID_ARGUMENT')
  t.is(m.cfg.use_attn_result, false)
  t.is((m as unknown as Record<string, unknown>).setUseAttnIn, undefined)
  m.dispose()
  t.is(code(() => m.setUseAttnResult(true)), 'TL_DISPOSED')
})

// ---- T5

const t5Inputs = () => ({
  tokens: tensorOf(gt(t5(), 'tokens')),
  opts: { decoderInput: tensorOf(gt(t5(), 'decoder_input')), oneZeroAttentionMask: tensorOf(gt(t5(), 'mask')) },
})

const SETTERS: Record<string, (m: HookedEncoderDecoder, v: boolean) => void> = {
  use_attn_result: (m, v) => m.setUseAttnResult(v),
  use_split_qkv_input: (m, v) => m.setUseSplitQkvInput(v),
  use_hook_mlp_in: (m, v) => m.setUseHookMlpIn(v),
  use_attn_in: (m, v) => m.setUseAttnIn(v),
}

async function t5WithFlags(flags: readonly string[]): Promise<HookedEncoderDecoder> {
  const m = await HookedEncoderDecoder.fromPretrained('t5-small')
  for (const f of flags) SETTERS[f](m, true)
  return m
}

for (const run of ['split', 'attn_in'] as const) {
  test(`T5 (${run}): the flagged hooks, ln1 on the per-head inputs, the cache order and the logits match TL`, async (t) => {
    const info = t5().json.runs[run]
    const { tokens, opts } = t5Inputs()
    const m = await t5WithFlags(info.flags)
    for (const f of info.flags) t.is(m.cfg[f], true, f)
    const [logits, cache] = await m.runWithCache(tokens, opts)
    t.deepEqual(cache.keys(), info.hook_names)
    const prefix = `${run}.cache.`
    const flagged = [...t5().tensors.keys()].filter((k) => k.startsWith(prefix))
    t.true(flagged.length >= 8)
    for (const key of flagged) assertClose(t, cache.get(key.slice(prefix.length)), gt(t5(), key), TOL, `t5.${run}.${key}`)
    t.deepEqual(cache.get('encoder.0.ln1.hook_scale').shape, [1, tokens.shape[1], 4, 1])
    assertClose(t, logits as Tensor, gt(t5(), `${run}.logits`), TOL, `t5.${run}.logits`)
    // The flags only expose activations: the logits (the decoder's too) are the flags-off ones.
    t.true(diff(logits as Tensor, tensorOf(gt(t5(), 'logits'))) <= SAME)
    m.dispose()
  })

  test(`T5 (${run}): edits at the flagged hooks change the result as in TL`, async (t) => {
    const info = t5().json.runs[run]
    const { tokens, opts } = t5Inputs()
    const m = await t5WithFlags(info.flags)
    const edits = info.edits as string[]
    for (const [i, name] of edits.entries()) {
      const fn = EDITS[name.endsWith('cross_attn_in') ? 'plus_one' : 'zero_head0']
      const edited = await m.runWithHooks(tokens, { ...opts, fwdHooks: [[name, fn]] })
      assertClose(t, edited as Tensor, gt(t5(), `${run}.edit${i}.logits`), TOL, `t5.${run}.edit ${name}`)
    }
    m.dispose()
  })
}

test('T5: each flag alone keeps the logits; ln1\'s hooks fire three times under split input; generation is unchanged', async (t) => {
  const { tokens, opts } = t5Inputs()
  const base = tensorOf(gt(t5(), 'logits'))
  const gen = { oneZeroAttentionMask: opts.oneZeroAttentionMask, maxNewTokens: 4, doSample: false, stopAtEos: false }
  const plain = await HookedEncoderDecoder.fromPretrained('t5-small')
  const want = ((await plain.generate(tokens, gen)) as Tensor).toArray()
  plain.dispose()
  for (const flag of Object.keys(SETTERS)) {
    const m = await t5WithFlags([flag])
    t.true(diff((await m.forward(tokens, opts)) as Tensor, base) <= SAME, flag)
    t.deepEqual(((await m.generate(tokens, gen)) as Tensor).toArray(), want, `generate with ${flag}`)
    m.dispose()
  }
  const m = await t5WithFlags(['use_split_qkv_input'])
  const shapes: string[] = []
  await m.runWithHooks(tokens, { ...opts, fwdHooks: [['decoder.1.ln1.hook_normalized', (x) => void shapes.push(String(x.shape))]] })
  t.deepEqual(shapes, Array(3).fill(String([1, opts.decoderInput.shape[1], 4, 32])))
  m.dispose()
})

test('T5: flag arguments are checked; use_attn_in and use_split_qkv_input exclude each other', async (t) => {
  const m = await HookedEncoderDecoder.fromPretrained('t5-small')
  for (const set of Object.values(SETTERS)) t.is(code(() => set(m, 'on' as unknown as boolean)), 'TL_INVALID_ARGUMENT')
  m.setUseAttnIn(true)
  t.is(code(() => m.setUseSplitQkvInput(true)), 'TL_INVALID_ARGUMENT')
  t.is(m.cfg.use_split_qkv_input, false)
  m.setUseAttnIn(false)
  m.setUseSplitQkvInput(true)
  t.is(code(() => m.setUseAttnIn(true)), 'TL_INVALID_ARGUMENT')
  t.is(m.cfg.use_attn_in, false)
  m.dispose()
})

test('16-bit models: the flagged hooks keep the model dtype, scores and patterns stay float32', async (t) => {
  const prompt = 'The quick brown fox'
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const b = await HookedEncoder.fromPretrained('bert-base-cased', { dtype })
    const off = ((await b.forward(prompt)) as Tensor).float()
    b.setUseAttnResult(true)
    b.setUseSplitQkvInput(true)
    b.setUseHookMlpIn(true)
    const [on, cache] = await b.runWithCache(prompt)
    for (const k of ['blocks.0.hook_q_input', 'blocks.0.attn.hook_result', 'blocks.0.hook_mlp_in']) t.is(cache.get(k).dtype, dtype, k)
    t.is(cache.get('blocks.0.attn.hook_pattern').dtype, 'float32')
    // Summing per-head results rounds differently from one product: 16-bit noise only.
    t.true(diff((on as Tensor).float(), off) < 0.05 * off.abs().max().item(), `bert ${dtype}`)
    b.dispose()
    const m16 = await HookedEncoderDecoder.fromPretrained('t5-small', { dtype })
    const base = ((await m16.forward(prompt)) as Tensor).float()
    for (const f of ['use_attn_result', 'use_attn_in', 'use_hook_mlp_in']) SETTERS[f](m16, true)
    const [out, c] = await m16.runWithCache(prompt)
    for (const k of ['encoder.0.hook_attn_in', 'decoder.1.cross_attn.hook_result', 'decoder.0.hook_cross_attn_in']) t.is(c.get(k).dtype, dtype, k)
    t.is(c.get('decoder.0.attn.hook_attn_scores').dtype, 'float32')
    t.true(diff((out as Tensor).float(), base) < 0.05 * base.abs().max().item(), `t5 ${dtype}`)
    m16.dispose()
  }
})
