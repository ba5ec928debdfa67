// Training against torch: TL's train loop body with Adam, AdamW (+ clipping), SGD (+ momentum,
// weight decay, warmup) on a tiny model, step for step (scripts/reference/make_train_fixtures.py);
// models from a config against TL's init; save / load round trips.
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { HookedTransformer, Tensor, train, TransformerLensError } from '../src'
import { assertClose } from './helpers/compare'
import { FIXTURES } from './helpers/fixtures'
import { readSafetensors } from './helpers/safetensors'

const DIR = path.join(FIXTURES, 'golden', 'train')
const runs = JSON.parse(fs.readFileSync(path.join(DIR, 'runs.json'), 'utf8'))
const tokenRows: number[][] = JSON.parse(fs.readFileSync(path.join(DIR, 'tokens.json'), 'utf8'))
const tokens = () => Tensor.from(BigInt64Array.from(tokenRows.flat().map(BigInt)), [tokenRows.length, tokenRows[0].length])

for (const [name, run] of Object.entries<any>(runs)) {
  test(`train follows torch step for step: ${name}`, async (t) => {
    const model = await HookedTransformer.fromPretrainedNoProcessing(path.join(DIR, 'start'))
    const { losses } = await train(model, { ...run.config, shuffle: false, printEvery: null, progress: false }, tokens())
    t.is(losses.length, run.losses.length)
    losses.forEach((l, i) => t.true(Math.abs(l - run.losses[i]) < 1e-5, `step ${i}: loss ${l} vs torch ${run.losses[i]}`))
    const final = ((await model.forward(tokens(), { returnType: 'loss' })) as Tensor).item()
    t.true(Math.abs(final - run.final_loss) < 1e-5, `loss after training ${final} vs torch ${run.final_loss}`)
    const want = readSafetensors(path.join(DIR, run.params))
    const sd = model.stateDict()
    t.true(want.size > 30)
    for (const [k, g] of want) {
      // b_K's gradient is zero by construction (softmax ignores a shift shared by every key), so
      // its value is rounding noise in torch and here; Adam normalises that noise into steps of
      // about lr. It cannot change any output (the losses above check that), so it is skipped
      // for Adam; SGD keeps it at the start value and is checked.
      if (k.endsWith('attn.b_K') && run.config.optimizerName !== 'SGD') continue
      assertClose(t, sd.get(k)!, g, 1e-5, `${name} ${k}`)
    }
  })
}

test('a model from a config has TL derived fields and init scales', (t) => {
  const init = JSON.parse(fs.readFileSync(path.join(DIR, 'init.json'), 'utf8'))
  for (const [mode, c] of Object.entries<any>(init)) {
    const model = HookedTransformer.fromConfig(c.config_in)
    for (const k of ['n_heads', 'd_mlp', 'initializer_range', 'd_vocab_out', 'n_params', 'attn_scale', 'n_key_value_heads']) {
      const [ours, tl] = [model.cfg[k], c.config[k]]
      t.true(typeof tl === 'number' ? Math.abs((ours as number) - tl) < 1e-9 : ours === tl, `${mode} ${k}: ${ours} vs TL ${tl}`)
    }
    const sd = model.stateDict()
    for (const [k, p] of Object.entries<any>(c.params)) {
      const ours = sd.get(k)
      t.truthy(ours, `${mode}: ${k} missing`)
      t.deepEqual(ours!.shape, p.shape, `${mode} ${k} shape`)
      const n = p.shape.reduce((a: number, b: number) => a * b, 1)
      const std = ours!.sub(ours!.mean()).square().mean().sqrt().item()
      const maxabs = ours!.abs().max().item()
      if (p.std === 0) {
        t.is(std, 0, `${mode} ${k} is constant in TL`)
        t.true(Math.abs(maxabs - p.maxabs) < 1e-6, `${mode} ${k}: ${maxabs} vs ${p.maxabs}`)
        continue
      }
      // Sampling error of a std estimate is ~std / sqrt(2n); allow 6 of those (and 15% for tiny tensors).
      const tol = Math.max(6 / Math.sqrt(2 * n), 0.02)
      t.true(Math.abs(std / p.std - 1) < tol, `${mode} ${k}: std ${std} vs TL ${p.std} (n=${n})`)
    }
  }
})

const SAVE_CONFIGS = {
  'rotary + GQA + gated': { n_layers: 2, d_model: 32, d_head: 8, n_ctx: 16, d_vocab: 40, act_fn: 'relu', normalization_type: 'RMS', positional_embedding_type: 'rotary', n_key_value_heads: 2, gated_mlp: true, seed: 4 },
  'mixture of experts': { n_layers: 2, d_model: 32, d_head: 8, n_ctx: 16, d_vocab: 40, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', num_experts: 4, experts_per_token: 2, gated_mlp: true, seed: 5 },
}

for (const [label, cfg] of Object.entries(SAVE_CONFIGS)) test(`save writes a TL folder that loads back with the same numbers: ${label}`, async (t) => {
  const model = HookedTransformer.fromConfig(cfg)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-save-'))
  model.save(dir)
  const back = await HookedTransformer.fromPretrainedNoProcessing(dir)
  const x = Tensor.from(BigInt64Array.from([1n, 5n, 7n, 3n, 39n, 0n]), [1, 6])
  const [a, b] = [(await model.forward(x)) as Tensor, (await back.forward(x)) as Tensor]
  t.is(a.sub(b).abs().max().item(), 0)
  // With TL's processing the loss is the same (folded norms, centred unembed).
  const processed = await HookedTransformer.fromPretrained(dir)
  const [la, lb] = [(await model.forward(x, { returnType: 'loss' })) as Tensor, (await processed.forward(x, { returnType: 'loss' })) as Tensor]
  t.true(Math.abs(la.item() - lb.item()) < 1e-5)
  for (const [k, v] of model.stateDict()) t.deepEqual(back.stateDict().get(k)!.shape, v.shape, k)
})

test('training checks its arguments and aborts', async (t) => {
  const model = HookedTransformer.fromConfig({ n_layers: 1, d_model: 8, d_head: 4, n_ctx: 8, d_vocab: 10, attn_only: true })
  const toks = Tensor.from(BigInt64Array.from(Array.from({ length: 32 }, (_, i) => BigInt(i % 10))), [4, 8])
  const code = async (p: Promise<unknown>) => ((await t.throwsAsync(p)) as TransformerLensError).code
  t.is(await code(train(model, { numEpochs: 0, batchSize: 2 }, toks)), 'TL_INVALID_ARGUMENT')
  t.is(await code(train(model, { numEpochs: 1, batchSize: 2, optimizerName: 'Lion' as any }, toks)), 'TL_INVALID_ARGUMENT')
  t.is(await code(train(model, { numEpochs: 1, batchSize: 2 }, Tensor.from(BigInt64Array.from([1n, 99n]), [1, 2]))), 'TL_INVALID_ARGUMENT')
  const ac = new AbortController()
  ac.abort()
  t.is(await code(train(model, { numEpochs: 1, batchSize: 2, signal: ac.signal, printEvery: null }, toks)), 'TL_ABORTED')
  const seen: number[] = []
  const res = await train(model, { numEpochs: 2, batchSize: 3, printEvery: null, onStep: (s) => seen.push(s.globalStep) }, toks)
  t.deepEqual(seen, [1, 2, 3, 4])
  t.is(res.losses.length, 4)
  t.is(res.model, model)
  t.throws(() => HookedTransformer.fromConfig({ n_layers: 1, d_model: 8, d_head: 4, n_ctx: 8 } as any), { instanceOf: TransformerLensError })
  t.throws(() => HookedTransformer.fromConfig({ n_layers: 1, d_model: 8, d_head: 4, n_ctx: 8, d_vocab: 10, act_fn: 'relu', init_mode: 'bad' }), { instanceOf: TransformerLensError })
})
