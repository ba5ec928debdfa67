/**
 * HookedEncoder (BERT) and BertNextSentencePrediction against Python TL 2.16.1 on a tiny random
 * BertForPreTraining saved as google-bert/bert-base-cased (goldens and checkpoint from
 * scripts/reference/bert_fixtures.py): tokens, MLM logits, predictions, NSP logits, every cached
 * hook of a padded batch, the state dict; hooks, and the errors of bad input.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { BertNextSentencePrediction, HookedEncoder, HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, HUB, useFixtureHub } from './helpers/fixtures'
import { RawTensor, rewriteSafetensors } from './helpers/safetensors'

useFixtureHub()

const MODEL = 'google-bert/bert-base-cased'
const TOL = 1e-4
const g = () => golden(MODEL, 'encoder')
const gt = (k: string) => g().tensors.get(k)
const ints = (t: Tensor) => Array.from(t.toArray() as BigInt64Array, Number)
const goldInts = (k: string) => Array.from(gt(k)!.data as BigInt64Array, Number)
const tokensOf = (k: string) => Tensor.from(gt(k)!.data as BigInt64Array, gt(k)!.shape)

let shared: Promise<HookedEncoder> | null = null
const model = () => (shared ??= HookedEncoder.fromPretrained('bert-base-cased'))

async function code(p: Promise<unknown> | (() => unknown)): Promise<TransformerLensError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    if (e instanceof TransformerLensError) return e
    throw e
  }
  throw new Error('expected a TransformerLensError')
}

test('cfg is TL\'s HookedEncoder config', async (t) => {
  const m = await model()
  const want = g().json.cfg as Record<string, unknown>
  t.deepEqual(Object.keys(m.cfg).sort(), Object.keys(want).sort())
  for (const k of Object.keys(want)) {
    if (k === 'dtype') t.is(m.cfg.dtype, String(want.dtype).replace('torch.', ''))
    else t.deepEqual(m.cfg[k], want[k], `cfg.${k}`)
  }
})

test('hook points: TL\'s names, firing in TL\'s order', async (t) => {
  const m = await model()
  t.deepEqual([...m.hookNames()].sort(), [...(g().json.hook_dict as string[])].sort())
  const [, cache] = await m.runWithCache(g().json.inputs.batch)
  t.deepEqual(cache.keys(), g().json.batch_cache_order)
})

test('toTokens: tokens, token type ids and attention mask as TL (one prompt, a right-padded batch)', async (t) => {
  const m = await model()
  for (const [key, input] of [['single', g().json.inputs.prompt], ['batch', g().json.inputs.batch]] as const) {
    const [tokens, tti, mask] = m.toTokens(input)
    t.deepEqual(ints(tokens), goldInts(`${key}.tokens`))
    t.deepEqual(tokens.shape, gt(`${key}.tokens`)!.shape)
    t.deepEqual(ints(tti), goldInts(`${key}.token_type_ids`))
    t.deepEqual(ints(mask), goldInts(`${key}.attention_mask`))
  }
})

test('forward: MLM logits of strings, tokens, tokens with a mask, and custom token types match TL', async (t) => {
  const m = await model()
  assertClose(t, await m.forward(g().json.inputs.prompt), gt('single.logits'), TOL, 'bert single logits')
  assertClose(t, await m.forward(g().json.inputs.batch), gt('batch.logits'), TOL, 'bert batch logits')
  assertClose(t, await m.forward(tokensOf('single.tokens')), gt('single.logits_from_tokens'), TOL, 'bert logits from tokens')
  const tokens = tokensOf('batch.tokens')
  const mask = tokensOf('batch.attention_mask')
  assertClose(t, await m.forward(tokens, { oneZeroAttentionMask: mask }), gt('batch.logits_tokens_mask'), TOL, 'bert tokens + mask')
  const tti = tokensOf('batch.custom_token_type_ids')
  assertClose(t, await m.forward(tokens, { tokenTypeIds: tti, oneZeroAttentionMask: mask }), gt('batch.logits_custom_tti'), TOL, 'bert custom token types')
  t.is(await m.forward(tokens, { returnType: null }), null)
})

test('forward predictions: TL\'s strings for [MASK] tokens', async (t) => {
  const m = await model()
  t.deepEqual(await m.forward(g().json.inputs.prompt, { returnType: 'predictions' }), g().json.single_predictions)
  t.deepEqual(await m.forward(g().json.inputs.batch, { returnType: 'predictions' }), g().json.batch_predictions)
})

test('runWithCache: every hook of a padded batch matches TL (padding masked as TL)', async (t) => {
  const m = await model()
  const [logits, cache] = await m.runWithCache(g().json.inputs.batch)
  assertClose(t, logits as Tensor, gt('batch.logits'), TOL, 'bert cache logits')
  for (const name of g().json.batch_cache_order as string[]) assertClose(t, cache.get(name), gt(`batch.cache.${name}`), TOL, `bert batch ${name}`)
  const [, one] = await m.runWithCache(g().json.inputs.prompt, { namesFilter: (n) => n.endsWith('hook_pattern') })
  t.deepEqual(one.keys(), (g().json.single_cache_order as string[]).filter((n) => n.endsWith('hook_pattern')))
  for (const name of one.keys()) assertClose(t, one.get(name), gt(`single.cache.${name}`), TOL, `bert single ${name}`)
})

test('encoderOutput, pooler and nspHead match TL', async (t) => {
  const m = await model()
  const [tokens, tti, mask] = m.toTokens(g().json.inputs.batch)
  const resid = await m.encoderOutput(tokens, tti, mask)
  assertClose(t, resid, gt('batch.encoder_output'), TOL, 'bert encoder_output')
  const pooled = m.pooler(resid)
  assertClose(t, pooled, gt('batch.pooler'), TOL, 'bert pooler')
  assertClose(t, m.nspHead(pooled), gt('batch.nsp_head'), TOL, 'bert nsp_head')
})

test("pooler and nspHead fire their hook points' hooks, as calling TL's modules does", async (t) => {
  const m = await HookedEncoder.fromPretrained('bert-base-cased')
  const [tokens, tti, mask] = m.toTokens(g().json.inputs.batch)
  const resid = await m.encoderOutput(tokens, tti, mask)
  const seen: string[] = []
  m.addHook('pooler.hook_pooler_out', (x, hook) => {
    seen.push(hook.name)
    return x.mul(0)
  })
  const pooled = m.pooler(resid)
  t.deepEqual(seen, ['pooler.hook_pooler_out'])
  t.is(Math.max(...Array.from(pooled.abs().toArray() as Float32Array)), 0, 'the hook replaced the output')
  // Through hooks() too, and removed when the context ends.
  await m.hooks({ fwdHooks: [['nsp_head.hook_nsp_out', (_x, hook) => void seen.push(hook.name)]] }, () => m.nspHead(pooled))
  m.nspHead(pooled)
  t.deepEqual(seen, ['pooler.hook_pooler_out', 'nsp_head.hook_nsp_out'])
  m.dispose()
})

test('BertNextSentencePrediction: pair tokens, logits, prediction and cache match TL', async (t) => {
  const nsp = new BertNextSentencePrediction(await model())
  const pair = g().json.inputs.pair as string[]
  const [tokens, tti, mask] = nsp.toTokens(pair)
  t.deepEqual(ints(tokens), goldInts('nsp.tokens'))
  t.deepEqual(ints(tti), goldInts('nsp.token_type_ids'))
  t.deepEqual(ints(mask), goldInts('nsp.attention_mask'))
  assertClose(t, await nsp.forward(pair), gt('nsp.logits'), TOL, 'nsp logits')
  assertClose(t, await nsp.forward(tokens, { tokenTypeIds: tti }), gt('nsp.logits_from_tokens'), TOL, 'nsp from tokens')
  t.is(await nsp.forward(pair, { returnType: 'predictions' }), g().json.nsp_prediction)
  const [logits, cache] = await nsp.runWithCache(pair)
  assertClose(t, logits as Tensor, gt('nsp.logits'), TOL, 'nsp cache logits')
  t.deepEqual(cache.keys(), g().json.nsp_cache_order)
  for (const [name] of [...g().tensors].filter(([k]) => k.startsWith('nsp.cache.')).map(([k]) => [k.slice('nsp.cache.'.length)])) {
    assertClose(t, cache.get(name), gt(`nsp.cache.${name}`), TOL, `nsp ${name}`)
  }
  t.is((await code(nsp.forward(tokens))).code, 'TL_INVALID_ARGUMENT')
  t.is((await code(() => nsp.toTokens(['one', 'two', 'three']))).code, 'TL_INVALID_ARGUMENT')
})

test('stateDict: TL\'s keys, order and layouts; W_Q/OV/QK views over it', async (t) => {
  const m = await model()
  const sd = m.stateDict()
  const want = g().json.state_dict as Record<string, number[]>
  t.deepEqual([...sd.keys()], Object.keys(want))
  for (const [k, v] of sd) assertClose(t, v.float(), gt(`sd.${k}`), 0, `sd ${k}`)
  const wq = m.W_Q
  t.deepEqual(wq.shape, [3, 4, 32, 8])
  assertClose(t, wq.get(1), gt('sd.blocks.1.attn.W_Q'), 0, 'W_Q[1]')
  assertClose(t, m.W_U, gt('sd.unembed.W_U'), 0, 'W_U')
  assertClose(t, m.W_E, gt('sd.embed.embed.W_E'), 0, 'W_E')
  t.deepEqual(m.OV.shape, [3, 4, 32, 32])
  t.deepEqual(m.QK.shape, [3, 4, 32, 32])
  t.deepEqual(m.allHeadLabels().slice(0, 5), ['L0H0', 'L0H1', 'L0H2', 'L0H3', 'L1H0'])
})

test('hooks: runWithHooks sees TL\'s shapes and can patch; addHook stays until resetHooks', async (t) => {
  const m = await model()
  const tokens = tokensOf('batch.tokens')
  const mask = tokensOf('batch.attention_mask')
  const seen: number[][] = []
  const clean = (await m.forward(tokens, { oneZeroAttentionMask: mask })) as Tensor
  const patched = (await m.runWithHooks(tokens, {
    oneZeroAttentionMask: mask,
    fwdHooks: [
      ['blocks.1.attn.hook_pattern', (p) => void seen.push(p.shape)],
      ['blocks.0.hook_mlp_out', (x) => x.mul(0)],
    ],
  })) as Tensor
  t.deepEqual(seen, [[3, 4, tokens.shape[1], tokens.shape[1]]])
  t.true(patched.sub(clean).abs().max().item() > 1e-3)
  let calls = 0
  m.addHook('hook_full_embed', () => void calls++)
  await m.forward(tokens)
  await m.encoderOutput(tokens)
  t.is(calls, 2)
  m.resetHooks()
  await m.forward(tokens)
  t.is(calls, 2)
  assertClose(t, (await m.forward(tokens, { oneZeroAttentionMask: mask })) as Tensor, gt('batch.logits_tokens_mask'), TOL, 'after reset')
})

test('errors: wrong shapes, bad ids, the wrong class for a checkpoint', async (t) => {
  const m = await model()
  const tokens = tokensOf('batch.tokens')
  const short = Tensor.from(BigInt64Array.from([1n, 1n]), [1, 2])
  t.is((await code(m.forward(tokens, { tokenTypeIds: short }))).code, 'TL_SHAPE_MISMATCH')
  t.is((await code(m.forward(tokens, { oneZeroAttentionMask: short }))).code, 'TL_SHAPE_MISMATCH')
  t.is((await code(m.encoderOutput(tokens, null, short))).code, 'TL_SHAPE_MISMATCH')
  const bad = Tensor.from(BigInt64Array.from([2n, 9999n, 3n]), [1, 3])
  t.is((await code(m.forward(bad))).code, 'TL_INVALID_ARGUMENT')
  t.is((await code(m.forward(tokens, { tokenTypeIds: tokens }))).code, 'TL_INVALID_ARGUMENT')
  const e1 = await code(HookedEncoder.fromPretrained('gpt2'))
  t.is(e1.code, 'TL_UNSUPPORTED')
  t.regex(e1.message, /HookedTransformer/)
  const e2 = await code(HookedTransformer.fromPretrained('bert-base-cased'))
  t.is(e2.code, 'TL_UNSUPPORTED')
  t.regex(e2.message, /HookedEncoder/)
})

function snapshot(): string {
  const repo = path.join(HUB, 'models--google-bert--bert-base-cased')
  return path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
}

function editedCopy(edit: (t: Map<string, RawTensor>) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-bert-'))
  for (const f of fs.readdirSync(snapshot())) fs.copyFileSync(path.join(snapshot(), f), path.join(dir, f))
  rewriteSafetensors(path.join(dir, 'model.safetensors'), edit)
  return dir
}

test('errors: every weight is declared and checked (missing, wrong shape, NaN, part of a head)', async (t) => {
  const cases: [string, (m: Map<string, RawTensor>) => void, string][] = [
    ['missing', (m) => void m.delete('bert.encoder.layer.1.attention.self.key.weight'), 'TL_MISSING_WEIGHT'],
    ['shape', (m) => void (m.get('bert.encoder.layer.0.output.dense.bias')!.shape = [16]), 'TL_CORRUPT_FILE'],
    ['nan', (m) => m.get('bert.embeddings.LayerNorm.weight')!.bytes.writeFloatLE(NaN, 4), 'TL_CORRUPT_FILE'],
    ['half head', (m) => void m.delete('cls.predictions.transform.LayerNorm.bias'), 'TL_MISSING_WEIGHT'],
  ]
  for (const [label, edit, want] of cases) {
    const dir = editedCopy(edit)
    try {
      t.is((await code(HookedEncoder.fromPretrained(dir))).code as string, want, label)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
})

test('a checkpoint without heads loads its trunk; logits, predictions and NSP are TL_MISSING_WEIGHT', async (t) => {
  const dir = editedCopy((m) => {
    for (const k of [...m.keys()]) if (k.startsWith('cls.') || k.startsWith('bert.pooler.')) m.delete(k)
  })
  try {
    const m = await HookedEncoder.fromPretrained(dir)
    t.deepEqual(m.heads, [])
    const [tokens, tti, mask] = m.toTokens(g().json.inputs.batch)
    assertClose(t, await m.encoderOutput(tokens, tti, mask), gt('batch.encoder_output'), TOL, 'trunk only')
    const e = await code(m.forward(tokens))
    t.is(e.code, 'TL_MISSING_WEIGHT')
    t.regex(e.message, /no MLM head/)
    t.is((await code(new BertNextSentencePrediction(m).forward(g().json.inputs.pair))).code, 'TL_MISSING_WEIGHT')
    t.false(m.stateDict().has('unembed.W_U'))
    const [none, cache] = await m.runWithCache(tokens, { tokenTypeIds: tti, oneZeroAttentionMask: mask, returnType: null })
    t.is(none, null)
    assertClose(t, cache.get('blocks.2.hook_normalized_resid_post'), gt('batch.encoder_output'), TOL, 'trunk-only cache')
    t.false(cache.has('mlm_head.ln.hook_scale'))
    m.dispose()
    t.is((await code(m.forward(tokens))).code, 'TL_DISPOSED')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
