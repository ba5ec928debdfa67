/**
 * Devices. Without a GPU (CI), asking for CUDA is a clear error. With a CUDA build on a GPU
 * machine the default device is the GPU (TL's `get_device()`), so the whole suite runs there;
 * these tests add what only a GPU shows: moves, mixing devices, and CPU/GPU agreement. The
 * GPU's numbers are held to TL's goldens like the CPU's (fp32 logits 1e-4).
 */
import test from 'ava'

import { cudaBuild, cudaIsAvailable, getDevice, HookedTransformer, Tensor, TransformerLensError } from '../src/index'
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
  const err = t.throws(() => x.to('tpu' as never), { instanceOf: TransformerLensError })
  t.is(err?.code, 'TL_DTYPE')
  const m = await HookedTransformer.fromPretrained('gpt2', { device: 'cpu' })
  t.is(m.device, 'cpu')
  t.is(m.cfg.device, 'cpu')
  const bad = await t.throwsAsync(HookedTransformer.fromPretrained('gpt2', { device: 'cuda:x' as never }))
  t.is((bad as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
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
  t.is(m.device, 'cpu', 'the default device is the CPU when no GPU can be used')
  const e3 = t.throws(() => m.to('cuda:1'), { instanceOf: TransformerLensError })
  t.is(e3?.code, code)
  t.is(m.device, 'cpu', 'a failed move leaves the model where it was')
  m.dispose()
})

gpuTest('GPU: a model loads there by default, and its logits and cache match TL', async (t) => {
  const g = golden('gpt2', 'processed')
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.is(m.device, 'cuda:0')
  t.is(m.cfg.device, 'cuda:0')
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
  assertClose(t, await m.forward(tokens), goldenOf(onGpu), 0, 'back on the gpu')
  m.dispose()
})

gpuTest('GPU: hook replacements made on the CPU join the run; mixing devices in ops is TL_DEVICE', async (t) => {
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
  const err = t.throws(() => clean.add(Tensor.zeros(clean.shape)), { instanceOf: TransformerLensError })
  t.is(err?.code, 'TL_DEVICE')
  t.regex(err!.message, /cuda:0/)
  t.regex(err!.message, /cpu/)
  // Tokens made on the CPU run on the model's device.
  t.is((await m.forward(Tensor.from(new BigInt64Array([50256n, 1n, 2n]), [1, 3]))).device, 'cuda:0')
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
