/**
 * Decoder families beyond GPT-2, against TL goldens from scripts/reference/make_family_fixtures.py
 * (logits, caches, state dicts, padding and generation run through parity.test.ts and
 * generation.test.ts, which cover every model in MODELS): the use_* flags with each family's
 * hook points, and gradients (`inclBwd`) through each new component kind.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { HookedTransformer, Tensor } from '../src/index'
import { assertClose } from './helpers/compare'
import { FIXTURES, golden, slug, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

/** Family model → the component kinds its checkpoint exercises. */
const FAMILY_MODELS = {
  'EleutherAI/pythia-70m': 'rotary (partial, halves), parallel attention + MLP',
  '01-ai/Yi-6B': 'Llama: RMSNorm, gated SiLU MLP, grouped-query attention, full rotary',
  'Qwen/Qwen2-0.5B': 'Qwen2: grouped-query attention with Q/K/V biases, tied embeddings',
  'mistralai/Mistral-7B-v0.1': 'Mistral: sliding-window (local) attention',
  'EleutherAI/gpt-neo-125M': 'GPT-Neo: local attention on some layers, unscaled scores, learned positions',
  'EleutherAI/gpt-j-6B': 'GPT-J: parallel block with one LayerNorm, partial rotary on adjacent pairs, b_U',
  'facebook/opt-125m': 'OPT: learned positions past an offset of 2, ReLU MLP, tied embeddings, BOS </s>',
  'microsoft/phi-2': 'Phi: parallel block with one LayerNorm, partial rotary, biases everywhere incl. b_U, slow tokenizer BOS',
  'microsoft/phi-4': 'Phi-3: fused qkv_proj and gate_up_proj, RMSNorm, gated SiLU MLP, grouped-query attention',
  'Qwen/Qwen3-0.6B': 'Qwen3: q/k RMSNorm per head, head_dim != d_model / n_heads, grouped-query attention',
  'bigscience/bloom-560m': 'Bloom: ALiBi, LayerNorm on the embeddings (embed.ln), fused per-head QKV, tied embeddings',
  'google/gemma-2b': 'Gemma: RMSNorm weights as offsets from 1, embeddings scaled by sqrt(d_model), GELU-tanh gated MLP, multi-query attention',
  'google/gemma-2-2b': 'Gemma 2: norms after attention and MLP (ln1_post / ln2_post), global / local layers, score and logit soft caps, query_pre_attn_scalar',
  'mistralai/Mixtral-8x7B-v0.1': 'Mixtral: mixture-of-experts MLP (top-2 of 4 gated experts, expert hooks), RMSNorm folded into router and experts',
  'bigcode/santacoder': 'SantaCoder: multi-query attention (q_attn + one shared kv_attn head, copied into every head as TL does), remote-code checkpoint, scores scaled by inverse layer index',
  'Qwen/Qwen-1_8B': 'Qwen v1: remote-code checkpoint, fused c_attn with Q/K/V biases (no c_proj bias), gated MLP from w1 / w2 of intermediate_size // 2, untied lm_head',
  'EleutherAI/pythia-14m': 'GPT-NeoX with tied embeddings (no embed_out in the file), rotary_dim 2, gelu_fast',
  'microsoft/phi-1_5': 'Phi with tied embeddings (no lm_head.weight, lm_head.bias kept), rotary_dim 2',
  'mistralai/Mixtral-8x7B-Instruct-v0.1': 'Mixtral with top-1 of 8 experts: experts no token chose still fire their hooks, forward and backward (empty tensors)',
} as const

for (const [model, kinds] of Object.entries(FAMILY_MODELS)) {
  test(`${model} (${kinds}): use_attn_result + use_split_qkv_input + use_hook_mlp_in match TL`, async (t) => {
    const g = golden(model, 'flags')
    const m = await HookedTransformer.fromPretrained(model)
    m.setUseAttnResult(true)
    m.setUseSplitQkvInput(true)
    m.setUseHookMlpIn(true)
    const [logits, cache] = await m.runWithCache(m.toTokens(g.json.prompt))
    assertClose(t, logits, g.tensors.get('logits'), 1e-4, `${model}.flags.logits`)
    t.deepEqual(cache.keys(), g.json.hook_names)
    for (const key of cache.keys()) assertClose(t, cache.get(key), g.tensors.get(`cache.${key}`), key.endsWith('pattern') ? 1e-5 : 1e-4, `${model}.flags.${key}`)
    cache.dispose()
    m.dispose()
  })

  if (fs.existsSync(path.join(FIXTURES, 'golden', slug(model), 'ungroup.json'))) {
    test(`${model} (${kinds}): setUngroupGroupedQueryAttention gives TL's hooks (a K/V copy per query head) and logits`, async (t) => {
      const g = golden(model, 'ungroup')
      const m = await HookedTransformer.fromPretrained(model)
      const grouped = m.cfg.n_key_value_heads as number
      m.setUngroupGroupedQueryAttention(true)
      t.is(m.cfg.ungroup_grouped_query_attention, true)
      const [logits, cache] = await m.runWithCache(m.toTokens(g.json.prompt))
      assertClose(t, logits, g.tensors.get('logits'), 1e-4, `${model}.ungroup.logits`)
      t.deepEqual(cache.keys(), g.json.hook_names)
      t.is(cache.get('blocks.0.attn.hook_k').shape[2], m.cfg.n_heads)
      t.true(grouped < m.cfg.n_heads)
      for (const key of cache.keys()) assertClose(t, cache.get(key), g.tensors.get(`cache.${key}`), key.endsWith('pattern') ? 1e-5 : 1e-4, `${model}.ungroup.${key}`)
      // The KV cache holds the ungrouped heads too, and greedy decoding through it is unchanged.
      const kv = m.initKvCache(1)
      await m.forward(m.toTokens(g.json.prompt), { pastKvCache: kv })
      t.is(kv.entries[0].pastKeys.shape[2], m.cfg.n_heads)
      cache.dispose()
      m.dispose()
    })
  }

  test(`${model} (${kinds}): runWithCache inclBwd gives TL's loss, activations and gradients`, async (t) => {
    const g = golden(model, 'backward')
    const m = await HookedTransformer.fromPretrained(model)
    const tokens = m.toTokens(g.json.prompt)
    assertClose(t, tokens, g.tensors.get('tokens'), 0, 'tokens')
    const [loss, cache] = await m.runWithCache(tokens, { returnType: 'loss', inclBwd: true })
    assertClose(t, loss as Tensor, g.tensors.get('loss'), 1e-5, `${model}.loss`)
    t.deepEqual(cache.keys(), g.json.keys)
    for (const k of g.json.keys as string[]) assertClose(t, cache.get(k), g.tensors.get(k), k.endsWith('_grad') ? 1e-5 : 1e-4, `${model}.${k}`)
    cache.dispose()
    m.dispose()
  })
}

// TL 2.16.1's fromPretrained drops an MoE model's RMSNorm weights (it switches to RMSPre but
// skips folding for num_experts > 1); the port folds them into W_Q/W_K/W_V, the router and
// every expert's W_in / W_gate, and W_U: the processed model predicts what the unprocessed one
// does, up to the centring of W_U (a per-position shift of the logits).
test('mistralai/Mixtral-8x7B-v0.1: processed logits equal unprocessed ones (norm weights folded, not dropped as TL 2.16.1 does)', async (t) => {
  const model = 'mistralai/Mixtral-8x7B-v0.1'
  const processed = await HookedTransformer.fromPretrained(model)
  const raw = await HookedTransformer.fromPretrainedNoProcessing(model)
  t.is(processed.cfg.normalization_type, 'RMSPre')
  const tokens = raw.toTokens(golden(model, 'backward').json.prompt)
  const a = (await processed.forward(tokens)) as Tensor
  const b = (await raw.forward(tokens)) as Tensor
  const centred = b.sub(b.mean(-1, { keepdim: true }))
  const gap = Math.max(...Array.from(a.sub(centred).abs().toArray() as Float32Array))
  t.true(gap < 1e-4, `processed vs unprocessed (centred) logits differ by ${gap}`)
  processed.dispose()
  raw.dispose()
})
