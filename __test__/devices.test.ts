/**
 * Devices. Without a GPU (CI), asking for CUDA is a clear error. With a CUDA build on a GPU
 * machine these tests check what only a GPU shows (moves, mixed devices, CPU/GPU agreement), and
 * `TL_DEVICE=cuda` runs the whole suite there against TL's goldens (fp32 logits 1e-4).
 */
import test from 'ava'

import { cudaBuild, cudaIsAvailable, defaultDevice, getDevice, HookedEncoder, HookedEncoderDecoder, HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { assertClose, goldenOf } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const GPU = cudaIsAvailable()
const gpuTest = GPU ? test.serial : test.serial.skip
const cpuOnlyTest = GPU ? test.skip : test

test('device names: cpu tensors and models report cpu; bad names are rejected', async (t) => {
  const x = Tensor.from([1, 2, 3], [3])
  t.is(x.device, 'cpu')
  t.is(x.to('cpu').device, 'cpu')
  t.deepEqual(Array.from(x.cpu().toArray() as Float32Array), [1, 2, 3])
  t.is(getDevice(), GPU ? 'cuda' : 'cpu')
  t.is(defaultDevice(), (process.env.TL_DEVICE as never) ?? 'cpu')
  const err = t.throws(() => x.to('tpu' as never), { instanceOf: TransformerLensError })
  t.is(err?.code, 'TL_DTYPE')
  const m = await HookedTransformer.fromPretrained('gpt2', { device: 'cpu' })
  t.is(m.device, 'cpu')
  t.is(m.cfg.device, 'cpu')
  // Mixed-device ops on one machine meet on the GPU; CPU-only here, they just run.
  t.is(Tensor.ones([2]).add(Tensor.ones([2])).device, 'cpu')
  const bad = await t.throwsAsync(HookedTransformer.fromPretrained('gpt2', { device: 'cuda:x' as never }))
  t.is((bad as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  const saved = process.env.TL_DEVICE
  process.env.TL_DEVICE = 'gpu'
  try {
    t.is(t.throws(() => defaultDevice(), { instanceOf: TransformerLensError })?.code, 'TL_INVALID_ARGUMENT')
  } finally {
    if (saved === undefined) delete process.env.TL_DEVICE
    else process.env.TL_DEVICE = saved
  }
  m.dispose()
})

cpuOnlyTest('without a usable GPU, cuda is a clear error naming the device', async (t) => {
  const code = cudaBuild() ? 'TL_DEVICE' : 'TL_UNSUPPORTED'
  const x = Tensor.from([1, 2, 3], [3])
  const e1 = t.throws(() => x.cuda(), { instanceOf: TransformerLensError })
  t.is(e1?.code, code)
  t.regex(e1!.message, /cuda:0/)
  const e2 = await t.throwsAsync(HookedTransformer.fromPretrained('gpt2', { device: 'cuda' }))
  t.is((e2 as TransformerLensError).code, code)
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.is(m.device, 'cpu', 'the default device is the CPU')
  const e3 = t.throws(() => m.to('cuda:1'), { instanceOf: TransformerLensError })
  t.is(e3?.code, code)
  t.is(m.device, 'cpu', 'a failed move leaves the model where it was')
  m.dispose()
  // The encoder classes move as TL's do (to / cuda / cpu), with the same errors.
  for (const enc of [await HookedEncoder.fromPretrained('google-bert/bert-base-cased'), await HookedEncoderDecoder.fromPretrained('google-t5/t5-small')]) {
    t.is(enc.cpu(), enc, 'cpu() returns the model')
    t.is(enc.device, 'cpu')
    t.is(t.throws(() => enc.cuda(1), { instanceOf: TransformerLensError })?.code, code)
    t.is(enc.to('cpu').device, 'cpu', 'a failed move leaves the model usable where it was')
    t.is(t.throws(() => enc.cuda(0.5), { instanceOf: TransformerLensError })?.code, 'TL_INVALID_ARGUMENT', 'the index is checked as on HookedTransformer')
    t.false(enc.disposed)
    enc[Symbol.dispose]()
    t.true(enc.disposed, 'Symbol.dispose disposes, as on HookedTransformer')
    t.is(t.throws(() => enc.to('cpu'), { instanceOf: TransformerLensError })?.code, 'TL_DISPOSED')
  }
})

gpuTest('GPU: a model loaded there matches TL (logits and every cached activation)', async (t) => {
  const g = golden('gpt2', 'processed')
  const m = await HookedTransformer.fromPretrained('gpt2', { device: 'cuda' })
  t.is(m.device, 'cuda:0')
  t.is(m.cfg.device, 'cuda', 'cfg.device is the name given, as TL')
  const tokens = m.toTokens(g.json.prompts.single)
  const [logits, cache] = await m.runWithCache(tokens)
  t.is(logits.device, 'cuda:0')
  assertClose(t, logits, g.tensors.get('single.logits'), 1e-4, 'gpu logits')
  t.deepEqual(cache.keys(), g.json.hook_names)
  for (const key of cache.keys()) {
    t.is(cache.get(key).device, 'cuda:0')
    assertClose(t, cache.get(key), g.tensors.get(`single.cache.${key}`), key.endsWith('hook_pattern') ? 1e-5 : 1e-4, key)
  }
  m.dispose()
})

gpuTest('GPU: moving a model to the CPU and back keeps its numbers', async (t) => {
  const g = golden('gpt2', 'processed')
  const m = await HookedTransformer.fromPretrained('gpt2', { device: 'cuda' })
  const tokens = m.toTokens(g.json.prompts.single)
  const onGpu = await m.forward(tokens)
  t.is(m.cpu(), m)
  t.is(m.device, 'cpu')
  const onCpu = await m.forward(tokens)
  t.is(onCpu.device, 'cpu')
  assertClose(t, onCpu, g.tensors.get('single.logits'), 1e-4, 'cpu logits after the move')
  assertClose(t, onGpu.cpu(), goldenOf(onCpu), 1e-4, 'gpu vs cpu')
  m.cuda()
  t.is(m.device, 'cuda:0')
  t.is(m.cfg.device, 'cuda:0')
  assertClose(t, await m.forward(tokens), goldenOf(onGpu), 0, 'back on the gpu')
  m.dispose()
})

gpuTest('GPU: CPU tensors join the GPU: hook replacements, op operands, indices, tokens', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2', { device: 'cuda' })
  const tokens = m.toTokens('Hello world')
  const clean = await m.forward(tokens)
  let seen = ''
  const zeroed = (await m.runWithHooks(tokens, {
    fwdHooks: [
      [
        'blocks.0.attn.hook_z',
        (z: Tensor) => {
          seen = z.device
          return Tensor.zeros(z.shape) // on the CPU
        },
      ],
    ],
  })) as Tensor
  t.is(seen, 'cuda:0')
  t.is(zeroed.device, 'cuda:0')
  t.true(Math.abs(zeroed.sub(clean).abs().max().item() as number) > 0, 'the replacement took effect')
  const sum = Tensor.ones(clean.shape).add(clean) // a CPU operand moves to the GPU (torch raises)
  t.is(sum.device, 'cuda:0')
  assertClose(t, sum.sub(1), goldenOf(clean), 1e-6, 'cpu + gpu')
  const idx = Tensor.from(new BigInt64Array([0n, 2n]), [2])
  t.is(clean.indexSelect(1, idx).device, 'cuda:0')
  t.is(clean.gather(2, Tensor.zeros([1, clean.shape[1], 1], 'int64')).device, 'cuda:0')
  t.is(Tensor.cat([Tensor.zeros(clean.shape), clean], 0).device, 'cuda:0')
  t.is(Tensor.zeros(clean.shape).sliceAssign([0, 0], clean.get(0, 0)).device, 'cuda:0')
  // Tokens made on the CPU run on the model's device.
  t.is((await m.forward(Tensor.from(new BigInt64Array([3n, 1n, 2n]), [1, 3]))).device, 'cuda:0')
  m.dispose()
})

gpuTest('GPU: greedy generation and the KV cache match the CPU', async (t) => {
  const gpu = await HookedTransformer.fromPretrained('gpt2', { device: 'cuda' })
  const cpu = await HookedTransformer.fromPretrained('gpt2', { device: 'cpu' })
  const a = await gpu.generate('Hello world', { maxNewTokens: 8, doSample: false, verbose: false, returnType: 'tokens' })
  const b = await cpu.generate('Hello world', { maxNewTokens: 8, doSample: false, verbose: false, returnType: 'tokens' })
  t.deepEqual(Array.from((a as Tensor).cpu().toArray() as BigInt64Array), Array.from((b as Tensor).toArray() as BigInt64Array))
  gpu.dispose()
  cpu.dispose()
})
