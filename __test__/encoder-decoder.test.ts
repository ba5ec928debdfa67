/**
 * HookedEncoderDecoder (T5) against the goldens of scripts/reference/t5_fixtures.py: a tiny
 * random T5ForConditionalGeneration under the real id google-t5/t5-small (alias t5-small).
 *
 * The encoder, the hook names and order, the state dict and the tokenization are TL's. The
 * decoder is HF's: the `cache.*` goldens of decoder hooks come from TL with its decoder
 * self-attention made HF's (causal, unidirectional buckets; checked there against HF's logits,
 * hidden states and attention patterns), the logits and greedy generations from HF. TL's own
 * decoder logits (no causal mask, bidirectional buckets) are recorded too, and ours must differ.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { architectureClass, architectureOf, getPretrainedModelConfig, HookedEncoderDecoder, HookedTransformer, Tensor, TransformerLensError } from '../src/index'
import { assertClose, maxAbsDiff } from './helpers/compare'
import { golden, HUB, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const ID = 'google-t5/t5-small'
const TOL = 1e-4
const g = () => golden(ID, 't5')
const gt = (name: string) => {
  const x = g().tensors.get(name)
  if (!x) throw new Error(`no golden ${name}`)
  return x
}
const tensorOf = (name: string) => {
  const x = gt(name)
  return Tensor.from(Array.from(x.data as ArrayLike<number | bigint>, Number), x.shape, x.dtype === 'I64' ? 'int64' : 'float32')
}

let model: Promise<HookedEncoderDecoder> | null = null
const load = () => (model ??= HookedEncoderDecoder.fromPretrained('t5-small'))

async function rejectionCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (e) {
    return e instanceof TransformerLensError ? e.code : `not a TransformerLensError: ${String(e)}`
  }
  return undefined
}

test('config: TL\'s conversion of the T5 config.json', async (t) => {
  const m = await load()
  const want = g().json.cfg as Record<string, unknown>
  for (const k of ['n_layers', 'd_model', 'n_ctx', 'd_head', 'n_heads', 'd_mlp', 'act_fn', 'd_vocab', 'eps', 'positional_embedding_type',
    'relative_attention_max_distance', 'relative_attention_num_buckets', 'decoder_start_token_id', 'attention_dir', 'use_attn_scale',
    'tie_word_embeddings', 'original_architecture', 'tokenizer_name', 'model_name', 'd_vocab_out', 'n_params']) {
    t.deepEqual(m.cfg[k], want[k], k)
  }
  // getPretrainedModelConfig converts T5's config.json the same way; the registry names the class.
  const cfg = await getPretrainedModelConfig('t5-small', { device: 'cpu' })
  for (const k of ['n_layers', 'd_model', 'n_ctx', 'n_params', 'relative_attention_num_buckets', 'act_fn']) t.deepEqual(cfg[k], want[k], `getPretrainedModelConfig: ${k}`)
  t.is(architectureClass(architectureOf('google-t5/t5-base')), 'HookedEncoderDecoder')
})

test('toTokens: [tokens, attentionMask] as TL (</s> appended, right padding, truncated to n_ctx)', async (t) => {
  const m = await load()
  const prompts = g().json.prompts
  const [tokens, mask] = m.toTokens(prompts.single)
  assertClose(t, tokens, gt('tokens'), 0, 'tokens')
  assertClose(t, mask, gt('mask'), 0, 'mask')
  const [bt, bm] = m.toTokens(prompts.batch)
  assertClose(t, bt, gt('batch.tokens'), 0, 'batch.tokens')
  assertClose(t, bm, gt('batch.mask'), 0, 'batch.mask')
  const [lt] = m.toTokens(prompts.long)
  assertClose(t, lt, gt('long.tokens'), 0, 'long.tokens')
  t.true(m.toTokens(prompts.long, { truncate: false })[0].shape[1] > 20)
})

test('forward: logits match HF (long decoder input), and differ from TL\'s own decoder', async (t) => {
  const m = await load()
  const logits = await m.forward(tensorOf('tokens'), { decoderInput: tensorOf('decoder_input'), oneZeroAttentionMask: tensorOf('mask') })
  assertClose(t, logits, gt('hf.logits'), TOL, 'hf.logits')
  const ours = Array.from(logits.toArray() as Float32Array)
  const tlOwn = Array.from(gt('tl.logits').data as Float32Array)
  const d = maxAbsDiff(ours, tlOwn)
  t.true(d > 0.1, `TL's decoder (no causal mask, bidirectional buckets) differs by ${d}`)
  t.true(d > 100 * TOL)
  // A one-token decoder input: TL and HF agree there.
  const short = await m.forward(tensorOf('tokens'), { decoderInput: Tensor.from([0], [1, 1], 'int64'), oneZeroAttentionMask: tensorOf('mask') })
  assertClose(t, short, gt('short.logits'), TOL, 'short.logits')
})

test('runWithCache: every hook, in TL\'s order, with TL\'s (encoder) and HF\'s (decoder) numbers', async (t) => {
  const m = await load()
  const [logits, cache] = await m.runWithCache(tensorOf('tokens'), { decoderInput: tensorOf('decoder_input'), oneZeroAttentionMask: tensorOf('mask') })
  assertClose(t, logits, gt('logits'), TOL, 'logits')
  const names = g().json.hook_names as string[]
  t.deepEqual(cache.keys(), names)
  for (const name of names) assertClose(t, cache.get(name), gt(`cache.${name}`), TOL, name)
  t.deepEqual([...m.hookNames()].sort(), [...(g().json.all_hook_names as string[])].sort())
})

test('padded batch: the encoder mask (and cross-attention) as HF', async (t) => {
  const m = await load()
  const names = g().json.batch_cache_names as string[]
  const [logits, cache] = await m.runWithCache(tensorOf('batch.tokens'), { decoderInput: tensorOf('batch.decoder_input'), oneZeroAttentionMask: tensorOf('batch.mask'), namesFilter: names })
  assertClose(t, logits, gt('batch.logits'), TOL, 'batch.logits')
  // In firing order, as TL's cache.
  const order = g().json.hook_names as string[]
  t.deepEqual(cache.keys(), order.filter((n) => names.includes(n)))
  for (const name of names) assertClose(t, cache.get(name), gt(`batch.cache.${name}`), TOL, `batch.${name}`)
  const nomask = await m.forward(tensorOf('batch.tokens'), { decoderInput: tensorOf('batch.decoder_input') })
  assertClose(t, nomask, gt('batch.nomask.logits'), TOL, 'batch.nomask.logits')
  // A string: tokenized, masked, the decoder started from the pad token (TL's forward).
  assertClose(t, await m.forward(g().json.prompts.single), gt('str.logits'), TOL, 'str.logits')
})

test('greedy generate matches HF (KV-cached decoder loop); the string API stops at EOS', async (t) => {
  const m = await load()
  const n = g().json.gen_tokens as number
  const out = await m.generate(tensorOf('batch.tokens'), { oneZeroAttentionMask: tensorOf('batch.mask'), maxNewTokens: n, doSample: false, stopAtEos: false })
  assertClose(t, out as Tensor, gt('hf.generate'), 0, 'hf.generate')
  t.is(await m.generate(g().json.prompts.single, { maxNewTokens: n, doSample: false }), g().json.generate_str)
  const a = await m.generate(tensorOf('tokens'), { maxNewTokens: 5, seed: 7, oneZeroAttentionMask: tensorOf('mask'), stopAtEos: false, topK: 20, temperature: 0.8 })
  const b = await m.generate(tensorOf('tokens'), { maxNewTokens: 5, seed: 7, oneZeroAttentionMask: tensorOf('mask'), stopAtEos: false, topK: 20, temperature: 0.8 })
  t.deepEqual((a as Tensor).toArray(), (b as Tensor).toArray())
  t.deepEqual((a as Tensor).shape, [1, 6])
})

test('hooks: runWithHooks replaces an activation, addHook fires at every generate step', async (t) => {
  const m = await load()
  const opts = { decoderInput: tensorOf('decoder_input'), oneZeroAttentionMask: tensorOf('mask') }
  const base = await m.forward(tensorOf('tokens'), opts)
  const seen: number[][] = []
  const zeroed = await m.runWithHooks(tensorOf('tokens'), {
    ...opts,
    fwdHooks: [
      ['decoder.1.hook_mlp_out', (x) => Tensor.zeros(x.shape)],
      ['decoder.0.cross_attn.hook_pattern', (x) => void seen.push(x.shape)],
    ],
  })
  t.deepEqual(seen, [[1, 4, 14, 20]])
  t.true(maxAbsDiff(Array.from(base.toArray() as Float32Array), Array.from(zeroed!.toArray() as Float32Array)) > 1e-3)
  // The hooks were for that run only.
  assertClose(t, await m.forward(tensorOf('tokens'), opts), gt('hf.logits'), TOL, 'after runWithHooks')
  let calls = 0
  m.addHook('decoder.0.hook_resid_pre', () => void calls++)
  try {
    await m.generate(tensorOf('tokens'), { oneZeroAttentionMask: tensorOf('mask'), maxNewTokens: 3, doSample: false, stopAtEos: false })
  } finally {
    m.resetHooks()
  }
  t.is(calls, 3)
})

test('stateDict: TL\'s keys, order and layouts', async (t) => {
  const m = await load()
  const sd = m.stateDict()
  t.deepEqual([...sd.keys()], g().json.state_dict_keys)
  for (const [k, v] of sd) assertClose(t, v.to('float32'), gt(`state_dict.${k}`), 0, `state_dict.${k}`)
  t.deepEqual(m.allHeadLabels().slice(0, 2), ['EL0H0', 'EL0H1'])
  // TL's stacked properties: encoder blocks, then decoder blocks (self-attention).
  const n = m.cfg.n_layers
  const Wk = m.W_K
  t.deepEqual(Wk.shape, [2 * n, m.cfg.n_heads, m.cfg.d_model, m.cfg.d_head])
  assertClose(t, Wk.get(n), gt('state_dict.decoder.0.attn.W_K'), 0, 'W_K[n_layers]')
  assertClose(t, m.W_in.get(1), gt('state_dict.encoder.1.mlp.W_in'), 0, 'W_in[1]')
  assertClose(t, m.W_E, gt('state_dict.embed.W_E'), 0, 'W_E')
  t.deepEqual(m.OV.shape, [2 * n, m.cfg.n_heads, m.cfg.d_model, m.cfg.d_model])
  t.throws(() => m.W_pos, { instanceOf: TransformerLensError })
})

test('errors: wrong class, bad masks, missing inputs, missing weights', async (t) => {
  const m = await load()
  const e1 = await HookedEncoderDecoder.fromPretrained('gpt2').catch((e) => e)
  t.is(e1.code, 'TL_UNSUPPORTED')
  t.regex(e1.message, /HookedTransformer/)
  const e2 = await HookedTransformer.fromPretrained('t5-small').catch((e) => e)
  t.is(e2.code, 'TL_UNSUPPORTED')
  t.regex(e2.message, /HookedEncoderDecoder/)
  const tokens = tensorOf('tokens')
  const dec = tensorOf('decoder_input')
  t.is(await rejectionCode(m.forward(tokens, { decoderInput: dec, oneZeroAttentionMask: Tensor.ones([1, 3], 'int64') })), 'TL_SHAPE_MISMATCH')
  t.is(await rejectionCode(m.forward(tokens)), 'TL_INVALID_ARGUMENT')
  t.is(await rejectionCode(m.forward(tokens, { decoderInput: Tensor.from([0, 0], [2, 1], 'int64') })), 'TL_SHAPE_MISMATCH')
  t.is(await rejectionCode(m.forward(tokens, { decoderInput: Tensor.from([99999], [1, 1], 'int64') })), 'TL_INVALID_ARGUMENT')
  t.is(await rejectionCode(m.runWithHooks(tokens, { decoderInput: dec, fwdHooks: [['encoder.0.hook_resid_post', () => Tensor.zeros([1, 2])]] })), 'TL_SHAPE_MISMATCH')
  // A checkpoint missing a weight: TL_MISSING_WEIGHT, naming it.
  const snap = fs.readdirSync(path.join(HUB, 'models--google-t5--t5-small', 'snapshots'))[0]
  const src = path.join(HUB, 'models--google-t5--t5-small', 'snapshots', snap)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-t5-'))
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f))
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_layers: 3, num_decoder_layers: 3 }))
  const e3 = await HookedEncoderDecoder.fromPretrained(dir).catch((e) => e)
  t.is(e3.code, 'TL_MISSING_WEIGHT')
  t.regex(e3.message, /encoder\.block\.2/)
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, feed_forward_proj: 'gated-gelu' }))
  t.is(await rejectionCode(HookedEncoderDecoder.fromPretrained(dir)), 'TL_UNSUPPORTED')
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, d_model: 64 }))
  t.is(await rejectionCode(HookedEncoderDecoder.fromPretrained(dir)), 'TL_CORRUPT_FILE')
})
