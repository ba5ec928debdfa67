/**
 * Numbers and arguments from JS are checked at the public API (src/utils/args.ts): a count
 * napi would wrap modulo 2^32 (or truncate, or read NaN as 0) and a value of the wrong JS type
 * are `TL_INVALID_ARGUMENT`, before anything runs; napi's own conversion errors are mapped too.
 */
import test from 'ava'

import { getPretrainedModelConfig, HookedEncoder, HookedEncoderDecoder, HookedTransformer, sampleLogits, Tensor, tokenizeAndConcatenate, TransformerLensError } from '../src/index'
import { fromNative, native } from '../src/errors'
import * as binding from '../src/native/binding'
import { codeOf, rejectionCode } from './helpers/errors'
import { useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const INVALID = 'TL_INVALID_ARGUMENT'
let shared: Promise<HookedTransformer> | undefined
const model = () => (shared ??= HookedTransformer.fromPretrained('gpt2'))
const bad = (v: unknown) => v as never

/** A model whose embedding hook counts how often a forward step ran. */
async function probed(): Promise<{ m: HookedTransformer; runs: () => number }> {
  const m = await HookedTransformer.fromPretrained('gpt2')
  let n = 0
  m.addHook('hook_embed', () => void n++, { isPermanent: true })
  return { m, runs: () => n }
}

test('generate: a bad maxNewTokens is TL_INVALID_ARGUMENT and nothing runs', async (t) => {
  const { m, runs } = await probed()
  for (const v of [2 ** 32 + 3, 2 ** 32, -1, 1.5, NaN, Infinity, '3', null, 3n]) {
    t.is(await rejectionCode(m.generate('Hello', { maxNewTokens: bad(v), doSample: false })), INVALID, `maxNewTokens ${String(v)}`)
  }
  t.is(await rejectionCode(m.generate('Hello', bad({ max_new_tokens: 2 ** 32 + 3, do_sample: false }))), INVALID, 'snake_case')
  t.is(await rejectionCode(m.generateWithCache('Hello', { maxNewTokens: bad(2 ** 32 + 1) })), INVALID, 'generateWithCache')
  t.is(await rejectionCode(m.generateStream('Hello', { maxNewTokens: bad(-2) }).next()), INVALID, 'generateStream')
  t.is(runs(), 0, 'no forward step ran')
  const err = await m.generate('Hello', { maxNewTokens: 2 ** 32 + 3 }).catch((e) => e)
  t.true(err instanceof TransformerLensError)
  t.regex(err.message, /maxNewTokens/)
  t.regex(err.message, /4294967299/)

  // A valid count still generates exactly that many tokens.
  const prompt = m.toTokens('Hello')
  const out = (await m.generate(prompt, { maxNewTokens: 3, doSample: false, stopAtEos: false, returnType: 'tokens' })) as Tensor
  t.deepEqual(out.shape, [1, prompt.shape[1] + 3])
  t.true(runs() > 0)
  const none = (await m.generate(prompt, { maxNewTokens: 0, doSample: false, returnType: 'tokens' })) as Tensor
  t.deepEqual(none.shape, prompt.shape)
  m.dispose()
})

test('generate: other options are checked before anything runs', async (t) => {
  const { m, runs } = await probed()
  const cases: Record<string, unknown>[] = [
    { topK: 0 },
    { topK: -1 },
    { topK: 1.5 },
    { topK: 2 ** 32 + 1 },
    { topK: '2' },
    { topP: '0.5' },
    { temperature: 'hot' },
    { freqPenalty: NaN },
    { eosTokenId: -1 },
    { eosTokenId: 2 ** 32 },
    { eosTokenId: [1, 2.5] },
    { doSample: 'yes' },
    { stopAtEos: 1 },
    { useKvCache: 'no' },
    { prependBos: 0 },
    { paddingSide: 'middle' },
    { returnType: 'logits' },
    { seed: -1 },
    { attentionMask: [1, 1] },
    { onProgress: 'log' },
  ]
  for (const o of cases) t.is(await rejectionCode(m.generate('Hello', { maxNewTokens: 2, ...o } as never)), INVALID, JSON.stringify(o))
  t.is(await rejectionCode(m.generate(bad(42), { maxNewTokens: 2 })), INVALID, 'input 42')
  t.is(runs(), 0, 'no forward step ran')
  const greedy = await m.generate('Hello', { maxNewTokens: 2, doSample: false, stopAtEos: false, returnType: 'tokens' })
  const top1 = await m.generate('Hello', { maxNewTokens: 2, topK: 1, seed: 7, stopAtEos: false, returnType: 'tokens' })
  t.deepEqual((top1 as Tensor).toList(), (greedy as Tensor).toList(), 'topK 1 samples the argmax')
  m.dispose()
})

test('sampleLogits: topK and the other options are checked; valid calls sample', (t) => {
  const logits = Tensor.from(new Float32Array([0.1, 3, 0.2, 5, 1, 2]), [2, 3])
  for (const k of [0, -1, 1.5, NaN, 2 ** 32 + 1, '1']) t.is(codeOf(() => sampleLogits(logits, { topK: bad(k) })), INVALID, `topK ${String(k)}`)
  t.is(codeOf(() => sampleLogits(logits, { temperature: bad('1') })), INVALID)
  t.is(codeOf(() => sampleLogits(logits, { topP: bad(null), freqPenalty: bad('0') })), INVALID)
  t.is(codeOf(() => sampleLogits(bad([[1, 2]]))), INVALID)
  t.is(codeOf(() => sampleLogits(logits, { freqPenalty: 1, tokens: bad([[0]]) })), INVALID)
  t.deepEqual(sampleLogits(logits, { topK: 1, seed: 3 }).toList(), [1, 0])
  t.deepEqual(sampleLogits(logits, { temperature: 0 }).toList(), [1, 0])
})

test('Tensor.from: shapes must be non-negative integers below 2^32 with a safe element count', (t) => {
  const data = new Float32Array([1, 2, 3, 4])
  const shapes: unknown[] = [['4'], [2 ** 32 + 4], [-4], [2, -2], [1.5, 4], [NaN], [Infinity], [2, 2.0000001], '4', 4, [[2, 2]]]
  for (const s of shapes) t.is(codeOf(() => Tensor.from(data, bad(s))), INVALID, `shape ${JSON.stringify(s)}`)
  // A product that overflows 64 bits natively (2^64 wraps to 0 = the data's length).
  t.is(codeOf(() => Tensor.from(new Float32Array(0), [2 ** 32 - 1, 2 ** 32 - 1, 0, 2 ** 32 - 1])), 'no error', 'a zero dim keeps the count at 0')
  t.is(codeOf(() => Tensor.from(new Float32Array(0), [2 ** 31, 2 ** 31, 2 ** 31])), INVALID)
  t.is(codeOf(() => Tensor.from(bad(['1', '2']))), INVALID, 'strings as data')
  t.is(codeOf(() => Tensor.from(bad([[1, 2], [3, 4]]))), INVALID, 'nested arrays as data')
  t.is(codeOf(() => Tensor.from(bad('1234'))), INVALID, 'a string as data')
  t.is(codeOf(() => Tensor.from(data, [2, 2], bad(7))), INVALID, 'a number as dtype')
  t.is(codeOf(() => Tensor.from(data, [3])), 'TL_SHAPE_MISMATCH', 'a count that does not fit the data')
  t.deepEqual(Tensor.from(data, [2, 2]).toList(), [
    [1, 2],
    [3, 4],
  ])
  t.deepEqual(Tensor.from([1.5, 2.5]).toList(), [1.5, 2.5])
  t.deepEqual(Tensor.from(data, [4, 1, 1]).shape, [4, 1, 1])
})

test('tensor constructors and ops: fractional, huge or mistyped dims and counts', (t) => {
  const x = Tensor.from(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3])
  const cases: [string, () => unknown][] = [
    ['full [2^32+1]', () => Tensor.full([2 ** 32 + 1], 0)],
    ['zeros [2^31]^3', () => Tensor.zeros([2 ** 31, 2 ** 31, 2 ** 31])],
    ['ones [1.5]', () => Tensor.ones([1.5])],
    ['full value "1"', () => Tensor.full([2], bad('1'))],
    ['arange Infinity', () => Tensor.arange(0, Infinity)],
    ['arange NaN', () => Tensor.arange(NaN)],
    ['arange 2^60', () => Tensor.arange(0, 2 ** 60)],
    ['rand [2^32]', () => Tensor.rand([2 ** 32], { seed: 1 })],
    ['randn mean "0"', () => Tensor.randn([2], { seed: 1, mean: bad('0') })],
    ['sum 1.5', () => x.sum(1.5)],
    ['mean [0, 2^32]', () => x.mean([0, 2 ** 32])],
    ['max "1"', () => x.max(bad('1'))],
    ['sum keepdim "yes"', () => x.sum(1, { keepdim: bad('yes') })],
    ['softmax 0.5', () => x.softmax(0.5)],
    ['norm p "2"', () => x.norm({ p: bad('2') })],
    ['topk 1.5', () => x.topk(1.5)],
    ['topk 2^32+1', () => x.topk(2 ** 32 + 1)],
    ['topk -1', () => x.topk(-1)],
    ['topk dim 2^31', () => x.topk(1, { dim: 2 ** 31 })],
    ['transpose 0, 2^32', () => x.transpose(0, 2 ** 32)],
    ['transpose NaN', () => x.transpose(NaN, 1)],
    ['unsqueeze 0.5', () => x.unsqueeze(0.5)],
    ['squeeze 2^32', () => x.squeeze(2 ** 32)],
    ['permute [0, 1.5]', () => x.permute([0, 1.5])],
    ['reshape [2.5, 2]', () => x.reshape([2.5, 2])],
    ['reshape -1, -1', () => x.reshape(-1, -1)],
    ['reshape -2, -3', () => x.reshape(-2, -3)],
    ['reshape "6"', () => x.reshape(bad('6'))],
    ['broadcastTo [2, 3.5]', () => x.broadcastTo([2, 3.5])],
    ['get 0.5', () => x.get(0.5)],
    ['get [0, 1.5]', () => x.get(null, [0, 1.5])],
    ['get "1"', () => x.get(bad('1'))],
    ['get 2^53', () => x.get(2 ** 53)],
    ['sliceAssign "0"', () => x.sliceAssign([0], bad('0'))],
    ['sliceAssign index 0', () => x.sliceAssign(bad(0), 1)],
    ['indexSelect 0.5', () => x.indexSelect(0.5, Tensor.from(new BigInt64Array([0n])))],
    ['gather indices []', () => x.gather(0, bad([0]))],
    ['cat dim 0.5', () => Tensor.cat([x, x], 0.5)],
    ['cat [x, 1]', () => Tensor.cat(bad([x, 1]))],
    ['stack x', () => Tensor.stack(bad(x))],
    ['add "1"', () => x.add(bad('1'))],
    ['mul {}', () => x.mul(bad({}))],
    ['where "a"', () => x.where(bad('a'), 0)],
    ['size 1.5', () => x.size(1.5)],
    ['to 5', () => x.to(bad(5))],
    ['cuda 0.5', () => x.cuda(0.5)],
  ]
  for (const [name, fn] of cases) t.is(codeOf(fn), INVALID, name)
  // Valid calls are unchanged.
  t.deepEqual(x.sum(1).toList(), [6, 15])
  t.deepEqual(x.sum(-1, { keepdim: true }).shape, [2, 1])
  t.deepEqual(x.transpose(0, 1).toList(), [
    [1, 4],
    [2, 5],
    [3, 6],
  ])
  t.deepEqual(x.reshape(3, -1).shape, [3, 2])
  t.deepEqual(x.reshape([-1]).toList(), [1, 2, 3, 4, 5, 6])
  t.deepEqual(x.topk(2)[0].toList(), [
    [3, 2],
    [6, 5],
  ])
  t.deepEqual(x.get(1, [0, 2]).toList(), [4, 5])
  t.deepEqual(x.get(-1, [null, -1]).toList(), [4, 5])
  t.deepEqual(Tensor.arange(3).toList(), [0, 1, 2])
  t.deepEqual(Tensor.cat([x, x], -1).shape, [2, 6])
  t.deepEqual(Tensor.full([2, 0], 1).shape, [2, 0])
  t.deepEqual(x.add(1).get(0).toList(), [2, 3, 4])
  t.deepEqual(x.sliceAssign([null, 1], 0).toList(), [
    [1, 0, 3],
    [4, 0, 6],
  ])
  // Out-of-range dims of the right type keep their native code.
  t.is(codeOf(() => x.sum(5)), 'TL_SHAPE_MISMATCH')
})

test('toTokens / toStrTokens / toString / decode: wrong types and out-of-range ids', async (t) => {
  const m = await model()
  t.is(codeOf(() => m.toTokens(bad(5))), INVALID)
  t.is(codeOf(() => m.toTokens(bad([1, 2]))), INVALID)
  t.is(codeOf(() => m.toTokens(bad(['a', 3]))), INVALID)
  t.is(codeOf(() => m.toTokens('a', { prependBos: bad('yes') })), INVALID)
  t.is(codeOf(() => m.toTokens('a', { paddingSide: bad('up') })), INVALID)
  t.is(codeOf(() => m.toTokens('a', bad({ truncate: 1 }))), INVALID)
  t.is(codeOf(() => m.toStrTokens(bad(7))), INVALID)
  for (const ids of [[-1], [2 ** 32], [1.5], [NaN], ['1']]) {
    t.is(codeOf(() => m.toString(bad(ids))), INVALID, `toString ${JSON.stringify(ids)}`)
    t.is(codeOf(() => m.tokenizer!.decode(bad(ids))), INVALID, `decode ${JSON.stringify(ids)}`)
  }
  t.is(codeOf(() => m.toString(Tensor.from(new BigInt64Array([5n, -1n])))), INVALID, 'a -1 in a token tensor')
  t.is(codeOf(() => m.toString(Tensor.from(new BigInt64Array([2n ** 32n])))), INVALID, '2^32 in a token tensor')
  t.is(codeOf(() => m.toStrTokens(Tensor.from(new BigInt64Array([-1n])))), INVALID)
  t.is(codeOf(() => m.toString(bad('12'))), INVALID)
  t.is(codeOf(() => m.toSingleStrToken(2 ** 32)), INVALID)
  t.is(codeOf(() => m.toSingleStrToken(-1)), INVALID)
  t.is(codeOf(() => m.toSingleToken(bad(3))), INVALID)
  t.is(codeOf(() => m.tokenizer!.encode(bad(3))), INVALID)
  t.is(codeOf(() => m.tokenizer!.attentionMask(bad([[1]]), true)), INVALID)
  // Valid calls round-trip.
  const tokens = m.toTokens('hello world', { prependBos: false })
  t.is(tokens.shape[0], 1)
  const ids = Array.from(tokens.toArray() as BigInt64Array, Number)
  t.is(m.toString(ids), 'hello world')
  t.deepEqual(m.toString(tokens), ['hello world'])
  t.is(m.tokenizer!.decode(ids), 'hello world')
  t.is(m.toStrTokens(tokens).join(''), 'hello world')
  t.is(m.toSingleStrToken(ids[0]), m.toStrTokens(tokens)[0])
  // tokenizeAndConcatenate: a batchSize of 0 looped forever before it was checked.
  for (const o of [{ batchSize: 0 }, { batchSize: 0.5 }, { maxLength: 4.5 }, { maxLength: 2 ** 32 }, { numProc: 0 }]) {
    t.is(codeOf(() => tokenizeAndConcatenate(['hello world'], m, o)), INVALID, JSON.stringify(o))
  }
  t.is(codeOf(() => tokenizeAndConcatenate(bad('hello'), m)), INVALID)
  t.deepEqual(tokenizeAndConcatenate(['hello world hello world'], m, { maxLength: 3, batchSize: 1 }).shape.slice(1), [3])
})

test('initKvCache and the KV cache: batch sizes and layers are checked', async (t) => {
  const m = await model()
  for (const b of [2 ** 32 + 1, 2 ** 32, 0, -1, 1.5, NaN, '2']) t.is(codeOf(() => m.initKvCache(bad(b))), INVALID, `batch ${String(b)}`)
  const kv = m.initKvCache(2)
  t.is(kv.batchSize, 2)
  t.is(kv.entries.length, 3)
  t.is(kv.length, 0)
  t.is(codeOf(() => kv.get(0.5)), INVALID)
  t.is(codeOf(() => kv.get(bad('1'))), INVALID)
  t.is(codeOf(() => (kv.entries[0].frozen = bad('yes'))), INVALID)
  t.is(codeOf(() => kv.appendAttentionMask(bad([[1]]))), INVALID)
  t.is(kv.get(-1).layer, 2)
  kv.entries[1].frozen = true
  t.true(kv.entries[1].frozen)
})

test('forward options and model setters are checked', async (t) => {
  const m = await model()
  const tokens = m.toTokens('Hello there')
  for (const o of [{ stopAtLayer: 1.5 }, { stopAtLayer: 2 ** 32 + 1 }, { startAtLayer: '1' }, { returnType: 'probs' }, { lossPerToken: 'yes' }, { attentionMask: [[1]] }, { pastKvCache: {} }]) {
    t.is(await rejectionCode(m.forward(tokens, o as never)), INVALID, JSON.stringify(o))
  }
  t.is(await rejectionCode(m.runWithCache(tokens, { stopAtLayer: bad(0.5) })), INVALID)
  t.is(await rejectionCode(m.runWithHooks(tokens, { stopAtLayer: bad(2 ** 33) })), INVALID)
  const resid = await m.forward(tokens, { stopAtLayer: 1 })
  t.deepEqual(resid.shape, [1, tokens.shape[1], m.cfg.d_model])
  const rest = await m.forward(resid, { startAtLayer: 1 })
  const full = await m.forward(tokens)
  t.deepEqual(rest.shape, full.shape)
  t.is(codeOf(() => m.setUseAttnResult(bad('yes'))), INVALID)
  t.is(codeOf(() => m.cuda(0.5)), INVALID)
  t.is(codeOf(() => m.to(bad(0))), INVALID)
})

test('fromPretrained: firstNLayers and flags are checked before loading', async (t) => {
  for (const n of [2 ** 32 + 1, 1.5, 0, '2']) {
    t.is(await rejectionCode(HookedTransformer.fromPretrained('gpt2', { firstNLayers: bad(n) })), INVALID, `firstNLayers ${String(n)}`)
  }
  t.is(await rejectionCode(HookedTransformer.fromPretrained('gpt2', { foldLn: bad('no') })), INVALID)
  t.is(await rejectionCode(HookedTransformer.fromPretrained('gpt2', { dtype: bad(32) })), INVALID)
  t.is(await rejectionCode(HookedTransformer.fromPretrained(bad(2))), INVALID)
  const m = await HookedTransformer.fromPretrained('gpt2', { firstNLayers: 2 })
  t.is(m.cfg.n_layers, 2)
  m.dispose()
})

test("fromPretrained dtype options as TL's: torchDtype wins over dtype, TL's short names, quantization refused", async (t) => {
  const loaders = [
    ['HookedTransformer', (o: object) => HookedTransformer.fromPretrained('gpt2', o)],
    ['HookedEncoder', (o: object) => HookedEncoder.fromPretrained('google-bert/bert-base-cased', o)],
    ['HookedEncoderDecoder', (o: object) => HookedEncoderDecoder.fromPretrained('google-t5/t5-small', o)],
  ] as const
  for (const [cls, load] of loaders) {
    for (const [o, want] of [[{ torchDtype: 'bfloat16', dtype: 'float32' }, 'bfloat16'], [{ dtype: 'bf16' }, 'bfloat16'], [{ torch_dtype: 'fp16' }, 'float16'], [{}, 'float32']] as const) {
      const m = await load(o)
      t.is(m.cfg.dtype, want, `${cls} ${JSON.stringify(o)}`)
      m.dispose()
    }
    t.is(await rejectionCode(load({ loadIn8bit: true })), 'TL_UNSUPPORTED', `${cls} loadIn8bit`)
    t.is(await rejectionCode(load({ load_in_4bit: true })), 'TL_UNSUPPORTED', `${cls} load_in_4bit`)
    t.is(await rejectionCode(load({ torchDtype: 'int8' })), INVALID, `${cls} torchDtype int8`)
    t.is(await rejectionCode(load({ revision: 'inexistent_branch_name' })), 'TL_MISSING_FILE', `${cls} revision`)
  }
  t.is((await getPretrainedModelConfig('gpt2', { torchDtype: 'float16' })).dtype, 'float16')
})

test("napi's own argument errors become TL_INVALID_ARGUMENT with the original as cause", (t) => {
  // Straight to the addon, past the TS checks: napi rejects the string before Rust runs.
  let raw: unknown
  try {
    binding.tensorFull(bad(['4']), 0, 'float32')
  } catch (e) {
    raw = e
  }
  t.true(raw instanceof Error)
  t.is(typeof (raw as { code?: unknown }).code, 'string')
  t.notRegex((raw as Error).message, /^TL_/)
  const mapped = fromNative(raw)
  t.true(mapped instanceof TransformerLensError)
  t.is((mapped as TransformerLensError).code, INVALID)
  t.is((mapped as TransformerLensError).cause, raw)
  t.is(codeOf(() => native(() => binding.tensorFull([2], bad('x'), 'float32'))), INVALID)
  t.is(codeOf(() => native(() => binding.tensorFull([2], 0, bad(3)))), INVALID)

  // Tagged native errors keep their code; other errors pass through untouched.
  const tagged = Object.assign(new Error('TL_DTYPE|bad dtype'), { code: 'InvalidArg' })
  t.is((fromNative(tagged) as TransformerLensError).code, 'TL_DTYPE')
  for (const code of ['NumberExpected', 'ArrayExpected', 'StringExpected', 'ObjectExpected', 'BooleanExpected', 'FunctionExpected', 'BigintExpected', 'InvalidArg']) {
    const e = fromNative(Object.assign(new Error('Failed to convert'), { code }))
    t.true(e instanceof TransformerLensError && e.code === INVALID, code)
  }
  const other = Object.assign(new Error('boom'), { code: 'GenericFailure' })
  t.is(fromNative(other), other)
  const plain = new TypeError('x is not a function')
  t.is(fromNative(plain), plain)
})
