/**
 * TL's own checkpoints (config.json in NeelNanda's names + a `.pth` state dict, found by official
 * name as TL does) against goldens from scripts/reference/make_tl_native_fixtures.py: logits,
 * loss, every hook's activation, processed and unprocessed; shortformer positions, SoLU's
 * `mlp.hook_mid` / `mlp.ln`, the old SoLU layout, minGPT's names, NeelNanda's file checkpoints.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { getPretrainedModelConfig, HookedTransformer, Tensor } from '../src/index'
import { assertClose } from './helpers/compare'
import { rejectionCode } from './helpers/errors'
import { golden, HUB, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const TOL = 1e-4
const LOSS_TOL = 1e-5

const NATIVE_MODELS = {
  'NeelNanda/Attn_Only_2L512W_C4_Code': 'attention-only, LayerNorm',
  'NeelNanda/GELU_2L512W_C4_Code': 'GELU MLP',
  'NeelNanda/SoLU_2L512W_C4_Code': 'SoLU MLP with its LayerNorm (solu_ln: hook_mid, mlp.ln)',
  'NeelNanda/Attn-Only-2L512W-Shortformer-6B-big-lr': 'shortformer positions (Q/K inputs only; TL never folds its norms)',
  'NeelNanda/SoLU_1L_v9_old': "the old SoLU layout (convert_neel_solu_old_weights)",
  'ArthurConmy/redwood_attn_2l': "Redwood's attention-only model",
  'Baidicoot/Othello-GPT-Transformer-Lens': "minGPT's state dict names (convert_mingpt_weights)",
} as const

const MODES = [
  ['processed', (m: string, o = {}) => HookedTransformer.fromPretrained(m, o)],
  ['unprocessed', (m: string, o = {}) => HookedTransformer.fromPretrainedNoProcessing(m, o)],
] as const

/** The state dict's keys without TL's buffers (`attn.mask`, `attn.IGNORE`), as the goldens list them. */
const weightKeys = (m: HookedTransformer) => [...m.stateDict().keys()].filter((k) => !k.endsWith('.mask') && !k.endsWith('IGNORE'))

function tokensOf(g: ReturnType<typeof golden>): Tensor {
  const tok = g.tensors.get('tokens')!
  return Tensor.from(tok.data as BigInt64Array, tok.shape, 'int64')
}

async function checkAgainst(t: any, m: HookedTransformer, g: ReturnType<typeof golden>, label: string) {
  const tokens = tokensOf(g)
  const out = await m.forward(tokens, { returnType: 'both' })
  assertClose(t, out.logits, g.tensors.get('logits'), TOL, `${label}.logits`)
  assertClose(t, out.loss, g.tensors.get('loss'), LOSS_TOL, `${label}.loss`)
  const perToken = await m.forward(tokens, { returnType: 'loss', lossPerToken: true })
  assertClose(t, perToken, g.tensors.get('loss_per_token'), LOSS_TOL, `${label}.loss_per_token`)
  const [, cache] = await m.runWithCache(tokens)
  t.deepEqual(cache.keys(), g.json.hook_names, `${label}: the hooks that fire, in TL's order`)
  for (const key of cache.keys()) assertClose(t, cache.get(key), g.tensors.get(`cache.${key}`), key.endsWith('pattern') ? 1e-5 : TOL, `${label}.${key}`)
  cache.dispose()
}

for (const [model, kinds] of Object.entries(NATIVE_MODELS)) {
  for (const [mode, load] of MODES) {
    const name = `${model} ${mode} (${kinds})`
    test(`${name}: logits, loss and every hook's activation match TL`, async (t) => {
      const g = golden(model, mode)
      const m = await load(model)
      for (const k of ['normalization_type', 'positional_embedding_type', 'act_fn', 'attn_only', 'original_architecture', 'd_vocab', 'n_layers', 'tokenizer_name']) {
        t.deepEqual((m.cfg as any)[k], g.json.cfg[k], `cfg.${k}`)
      }
      await checkAgainst(t, m, g, `${model}.${mode}`)
      t.deepEqual(weightKeys(m), g.json.state_dict_keys, `${model}.${mode}: TL's state dict keys, in order`)
      m.dispose()
    })
  }
}

test("SoLU unprocessed, then processWeights(): TL's processed model (mlp.ln folded into W_out / b_out)", async (t) => {
  const model = 'NeelNanda/SoLU_2L512W_C4_Code'
  const m = await HookedTransformer.fromPretrainedNoProcessing(model)
  t.is(m.cfg.normalization_type, 'LN')
  m.processWeights()
  const g = golden(model, 'processed')
  t.is(m.cfg.normalization_type, g.json.cfg.normalization_type)
  await checkAgainst(t, m, g, `${model}.processWeights`)
  t.deepEqual(weightKeys(m), g.json.state_dict_keys, "no mlp.ln weights once folded")
  m.dispose()
})

test('NeelNanda checkpoints: checkpointIndex picks checkpoints/*_{N}.pth as TL lists them', async (t) => {
  const model = 'NeelNanda/Attn_Only_2L512W_C4_Code'
  const g = golden(model, 'checkpoint')
  const m = await HookedTransformer.fromPretrained(model, { checkpointIndex: 1 })
  for (const k of ['from_checkpoint', 'checkpoint_index', 'checkpoint_value', 'checkpoint_label_type']) t.deepEqual((m.cfg as any)[k], g.json.cfg[k], `cfg.${k}`)
  await checkAgainst(t, m, g, `${model}.checkpoint`)
  m.dispose()
  const byValue = await HookedTransformer.fromPretrained(model, { checkpointValue: g.json.cfg.checkpoint_value })
  t.is(byValue.cfg.checkpoint_index, 1)
  const logits = await byValue.forward(tokensOf(g))
  assertClose(t, logits, g.tensors.get('logits'), TOL, `${model}.checkpointValue.logits`)
  byValue.dispose()
  const cfg = await getPretrainedModelConfig(model, { checkpointIndex: 1 })
  t.is(cfg.checkpoint_value, g.json.cfg.checkpoint_value)
})

test('TL-native configs: getPretrainedModelConfig maps NeelNanda field names as TL', async (t) => {
  for (const model of Object.keys(NATIVE_MODELS)) {
    const g = golden(model, 'unprocessed')
    const cfg = await getPretrainedModelConfig(model)
    for (const k of ['d_model', 'n_layers', 'd_mlp', 'n_heads', 'n_ctx', 'd_vocab', 'act_fn', 'attn_only', 'normalization_type', 'positional_embedding_type', 'original_architecture']) {
      t.deepEqual((cfg as any)[k], g.json.cfg[k], `${model} cfg.${k}`)
    }
  }
  const folded = await getPretrainedModelConfig('NeelNanda/Attn-Only-2L512W-Shortformer-6B-big-lr', { foldLn: true })
  t.is(folded.normalization_type, 'LN', 'TL never folds a shortformer model')
})

test('a TL-native repo without its state dict file: TL_MISSING_FILE naming it', async (t) => {
  const hub = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-native-'))
  const repo = 'models--NeelNanda--GELU_2L512W_C4_Code'
  const src = path.join(HUB, repo)
  fs.cpSync(src, path.join(hub, repo), { recursive: true, dereference: true })
  const snap = path.join(hub, repo, 'snapshots', fs.readdirSync(path.join(src, 'snapshots'))[0])
  fs.rmSync(path.join(snap, 'model_final.pth'))
  try {
    const err = await t.throwsAsync(HookedTransformer.fromPretrained('NeelNanda/GELU_2L512W_C4_Code', { cacheDir: hub } as any))
    t.is((err as any).code, 'TL_MISSING_FILE')
    t.regex(err!.message, /final\.pth/)
    t.is(await rejectionCode(HookedTransformer.fromPretrained('NeelNanda/GELU_2L512W_C4_Code', { cacheDir: hub, checkpointIndex: 0 } as any)), 'TL_MISSING_FILE')
  } finally {
    fs.rmSync(hub, { recursive: true, force: true })
  }
})
