/**
 * Qwen v1's tiktoken tokenizer (`QWenTokenizer`: qwen.tiktoken + remote code, no tokenizer.json)
 * against the goldens of the remote code and of TL on the Qwen/Qwen-1_8B fixture
 * (golden/Qwen__Qwen-1_8B/tokenizer.json, scripts/reference/qwen_tokenizer_fixtures.py): ids of
 * varied prompts and fuzz strings, decoding (invalid UTF-8 as U+FFFD, skipped special tokens,
 * unknown ids), TL's defaults (no BOS by default, `<|endoftext|>` as bos / eos / pad, right
 * padding), toTokens / toStrTokens / toString / generate; loading it by folder, file, model name
 * or download; refusing a corrupt vocabulary.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { ExecutionContext } from 'ava'

import { HookedTransformer, Tensor } from '../src/index'
import { rejectionCode } from './helpers/errors'
import { FIXTURES, HUB } from './helpers/fixtures'
import { startHubServer } from './helpers/hub-server'

// Hermetic: the fixture cache, no token, never the real hub.
process.env.HF_HUB_CACHE = HUB
delete process.env.HF_HUB_OFFLINE
delete process.env.HF_TOKEN
process.env.HF_TOKEN_PATH = path.join(os.tmpdir(), 'tl-no-such-token-file')
process.env.HF_ENDPOINT = 'http://127.0.0.1:9'

const MODEL = 'Qwen/Qwen-1_8B'
const GOLDEN = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', 'Qwen__Qwen-1_8B', 'tokenizer.json'), 'utf8'))
const TOK = GOLDEN.tokenizer
const TL = GOLDEN.tl
const SNAPSHOT = (() => {
  const repo = path.join(HUB, 'models--Qwen--Qwen-1_8B')
  return path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
})()

const rows = (x: Tensor) => x.toList() as number[][]

function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

let shared: Promise<HookedTransformer> | undefined
const qwen = () => (shared ??= HookedTransformer.fromPretrained(MODEL))

test('the fixture is the real layout: qwen.tiktoken and tokenization_qwen.py, no tokenizer.json', (t) => {
  const files = fs.readdirSync(SNAPSHOT)
  t.true(files.includes('qwen.tiktoken') && files.includes('tokenization_qwen.py'))
  t.false(files.includes('tokenizer.json'))
  t.is(TOK.class, 'QWenTokenizer')
})

test("fromPretrained comes with the tokenizer and TL's defaults for it", async (t) => {
  const m = await qwen()
  const tok = m.tokenizer!
  t.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [TL.bos_token_id, TL.eos_token_id, TL.pad_token_id])
  t.deepEqual([TOK.bos[1], TOK.eos[1], TOK.pad[1]], [TL.bos_token_id, TL.eos_token_id, TL.pad_token_id])
  t.is(tok.paddingSide, TL.padding_side)
  t.is(tok.prependsBos, TL.cfg.tokenizer_prepends_bos)
  for (const k of ['default_prepend_bos', 'tokenizer_prepends_bos', 'd_vocab', 'd_vocab_out', 'n_ctx']) t.is(m.cfg[k], TL.cfg[k], k)
  t.is(tok.vocabSize, TOK.len)
  t.is(tok.baseVocabSize, TOK.vocab_size)
  t.deepEqual(tok.encode(''), TOK.empty)
})

test('encode gives the remote code ids for every prompt and fuzz string', async (t) => {
  const tok = (await qwen()).tokenizer!
  for (const c of [...TOK.prompts, ...TOK.fuzz]) t.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text))
})

test("decode, convertIdsToTokens and one-token decodes as the remote code (errors='replace')", async (t) => {
  const tok = (await qwen()).tokenizer!
  for (const p of TOK.prompts) {
    t.is(tok.decode(p.ids), p.decode)
    t.is(tok.decode(p.ids, { skipSpecialTokens: true }), p.decode_skip)
    t.deepEqual(p.ids.map((i: number) => tok.decode([i])), p.pieces)
    t.deepEqual(tok.convertIdsToTokens(p.ids), p.tokens)
  }
  for (const d of TOK.decodes) {
    t.is(tok.decode(d.ids), d.text, JSON.stringify(d.ids))
    t.is(tok.decode(d.ids, { skipSpecialTokens: true }), d.skip)
  }
  // Ids past the vocabulary: tiktoken raises KeyError, unless skip_special_tokens drops them.
  for (const u of TOK.unknown) {
    for (const [skip, want] of [[false, u.decode], [true, u.skip]] as const) {
      if (typeof want === 'string') t.is(tok.decode(u.ids, { skipSpecialTokens: skip }), want)
      else t.throws(() => tok.decode(u.ids, { skipSpecialTokens: skip }), { code: 'TL_TOKENIZER' })
    }
  }
  t.deepEqual(tok.convertIdsToTokens(Object.values(TOK.special_ids)), Object.keys(TOK.special_ids))
  t.deepEqual(tok.convertIdsToTokens([TOK.len]), [null])
})

test("toTokens and toStrTokens match TL's (no BOS by default; prependBos writes '<|endoftext|>' + text)", async (t) => {
  const m = await qwen()
  for (const p of TL.prompts) {
    t.deepEqual(rows(m.toTokens(p.text)), p.to_tokens, JSON.stringify(p.text))
    t.deepEqual(rows(m.toTokens(p.text, { prependBos: true })), p.to_tokens_bos, JSON.stringify(p.text))
    t.deepEqual(m.toStrTokens(p.text), p.to_str_tokens)
    t.deepEqual(m.toStrTokens(p.text, { prependBos: true }), p.to_str_tokens_bos)
  }
  // NFC joins '>' of the prepended '<|endoftext|>' with a leading U+0338 into '≯': no BOS token.
  const composed = TL.prompts.find((p: { text: string }) => p.text.startsWith('\u0338'))
  t.not(composed.to_tokens_bos[0][0], TL.bos_token_id)
})

test("a batch pads with '<|endoftext|>' on either side, with and without BOS, as TL; toString decodes it", async (t) => {
  const m = await qwen()
  const { texts, tokens } = TL.batch
  t.deepEqual(rows(m.toTokens(texts)), tokens.default)
  for (const side of ['left', 'right'] as const) {
    for (const bos of [true, false]) {
      t.deepEqual(rows(m.toTokens(texts, { prependBos: bos, paddingSide: side })), tokens[`${side}.${bos ? 'bos' : 'nobos'}`], `${side} ${bos}`)
    }
  }
  const left = Tensor.from(new BigInt64Array(tokens['left.bos'].flat().map(BigInt)), [texts.length, tokens['left.bos'][0].length])
  t.deepEqual(m.toString(left), TL.batch.to_string)
})

test("generate (greedy) gives TL's tokens and text, invalid UTF-8 included", async (t) => {
  const m = await qwen()
  for (const g of TL.generate) {
    const opts = { maxNewTokens: 12, doSample: false, verbose: false }
    t.is(await m.generate(g.text, opts), g.str, JSON.stringify(g.text))
    t.deepEqual(rows((await m.generate(g.text, { ...opts, returnType: 'tokens' })) as Tensor), g.tokens)
  }
})

test("generateStream's pieces, partial characters held back, add up to TL's generated text; with errors='strict' too", async (t) => {
  const m = await qwen()
  const dir = tempDir(t, 'tl-qwenstrict-')
  for (const f of fs.readdirSync(SNAPSHOT)) fs.copyFileSync(path.join(SNAPSHOT, f), path.join(dir, f))
  const cfgPath = path.join(dir, 'tokenizer_config.json')
  fs.writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgPath, 'utf8')), errors: 'strict' }))
  const strict = await HookedTransformer.fromPretrained(dir)
  t.teardown(() => strict.dispose())
  for (const g of TL.generate) {
    const opts = { maxNewTokens: 12, doSample: false, verbose: false }
    let text = ''
    for await (const chunk of m.generateStream(g.text, opts)) text += chunk.text[0]
    t.is(g.text + text, g.str, JSON.stringify(g.text))
    // Strict: no piece is cut mid-character; the pieces decode as the whole does, or both refuse.
    const whole = g.tokens[0].slice(m.toTokens(g.text).shape[1])
    let all: string | null = null
    try {
      all = strict.tokenizer!.decode(whole, { skipSpecialTokens: true })
    } catch (e) {
      t.is((e as { code?: string }).code, 'TL_TOKENIZER')
    }
    let pieces = ''
    const streamed = async () => {
      for await (const chunk of strict.generateStream(g.text, opts)) pieces += chunk.text[0]
    }
    if (all === null) await t.throwsAsync(streamed(), { code: 'TL_TOKENIZER' })
    else {
      await streamed()
      t.is(pieces, all)
    }
  }
})

test('setTokenizer takes the Qwen tokenizer from a folder, a .tiktoken file or the model name', async (t) => {
  const first = TOK.prompts[7]
  for (const source of [SNAPSHOT, path.join(SNAPSHOT, 'qwen.tiktoken'), MODEL]) {
    const m = await HookedTransformer.fromPretrained('gpt2')
    t.teardown(() => m.dispose())
    await m.setTokenizer(source, { localFilesOnly: true })
    t.deepEqual(m.tokenizer!.encode(first.text), first.ids, source)
    t.is(m.tokenizer!.eosTokenId, TL.eos_token_id)
  }
})

test('downloads qwen.tiktoken with the model (no tokenizer.json), and alone for setTokenizer', async (t) => {
  const server = await startHubServer({ repos: { [MODEL]: SNAPSHOT } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-qwencache-')
  const m = await HookedTransformer.fromPretrained(MODEL, { cacheDir, endpoint: server.endpoint })
  t.teardown(() => m.dispose())
  t.deepEqual(m.tokenizer!.encode(TOK.prompts[5].text), TOK.prompts[5].ids)
  const tokCache = tempDir(t, 'tl-qwentok-')
  const bare = await HookedTransformer.fromPretrained('gpt2')
  t.teardown(() => bare.dispose())
  await bare.setTokenizer(MODEL, { cacheDir: tokCache, endpoint: server.endpoint })
  t.deepEqual(bare.tokenizer!.encode(TOK.prompts[5].text), TOK.prompts[5].ids)
  const snaps = path.join(tokCache, 'models--Qwen--Qwen-1_8B', 'snapshots')
  const [commit] = fs.readdirSync(snaps)
  t.deepEqual(fs.readdirSync(path.join(snaps, commit)).sort(), ['qwen.tiktoken', 'tokenizer_config.json'])
})

test('a corrupt qwen.tiktoken is TL_CORRUPT_FILE naming the file and line; without the class named, no tokenizer', async (t) => {
  const dir = tempDir(t, 'tl-qwenbad-')
  for (const f of fs.readdirSync(SNAPSHOT)) fs.copyFileSync(path.join(SNAPSHOT, f), path.join(dir, f))
  const vocab = path.join(dir, 'qwen.tiktoken')
  const lines = fs.readFileSync(vocab, 'utf8').split('\n')
  lines[299] = lines[299].replace(/ \d+$/, ' 12x')
  fs.writeFileSync(vocab, lines.join('\n'))
  const err = await t.throwsAsync(HookedTransformer.fromPretrained(dir), { code: 'TL_CORRUPT_FILE' })
  t.regex(err!.message, /qwen\.tiktoken: line 300: the rank "12x"/)
  const bare = await HookedTransformer.fromPretrained('gpt2')
  t.teardown(() => bare.dispose())
  t.is(await rejectionCode(bare.setTokenizer(vocab)), 'TL_CORRUPT_FILE')
  // Without tokenizer_config.json naming QWenTokenizer (nor config.json), the folder has no tokenizer.
  fs.writeFileSync(vocab, fs.readFileSync(path.join(SNAPSHOT, 'qwen.tiktoken')))
  fs.rmSync(path.join(dir, 'tokenizer_config.json'))
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
  delete config.tokenizer_class
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config))
  const m = await HookedTransformer.fromPretrained(dir)
  t.teardown(() => m.dispose())
  t.is(m.tokenizer, null)
})

test('save writes qwen.tiktoken and a config naming QWenTokenizer, which load back as the same tokenizer', async (t) => {
  const m = await qwen()
  const dir = tempDir(t, 'tl-qwensave-')
  m.save(dir)
  t.true(fs.existsSync(path.join(dir, 'qwen.tiktoken')))
  t.false(fs.existsSync(path.join(dir, 'tokenizer.json')))
  t.deepEqual(fs.readFileSync(path.join(dir, 'qwen.tiktoken')), fs.readFileSync(path.join(SNAPSHOT, 'qwen.tiktoken')))
  const back = await HookedTransformer.fromPretrained(dir)
  t.teardown(() => back.dispose())
  const tok = back.tokenizer!
  t.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [TL.bos_token_id, TL.eos_token_id, TL.pad_token_id])
  for (const p of TL.prompts) t.deepEqual(rows(back.toTokens(p.text, { prependBos: true })), p.to_tokens_bos)
})

test("tokenizer_config.json's errors ('ignore', 'strict') decodes invalid UTF-8 as the remote code does with it", async (t) => {
  for (const errors of ['ignore', 'strict'] as const) {
    const dir = tempDir(t, 'tl-qwenerr-')
    for (const f of ['qwen.tiktoken', 'tokenizer_config.json']) fs.copyFileSync(path.join(SNAPSHOT, f), path.join(dir, f))
    const cfgPath = path.join(dir, 'tokenizer_config.json')
    fs.writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgPath, 'utf8')), errors }))
    const m = await HookedTransformer.fromPretrained('gpt2')
    t.teardown(() => m.dispose())
    await m.setTokenizer(dir)
    TOK.decodes.forEach((d: { ids: number[] }, i: number) => {
      const want = GOLDEN.errors[errors][i]
      if (typeof want === 'string') t.is(m.tokenizer!.decode(d.ids), want, `${errors} ${d.ids}`)
      else t.throws(() => m.tokenizer!.decode(d.ids), { code: 'TL_TOKENIZER' }, `${errors} ${d.ids}`)
    })
  }
  const dir = tempDir(t, 'tl-qwenerr-')
  fs.copyFileSync(path.join(SNAPSHOT, 'qwen.tiktoken'), path.join(dir, 'qwen.tiktoken'))
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'QWenTokenizer', errors: 'surrogateescape' }))
  const m = await HookedTransformer.fromPretrained('gpt2')
  t.teardown(() => m.dispose())
  t.is(await rejectionCode(m.setTokenizer(dir)), 'TL_UNSUPPORTED')
})
