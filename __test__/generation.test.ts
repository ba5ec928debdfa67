/**
 * Padding, attention masks, the KV cache and generate, against TL 2.16.1 goldens
 * (scripts/reference/make_generation_fixtures.py) for every fabricated GPT-2-family model.
 */
import test from 'ava'

import { HookedTransformer, Tensor, testPrompt, TransformerLensError } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, MODELS, useFixtureHub } from './helpers/fixtures'
import type { Golden } from './helpers/safetensors'

useFixtureHub()

const LOGITS_TOL = 1e-4
const LOSS_TOL = 1e-5

const models = new Map<string, Promise<HookedTransformer>>()
function load(name: string): Promise<HookedTransformer> {
  let m = models.get(name)
  if (!m) models.set(name, (m = HookedTransformer.fromPretrained(name)))
  return m
}

function ids(g: Golden | undefined): number[][] {
  if (!g) throw new Error('missing golden')
  const flat = Array.from(g.data as ArrayLike<number | bigint>, Number)
  const w = g.shape[g.shape.length - 1]
  const rows: number[][] = []
  for (let i = 0; i < flat.length; i += w) rows.push(flat.slice(i, i + w))
  return rows
}

function tokensOf(g: Golden | undefined): Tensor {
  const r = ids(g)
  return Tensor.from(BigInt64Array.from(r.flat(), BigInt), [r.length, r[0].length])
}

for (const model of MODELS) {
  const G = () => golden(model, 'generation')

  test(`${model}: left padding: tokens, mask, logits and loss match TL`, async (t) => {
    const g = G()
    const m = await load(model)
    const tokens = m.toTokens(g.json.prompts, { paddingSide: 'left' })
    assertClose(t, tokens, g.tensors.get('left.tokens'), 0, `${model}.left.tokens`)
    const mask = m.tokenizer!.attentionMask(tokens, true, true)
    assertClose(t, mask, g.tensors.get('left.mask'), 0, `${model}.left.mask`)
    const out = await m.forward(g.json.prompts, { paddingSide: 'left', returnType: 'both' })
    assertClose(t, out.logits, g.tensors.get('left.logits'), LOGITS_TOL, `${model}.left.logits`)
    assertClose(t, out.loss, g.tensors.get('left.loss'), LOSS_TOL, `${model}.left.loss`)
    const per = await m.forward(g.json.prompts, { padding_side: 'left', return_type: 'loss', loss_per_token: true } as any)
    assertClose(t, per, g.tensors.get('left.loss_per_token'), LOSS_TOL, `${model}.left.loss_per_token`)
  })

  test(`${model}: right padding with an explicit attention mask matches TL`, async (t) => {
    const g = G()
    const m = await load(model)
    const tokens = tokensOf(g.tensors.get('right.tokens'))
    const mask = m.tokenizer!.attentionMask(tokens, true, false)
    assertClose(t, mask, g.tensors.get('right.mask'), 0, `${model}.right.mask`)
    const out = await m.forward(tokens, { attentionMask: mask, returnType: 'both' })
    assertClose(t, out.logits, g.tensors.get('right.logits'), LOGITS_TOL, `${model}.right.logits`)
    assertClose(t, out.loss, g.tensors.get('right.loss'), LOSS_TOL, `${model}.right.loss`)
    const per = await m.forward(tokens, { attentionMask: mask, returnType: 'loss', lossPerToken: true })
    assertClose(t, per, g.tensors.get('right.loss_per_token'), LOSS_TOL, `${model}.right.loss_per_token`)
  })

  test(`${model}: each padded row gives the logits of its prompt alone (TL's single-prompt logits)`, async (t) => {
    const g = G()
    const m = await load(model)
    const left = await m.forward(g.json.prompts, { paddingSide: 'left' })
    const right = await m.forward(m.toTokens(g.json.prompts), { attentionMask: m.tokenizer!.attentionMask(m.toTokens(g.json.prompts), true, false) })
    const P = left.shape[1]
    g.json.prompts.forEach((_: string, i: number) => {
      const single = g.tensors.get(`single${i}.logits`)!
      const L = single.shape[1]
      const l = left.get(i, [P - L, P])
      assertClose(t, l.reshape([1, L, l.shape[1]]), single, LOGITS_TOL, `${model}.left.row${i}`)
      const r = right.get(i, [0, L])
      assertClose(t, r.reshape([1, L, r.shape[1]]), single, LOGITS_TOL, `${model}.right.row${i}`)
    })
  })

  test(`${model}: KV cache in two halves matches TL and the uncached run`, async (t) => {
    const g = G()
    const m = await load(model)
    const one = m.toTokens(g.json.prompts[0])
    const k = g.json.kv_split
    const n = one.shape[1]
    const cache = m.initKvCache(1)
    const a = await m.forward(one.get(null, [0, k]), { pastKvCache: cache })
    t.is(cache.length, k)
    const b = await m.forward(one.get(null, [k, n]), { past_kv_cache: cache } as any)
    assertClose(t, a, g.tensors.get('kv.single.a'), LOGITS_TOL, `${model}.kv.single.a`)
    assertClose(t, b, g.tensors.get('kv.single.b'), LOGITS_TOL, `${model}.kv.single.b`)
    assertClose(t, cache.get(0).pastKeys, g.tensors.get('kv.single.keys0'), LOGITS_TOL, `${model}.kv.keys0`)
    assertClose(t, cache.entries[0].pastValues, g.tensors.get('kv.single.values0'), LOGITS_TOL, `${model}.kv.values0`)
    assertClose(t, cache.previousAttentionMask, g.tensors.get('kv.single.mask'), 0, `${model}.kv.mask`)
    const full = await m.forward(one)
    assertClose(t, Tensor.cat([a, b], 1), g.tensors.get('single0.logits'), LOGITS_TOL, `${model}.kv.cat`)
    assertClose(t, Tensor.cat([a, b], 1), { shape: full.shape, data: full.toArray() } as Golden, LOGITS_TOL, `${model}.kv.vs_uncached`)

    const left = tokensOf(g.tensors.get('left.tokens'))
    const kb = g.json.kv_left_split
    const lc = m.initKvCache(left.shape[0])
    const la = await m.forward(left.get(null, [0, kb]), { pastKvCache: lc, paddingSide: 'left' })
    const lb = await m.forward(left.get(null, [kb, left.shape[1]]), { pastKvCache: lc, paddingSide: 'left' })
    assertClose(t, la, g.tensors.get('kv.left.a'), LOGITS_TOL, `${model}.kv.left.a`)
    assertClose(t, lb, g.tensors.get('kv.left.b'), LOGITS_TOL, `${model}.kv.left.b`)
    assertClose(t, lc.previousAttentionMask, g.tensors.get('kv.left.mask'), 0, `${model}.kv.left.mask`)
  })

  test(`${model}: greedy generate equals TL's, with and without the KV cache`, async (t) => {
    const g = G()
    const m = await load(model)
    for (let i = 0; i < g.json.prompts.length; i++) {
      const p = g.json.prompts[i]
      const kv = await m.generate(p, { maxNewTokens: g.json.new_tokens, doSample: false, stopAtEos: false, returnType: 'tokens' })
      t.deepEqual(kv.toList(), ids(g.tensors.get(`gen${i}.kv`)), `prompt ${i} (kv)`)
      const nokv = await m.generate(p, { max_new_tokens: g.json.new_tokens, do_sample: false, stop_at_eos: false, use_past_kv_cache: false, return_type: 'tokens' } as any) as unknown as Tensor
      t.deepEqual(nokv.toList(), ids(g.tensors.get(`gen${i}.nokv`)), `prompt ${i} (no kv)`)
    }
    const s = await m.generate(g.json.prompts[0], { maxNewTokens: g.json.new_tokens, doSample: false, stopAtEos: false })
    t.is(s, g.json.gen0_str)
    const fromTokens = await m.generate(m.toTokens(g.json.prompts[2]), { maxNewTokens: g.json.new_tokens, doSample: false, stopAtEos: false })
    t.deepEqual(fromTokens.toList(), g.json.gen_tokens_input)
  })

  test(`${model}: generate from embeddings equals TL's (tokens and embeddings out, with and without the KV cache)`, async (t) => {
    const g = G()
    const m = await load(model)
    const e = g.tensors.get('embeds.input')!
    const embeds = Tensor.from(e.data as Float32Array, e.shape)
    const o = { maxNewTokens: g.json.new_tokens, doSample: false, stopAtEos: false }
    const kv = await m.generate(embeds, { ...o, returnType: 'tokens' })
    t.deepEqual(kv.toList(), ids(g.tensors.get('embeds.kv')), 'kv')
    const nokv = await m.generate(embeds, { ...o, returnType: 'tokens', useKvCache: false })
    t.deepEqual(nokv.toList(), ids(g.tensors.get('embeds.nokv')), 'no kv')
    // returnType 'input' from embeddings: the prompt's embeddings, then the generated tokens'.
    assertClose(t, await m.generate(embeds, o), g.tensors.get('embeds.out'), 1e-6, 'embeds out')
    assertClose(t, await m.generate(g.json.prompts[0], { ...o, returnType: 'embeds' }), g.tensors.get('gen0.embeds'), 1e-6, 'embeds from text')
    // model.embed is TL's: the first prompt's rows of the embeddings TL generated from.
    const rows = m.embed(m.toTokens(g.json.prompts[0]))
    const [got, want] = [Array.from(rows.toArray() as Float32Array), Array.from((e.data as Float32Array).subarray(0, rows.numel()))]
    // Through embed.ln (Bloom) the rows are TL's LayerNorm, equal to rounding; else W_E's rows exactly.
    if (m.cfg.post_embedding_ln) t.true(got.length === want.length && got.every((x, i) => Math.abs(x - want[i]) <= 1e-5), 'embed.ln rows')
    else t.deepEqual(got, want)
    await t.throwsAsync(m.generate(Tensor.zeros([1, 3, 5]), o), { code: 'TL_SHAPE_MISMATCH' } as any)
    await t.throwsAsync(m.generate(Tensor.zeros([3, 5]), o), { code: 'TL_SHAPE_MISMATCH' } as any)
  })

  test(`${model}: generate stops at eos as TL does (one id or a list)`, async (t) => {
    const g = G()
    const m = await load(model)
    const one = await m.generate(g.json.prompts[0], { maxNewTokens: g.json.new_tokens, doSample: false, eosTokenId: g.json.eos_id, returnType: 'tokens' })
    t.deepEqual(one.toList(), ids(g.tensors.get('gen0.eos')))
    const list = await m.generate(g.json.prompts[0], { maxNewTokens: g.json.new_tokens, doSample: false, eosTokenId: g.json.eos_ids, returnType: 'tokens' })
    t.deepEqual(list.toList(), ids(g.tensors.get('gen0.eos_list')))
  })

  test(`${model}: a padded batch continues each row exactly as its prompt alone (TL's single runs)`, async (t) => {
    const g = G()
    const m = await load(model)
    const n = g.json.new_tokens
    for (const side of ['left', 'right'] as const) {
      for (const useKvCache of [true, false]) {
        const out = (await m.generate(g.json.prompts, { maxNewTokens: n, doSample: false, stopAtEos: false, paddingSide: side, useKvCache, returnType: 'tokens' })) as Tensor
        const rows = out.toList() as number[][]
        g.json.prompts.forEach((_: string, i: number) => {
          const want = ids(g.tensors.get(`gen${i}.kv`))[0]
          t.deepEqual(rows[i].slice(rows[i].length - n), want.slice(want.length - n), `${side} padding, kv ${useKvCache}, row ${i}`)
        })
      }
    }
  })
}

test('sampling: a seed reproduces, topK 1 is greedy, the stream yields what generate returns', async (t) => {
  const m = await load('gpt2')
  const o = { maxNewTokens: 12, stopAtEos: false, returnType: 'tokens' as const, seed: 1234 }
  const a = (await m.generate('Hello', o)).toList()
  const b = (await m.generate('Hello', o)).toList()
  t.deepEqual(a, b)
  const c = (await m.generate('Hello', { ...o, seed: 99 })).toList()
  t.notDeepEqual(a, c)
  const greedy = (await m.generate('Hello', { ...o, doSample: false })).toList()
  t.deepEqual((await m.generate('Hello', { ...o, topK: 1 })).toList(), greedy)
  t.deepEqual((await m.generate('Hello', { ...o, temperature: 0 })).toList(), greedy)
  const streamed: number[] = []
  let text = ''
  for await (const chunk of m.generateStream('Hello', o)) {
    streamed.push(chunk.tokens[0])
    text += chunk.text[0]
  }
  const all = (a as number[][])[0]
  t.deepEqual(streamed, all.slice(all.length - 12))
  t.is(text, m.toString(all.slice(all.length - 12)) as string)
})

test('generate fires registered hooks at every step with the new positions only', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2') // its own instance: hooks are per model
  const shapes: number[][] = []
  const out = await m.hooks({ fwdHooks: [['blocks.0.attn.hook_pattern', (x: Tensor) => void shapes.push(x.shape)]] }, () =>
    m.generate('Hello world', { maxNewTokens: 4, doSample: false, stopAtEos: false, returnType: 'tokens' }),
  )
  const p = m.toTokens('Hello world').shape[1]
  t.deepEqual(shapes, [
    [1, 4, p, p],
    [1, 4, 1, p + 1],
    [1, 4, 1, p + 2],
    [1, 4, 1, p + 3],
  ])
  // Hooks do not change the tokens.
  t.deepEqual(out.toList(), (await m.generate('Hello world', { maxNewTokens: 4, doSample: false, stopAtEos: false, returnType: 'tokens' })).toList())
})

test('generate: abort, bad options and context overflow are clear errors', async (t) => {
  const m = await load('gpt2')
  const ac = new AbortController()
  ac.abort()
  await t.throwsAsync(m.generate('Hi', { signal: ac.signal }), { instanceOf: TransformerLensError, code: 'TL_ABORTED' } as any)
  const ac2 = new AbortController()
  const p = m.generate('Hi', { maxNewTokens: 40, stopAtEos: false, signal: ac2.signal, onProgress: () => ac2.abort() })
  await t.throwsAsync(p, { code: 'TL_ABORTED' } as any)
  await t.throwsAsync(m.generate('Hi', { maxNewTokens: 100 }), { code: 'TL_SHAPE_MISMATCH' } as any)
  await t.throwsAsync(m.generate('Hi', { topP: 1.5 }), { code: 'TL_INVALID_ARGUMENT' } as any)
  await t.throwsAsync(m.generate('Hi', { topK: 0 }), { code: 'TL_INVALID_ARGUMENT' } as any)
  const cache = m.initKvCache(2)
  await t.throwsAsync(m.forward(m.toTokens('Hi'), { pastKvCache: cache }), { code: 'TL_SHAPE_MISMATCH' } as any)
  await t.throwsAsync(m.forward(m.toTokens('Hi'), { attentionMask: Tensor.from(BigInt64Array.from([1n]), [1, 1]) }), { code: 'TL_SHAPE_MISMATCH' } as any)
})

test('a frozen KV cache is read but not extended', async (t) => {
  const m = await load('gpt2')
  const tokens = m.toTokens('The quick brown fox')
  const cache = m.initKvCache(1)
  await m.forward(tokens, { pastKvCache: cache })
  const n = cache.length
  cache.freeze()
  const next = m.toTokens(' jumps', { prependBos: false })
  const a = await m.forward(next, { pastKvCache: cache })
  const b = await m.forward(next, { pastKvCache: cache })
  t.is(cache.length, n)
  t.deepEqual(a.toArray(), b.toArray())
  const fork = cache.clone()
  fork.unfreeze()
  await m.forward(next, { pastKvCache: fork })
  t.is(fork.length, n + next.shape[1])
  t.is(cache.length, n)
  const full = await m.forward(Tensor.cat([tokens, next], 1))
  assertClose(t, a, { shape: a.shape, data: full.get(null, [n, n + next.shape[1]]).toArray() } as Golden, LOGITS_TOL, 'frozen.vs_full')
})

test('an AbortSignal stops a forward that runs JS hooks', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const ac = new AbortController()
  const seen: string[] = []
  const run = m.runWithHooks('Hello world', {
    fwdHooks: [[() => true, (_x: Tensor, h: { name: string }) => {
      seen.push(h.name)
      if (h.name === 'blocks.0.hook_resid_post') ac.abort()
    }]],
    signal: ac.signal,
  } as any)
  await t.throwsAsync(run, { code: 'TL_ABORTED' } as any)
  t.is(seen[seen.length - 1], 'blocks.0.hook_resid_post')
  t.false(seen.includes('blocks.1.hook_resid_pre'))
})

test('testPrompt prints what TL prints and returns the ranks', async (t) => {
  const g = golden('gpt2', 'generation')
  const m = await load('gpt2')
  for (const [key, answer] of [['test_prompt', 'jumps over'], ['test_prompt_multi', ['jumps', 'runs', 'the']]] as const) {
    const lines: string[] = []
    const ranks = await testPrompt('The quick brown fox', answer as string | string[], m, { topK: 5, print: (l) => lines.push(l) })
    t.is(lines.join('\n') + '\n', g.json[key])
    t.truthy(ranks.length)
  }
})

test('getTokenPosition and toSingleStrToken follow TL', async (t) => {
  const m = await load('gpt2')
  const prompt = 'The fox and the fox'
  const fox = m.toSingleToken(' fox')
  t.is(m.toSingleStrToken(fox), ' fox')
  const strs = m.toStrTokens(prompt)
  t.is(m.getTokenPosition(' fox', prompt), strs.indexOf(' fox'))
  t.is(m.getTokenPosition(fox, m.toTokens(prompt), { mode: 'last' }), strs.lastIndexOf(' fox'))
  t.throws(() => m.getTokenPosition(' dog', prompt), { code: 'TL_INVALID_ARGUMENT' } as any)
})

test('generateWithCache: one cache per step, each matching runWithCache on the full sequence', async (t) => {
  const m = await HookedTransformer.fromPretrained('gpt2')
  const names = ['blocks.1.hook_resid_post', 'blocks.0.attn.hook_pattern']
  const [out, caches] = (await m.generateWithCache('Hello world', { maxNewTokens: 3, doSample: false, stopAtEos: false, returnType: 'tokens', namesFilter: names })) as [Tensor, any[]]
  t.is(caches.length, 3)
  const p = m.toTokens('Hello world').shape[1]
  t.deepEqual(caches.map((c) => c.get(names[0]).shape), [[1, p, 32], [1, 1, 32], [1, 1, 32]])
  t.deepEqual([...caches[1].keys()], names.slice().reverse())
  // The full sequence minus its last token, in one run, gives the same activations.
  const full = out.get(null, [0, p + 2])
  const [, ref] = await m.runWithCache(full, { namesFilter: names })
  const resid = ref.get(names[0])
  assertClose(t, caches[0].get(names[0]), { shape: [1, p, 32], data: resid.get(null, [0, p]).toArray() } as Golden, 1e-4, 'gen.cache.step0')
  for (let s = 1; s < 3; s++) {
    assertClose(t, caches[s].get(names[0]), { shape: [1, 1, 32], data: resid.get(null, [p + s - 1, p + s]).toArray() } as Golden, 1e-4, `gen.cache.step${s}`)
    const pat = caches[s].get(names[1]) // [1, heads, 1, p + s]
    const refPat = ref.get(names[1]).get(null, null, [p + s - 1, p + s], [0, p + s])
    assertClose(t, pat, { shape: refPat.shape, data: refPat.toArray() } as Golden, 1e-5, `gen.pattern.step${s}`)
  }
  // Without a filter nothing extra is kept by plain generate.
  t.deepEqual(await m.generate('Hello world', { maxNewTokens: 3, doSample: false, stopAtEos: false, returnType: 'tokens' }).then((x) => (x as Tensor).toList()), out.toList())
})
