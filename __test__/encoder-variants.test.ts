/**
 * Encoder config variants against TL 2.16.1 (goldens and checkpoints from
 * scripts/reference/encoder_variant_fixtures.py, the cases scripts/reference/sweep_encoders.py
 * found):
 *   google-bert/bert-base-uncased: a cased tokenizer.json whose tokenizer_config.json does not
 *     say do_lower_case (transformers lowercases it), position_embedding_type and hidden_act
 *     that TL ignores, 8 heads of 4, an untied MLM decoder, n_ctx 24;
 *   google-t5/t5-base: feed_forward_proj 'gelu_new', tie_word_embeddings false (TL unembeds with
 *     the shared embedding), num_decoder_layers 3 > num_layers 2 (TL runs 2), d_kv 12, 16 buckets
 *     up to distance 20 (the decoder self-attention HF's, as t5_fixtures.py);
 * the configs TL cannot load (each with TL's error in the golden): TL_UNSUPPORTED naming the
 * config.json key; and those TL loads but cannot run (relative positions without a bucket):
 * TL_UNSUPPORTED from forward.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { BertNextSentencePrediction, HookedEncoder, HookedEncoderDecoder, Tensor, TransformerLensError } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, HUB, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const BERT = 'google-bert/bert-base-uncased'
const T5 = 'google-t5/t5-base'
const TOL = 1e-4
const gb = () => golden(BERT, 'variant')
const gt5 = () => golden(T5, 'variant')

function tensorOf(model: string, key: string): Tensor {
  const x = golden(model, 'variant').tensors.get(key)
  if (!x) throw new Error(`no golden ${key}`)
  return x.dtype === 'I64' ? Tensor.from(x.data as BigInt64Array, x.shape, 'int64') : Tensor.from(x.data as Float32Array, x.shape)
}

function assertCfg(t: any, cfg: Record<string, unknown>, want: Record<string, unknown>): void {
  for (const k of ['d_model', 'd_head', 'n_heads', 'd_mlp', 'n_layers', 'n_ctx', 'eps', 'd_vocab', 'act_fn', 'tie_word_embeddings',
    'relative_attention_num_buckets', 'relative_attention_max_distance', 'positional_embedding_type', 'tokenizer_prepends_bos']) {
    if (k in want) t.deepEqual(cfg[k], want[k], `cfg.${k}`)
  }
}

test('BERT variant: tokens (tokenizer_config.json rebuilds the normalizer), logits, every hook, predictions, NSP as TL', async (t) => {
  const g = gb()
  const m = await HookedEncoder.fromPretrained('bert-base-uncased')
  try {
    assertCfg(t, m.cfg, g.json.cfg)
    const inputs: [string, string | string[]][] = [['single', g.json.inputs.single], ['batch', g.json.inputs.batch], ['long', g.json.inputs.long]]
    for (const [key, inp] of inputs) {
      const [tokens, tti, mask] = m.toTokens(inp)
      assertClose(t, tokens, g.tensors.get(`${key}.tokens`), 0, `${key}.tokens`)
      assertClose(t, tti, g.tensors.get(`${key}.token_type_ids`), 0, `${key}.token_type_ids`)
      assertClose(t, mask, g.tensors.get(`${key}.attention_mask`), 0, `${key}.attention_mask`)
      assertClose(t, (await m.forward(inp)) as Tensor, g.tensors.get(`${key}.logits`), TOL, `${key}.logits`)
    }
    t.deepEqual(await m.forward(g.json.inputs.single, { returnType: 'predictions' }), g.json.predictions.single)
    t.deepEqual(await m.forward(g.json.inputs.batch, { returnType: 'predictions' }), g.json.predictions.batch)
    const [, cache] = await m.runWithCache(g.json.inputs.batch)
    t.deepEqual(cache.keys(), g.json.hook_names)
    for (const name of g.json.hook_names as string[]) assertClose(t, cache.get(name), g.tensors.get(`cache.${name}`), TOL, name)
    const nsp = new BertNextSentencePrediction(m)
    for (const [i, pair] of (g.json.inputs.pairs as string[][]).entries()) {
      assertClose(t, nsp.toTokens(pair)[0], g.tensors.get(`nsp${i}.tokens`), 0, `nsp${i}.tokens`)
      const [logits, c] = await nsp.runWithCache(pair)
      assertClose(t, logits as Tensor, g.tensors.get(`nsp${i}.logits`), TOL, `nsp${i}.logits`)
      for (const k of ['pooler.hook_pooler_out', 'nsp_head.hook_nsp_out']) assertClose(t, c.get(k), g.tensors.get(`nsp${i}.cache.${k}`), TOL, `nsp${i}.${k}`)
      t.is(await nsp.forward(pair, { returnType: 'predictions' }), g.json.nsp_predictions[i])
    }
  } finally {
    m.dispose()
  }
})

test('T5 variant: gelu_new MLP, shared unembedding, num_layers decoder blocks: logits, every hook, batch, generation', async (t) => {
  const g = gt5()
  const x = (k: string) => tensorOf(T5, k)
  const m = await HookedEncoderDecoder.fromPretrained('t5-base')
  try {
    assertCfg(t, m.cfg, g.json.cfg)
    const [tokens, mask] = m.toTokens(g.json.inputs.prompts[0])
    assertClose(t, tokens, g.tensors.get('tokens'), 0, 'tokens')
    assertClose(t, mask, g.tensors.get('mask'), 0, 'mask')
    assertClose(t, m.toTokens(g.json.inputs.long)[0], g.tensors.get('long.tokens'), 0, 'long.tokens')
    const [logits, cache] = await m.runWithCache(x('tokens'), { decoderInput: x('decoder_input'), oneZeroAttentionMask: x('mask') })
    assertClose(t, logits, g.tensors.get('logits'), TOL, 'logits')
    t.deepEqual(cache.keys(), g.json.hook_names)
    for (const name of g.json.hook_names as string[]) assertClose(t, cache.get(name), g.tensors.get(`cache.${name}`), TOL, name)
    const [bl, bc] = await m.runWithCache(x('batch.tokens'), { decoderInput: x('batch.decoder_input'), oneZeroAttentionMask: x('batch.mask') })
    assertClose(t, bl, g.tensors.get('batch.logits'), TOL, 'batch.logits')
    for (const name of g.json.hook_names as string[]) assertClose(t, bc.get(name), g.tensors.get(`batch.cache.${name}`), TOL, `batch.${name}`)
    assertClose(t, await m.forward(g.json.inputs.prompts[0]), g.tensors.get('str.logits'), TOL, 'str.logits')
    const gen = await m.generate(x('batch.tokens'), { oneZeroAttentionMask: x('batch.mask'), maxNewTokens: g.tensors.get('gen')!.shape[1] - 1, doSample: false, stopAtEos: false })
    assertClose(t, gen as Tensor, g.tensors.get('gen'), 0, 'gen')
  } finally {
    m.dispose()
  }
})

function snapshotCopy(model: string, change: Record<string, unknown>): string {
  const repo = path.join(HUB, `models--${model.replace('/', '--')}`, 'snapshots')
  const src = path.join(repo, fs.readdirSync(repo)[0])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-encoder-variant-'))
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f))
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...change }))
  return dir
}

test('configs TL cannot load: TL_UNSUPPORTED naming the config.json key', async (t) => {
  for (const [model, load] of [[BERT, (d: string) => HookedEncoder.fromPretrained(d)], [T5, (d: string) => HookedEncoderDecoder.fromPretrained(d)]] as const) {
    const refusals = golden(model, 'variant').json.refusals as { config: Record<string, unknown>; tl_error: string }[]
    t.true(refusals.length > 0)
    for (const { config, tl_error } of refusals) {
      t.truthy(tl_error, `TL raised on ${JSON.stringify(config)}`)
      const dir = snapshotCopy(model, config)
      const e = await load(dir).then(() => null, (err) => err)
      t.true(e instanceof TransformerLensError, `${model} ${JSON.stringify(config)}: ${e}`)
      t.is(e?.code, 'TL_UNSUPPORTED', `${model} ${JSON.stringify(config)}`)
      for (const key of Object.keys(config)) t.regex(e?.message ?? '', new RegExp(key), `${model}: the message names ${key}`)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
})

test('configs whose first forward TL cannot run (relative positions without a bucket): TL_UNSUPPORTED in forward, naming the key', async (t) => {
  const runRefusals = gt5().json.run_refusals as { config: Record<string, unknown>; tl_error: string }[]
  t.true(runRefusals.length > 0)
  const x = (k: string) => tensorOf(T5, k)
  for (const { config, tl_error } of runRefusals) {
    t.truthy(tl_error, `TL raised on ${JSON.stringify(config)}`)
    const dir = snapshotCopy(T5, config)
    const m = await HookedEncoderDecoder.fromPretrained(dir)
    try {
      const e = await m.forward(x('tokens'), { decoderInput: x('decoder_input'), oneZeroAttentionMask: x('mask') }).then(() => null, (err) => err)
      t.true(e instanceof TransformerLensError, `${JSON.stringify(config)}: ${e}`)
      t.is(e?.code, 'TL_UNSUPPORTED')
      for (const key of Object.keys(config)) t.regex(e?.message ?? '', new RegExp(key))
    } finally {
      m.dispose()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
})
