/**
 * `setTokenizer` (TL's `set_tokenizer`) against TransformerLens (golden/tokenizer/set_tokenizer.json,
 * scripts/reference/make_tokenizer_fixtures.py): the fabricated gpt2 tokenizer set on a model
 * loaded without one, from a folder, a tokenizer.json file, a model name (HF cache or a local
 * stand-in for the hub) or another model; and coded errors for bad sources and string input
 * to a model without a tokenizer.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { ExecutionContext } from 'ava'

import { HookedTransformer, Tensor } from '../src/index'
import { codeOf, rejectionCode } from './helpers/errors'
import { FIXTURES, HUB } from './helpers/fixtures'
import { startHubServer } from './helpers/hub-server'

// Hermetic: the fixture cache, no token, never the real hub.
process.env.HF_HUB_CACHE = HUB
delete process.env.HF_HUB_OFFLINE
delete process.env.HF_TOKEN
process.env.HF_TOKEN_PATH = path.join(os.tmpdir(), 'tl-no-such-token-file')
process.env.HF_ENDPOINT = 'http://127.0.0.1:9'

const GOLDEN = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', 'tokenizer', 'set_tokenizer.json'), 'utf8'))
const PROMPTS: string[] = GOLDEN.prompts
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']
const SNAPSHOT = (() => {
  const repo = path.join(HUB, 'models--gpt2')
  return path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
})()

interface GoldenCase {
  source: 'snapshot' | 'bare'
  default_padding_side: 'left' | 'right'
  padding_side: 'left' | 'right'
  bos_token_id: number
  eos_token_id: number
  pad_token_id: number
  tokenizer_prepends_bos: boolean
  d_vocab: number
  d_vocab_out: number
  tokens: Record<string, number[][]>
  str_tokens: string[]
}
const golden = (source: string, side: string): GoldenCase =>
  GOLDEN.cases.find((c: GoldenCase) => c.source === source && c.default_padding_side === side)

function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The gpt2 fixture's files minus its tokenizer: loads as a model without a tokenizer. */
async function bareModel(t: ExecutionContext): Promise<HookedTransformer> {
  const dir = tempDir(t, 'tl-notok-')
  for (const f of fs.readdirSync(SNAPSHOT)) if (!TOKENIZER_FILES.includes(f)) fs.copyFileSync(path.join(SNAPSHOT, f), path.join(dir, f))
  const model = await HookedTransformer.fromPretrained(dir)
  t.teardown(() => model.dispose())
  return model
}

/** TL's "bare" source: tokenizer.json plus a tokenizer_config.json with no special tokens. */
function bareTokenizerDir(t: ExecutionContext): string {
  const dir = tempDir(t, 'tl-baretok-')
  fs.copyFileSync(path.join(SNAPSHOT, 'tokenizer.json'), path.join(dir, 'tokenizer.json'))
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast' }))
  return dir
}

const rows = (x: Tensor) => x.toList() as number[][]


/** Everything TL records after set_tokenizer, compared with the golden case. */
function checkAgainstTl(t: ExecutionContext, model: HookedTransformer, g: GoldenCase): void {
  const tok = model.tokenizer!
  t.is(tok.paddingSide, g.padding_side)
  t.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [g.bos_token_id, g.eos_token_id, g.pad_token_id])
  t.is(tok.prependsBos, g.tokenizer_prepends_bos)
  t.is(model.cfg.tokenizer_prepends_bos, g.tokenizer_prepends_bos)
  t.deepEqual([model.cfg.d_vocab, model.cfg.d_vocab_out], [g.d_vocab, g.d_vocab_out])
  t.deepEqual(rows(model.toTokens(PROMPTS)), g.tokens.default, 'default padding side')
  for (const side of ['left', 'right'] as const) {
    for (const bos of [true, false]) {
      t.deepEqual(rows(model.toTokens(PROMPTS, { prependBos: bos, paddingSide: side })), g.tokens[`${side}.${bos ? 'bos' : 'nobos'}`], `${side} ${bos}`)
    }
  }
  t.deepEqual(model.toStrTokens(PROMPTS[1]), g.str_tokens)
}

test('a model without a tokenizer refuses string input with TL_TOKENIZER and runs on tokens', async (t) => {
  const model = await bareModel(t)
  t.is(model.tokenizer, null)
  t.is(codeOf(() => model.toTokens('hello')), 'TL_TOKENIZER')
  t.is(codeOf(() => model.toStrTokens('hello')), 'TL_TOKENIZER')
  t.is(codeOf(() => model.toString([1, 2])), 'TL_TOKENIZER')
  t.is(codeOf(() => model.toSingleToken('a')), 'TL_TOKENIZER')
  t.is(await rejectionCode(model.forward('hello')), 'TL_TOKENIZER')
  t.is(await rejectionCode(model.runWithCache(['a', 'b'])), 'TL_TOKENIZER')
  t.is(await rejectionCode(model.generate('hello', { maxNewTokens: 1, verbose: false })), 'TL_TOKENIZER')
  const logits = await model.forward(Tensor.from(new BigInt64Array([1n, 2n, 3n]), [1, 3]))
  t.deepEqual(logits.shape, [1, 3, model.cfg.d_vocab])
})

for (const side of ['right', 'left'] as const) {
  test(`setTokenizer(folder, { defaultPaddingSide: '${side}' }) matches TL's set_tokenizer`, async (t) => {
    const model = await bareModel(t)
    await model.setTokenizer(SNAPSHOT, { defaultPaddingSide: side })
    checkAgainstTl(t, model, golden('snapshot', side))
  })

  test(`setTokenizer without special tokens applies TL's eos/pad/bos fallbacks (${side})`, async (t) => {
    const model = await bareModel(t)
    await model.setTokenizer(bareTokenizerDir(t), { default_padding_side: side } as object)
    checkAgainstTl(t, model, golden('bare', side))
  })
}

test('setTokenizer(path to a tokenizer JSON file)', async (t) => {
  const model = await bareModel(t)
  const file = path.join(tempDir(t, 'tl-tokfile-'), 'my-tokenizer.json')
  fs.copyFileSync(path.join(SNAPSHOT, 'tokenizer.json'), file)
  await model.setTokenizer(file)
  checkAgainstTl(t, model, golden('bare', 'right'))
})

test('after setTokenizer the model tokenizes as the model loaded with that tokenizer, and generates from strings', async (t) => {
  const [model, original] = await Promise.all([bareModel(t), HookedTransformer.fromPretrained('gpt2', { localFilesOnly: true })])
  t.teardown(() => original.dispose())
  await model.setTokenizer('gpt2', { localFilesOnly: true })
  t.deepEqual(rows(model.toTokens(PROMPTS)), rows(original.toTokens(PROMPTS)))
  t.deepEqual(model.toStrTokens(PROMPTS[0]), original.toStrTokens(PROMPTS[0]))
  t.is(model.toString([388, 390]), original.toString([388, 390]))
  const opts = { maxNewTokens: 3, doSample: false, verbose: false }
  t.is(await model.generate(PROMPTS[0], opts), await original.generate(PROMPTS[0], opts))
  const [a, b] = [await model.forward(PROMPTS[1]), await original.forward(PROMPTS[1])]
  t.deepEqual(Array.from(a.toArray() as Float32Array), Array.from(b.toArray() as Float32Array))
})

test("setTokenizer(otherModel.tokenizer) shares it, each model keeping its padding side", async (t) => {
  const [model, original] = await Promise.all([bareModel(t), HookedTransformer.fromPretrained('distilgpt2', { localFilesOnly: true })])
  t.teardown(() => original.dispose())
  await model.setTokenizer(original.tokenizer!, { defaultPaddingSide: 'left' })
  checkAgainstTl(t, model, golden('snapshot', 'left'))
  t.is(original.tokenizer!.paddingSide, 'right')
  t.deepEqual(rows(original.toTokens(PROMPTS)), golden('snapshot', 'right').tokens.default)
  // A model may also re-set its own tokenizer (TL: padding side back to the default).
  await model.setTokenizer(model.tokenizer!)
  t.is(model.tokenizer!.paddingSide, 'right')
})

test('setTokenizer(name) downloads only the tokenizer files into the HF cache', async (t) => {
  const server = await startHubServer({ repos: { gpt2: SNAPSHOT } })
  t.teardown(() => server.close())
  const cacheDir = tempDir(t, 'tl-tokcache-')
  const model = await bareModel(t)
  await model.setTokenizer('gpt2', { cacheDir, endpoint: server.endpoint })
  checkAgainstTl(t, model, golden('snapshot', 'right'))
  const snaps = path.join(cacheDir, 'models--gpt2', 'snapshots')
  const [commit] = fs.readdirSync(snaps)
  t.deepEqual(fs.readdirSync(path.join(snaps, commit)).sort(), TOKENIZER_FILES.slice().sort())
  t.false(server.requests.some((r) => r.path.includes('safetensors') || r.path.includes('config.json') && !r.path.includes('tokenizer_config')))
  const before = server.requests.length
  await model.setTokenizer('gpt2', { cacheDir, endpoint: server.endpoint })
  t.is(server.requests.length, before, 'cached: no request')
})

test('bad sources and options are coded errors, and leave the tokenizer as it was', async (t) => {
  const model = await bareModel(t)
  await model.setTokenizer(SNAPSHOT)
  const noTok = tempDir(t, 'tl-empty-')
  const corrupt = path.join(tempDir(t, 'tl-corrupt-'), 'tokenizer.json')
  fs.writeFileSync(corrupt, '{ not json')
  const cases: [unknown, object, string][] = [
    [SNAPSHOT, { defaultPaddingSide: 'middle' }, 'TL_INVALID_ARGUMENT'],
    [SNAPSHOT, { default_padding_side: 'up' }, 'TL_INVALID_ARGUMENT'],
    [42, {}, 'TL_INVALID_ARGUMENT'],
    ['', {}, 'TL_INVALID_ARGUMENT'],
    [noTok, {}, 'TL_MISSING_FILE'],
    [path.join(noTok, 'nope.json'), {}, 'TL_MISSING_FILE'],
    ['./no/such/folder', {}, 'TL_MISSING_FILE'],
    [corrupt, {}, 'TL_CORRUPT_FILE'],
    ['not-a-model-name', {}, 'TL_UNKNOWN_MODEL'],
    ['some-org/not-cached', { localFilesOnly: true }, 'TL_MISSING_FILE'],
  ]
  for (const [source, options, code] of cases) {
    t.is(await rejectionCode(model.setTokenizer(source as string, options)), code, `${String(source)} ${JSON.stringify(options)}`)
  }
  checkAgainstTl(t, model, golden('snapshot', 'right'))
  const other = await bareModel(t)
  other.dispose()
  t.is(await rejectionCode(other.setTokenizer(SNAPSHOT)), 'TL_DISPOSED')
  const view = model.tokenizer!
  model.dispose()
  t.is(await rejectionCode((await bareModel(t)).setTokenizer(view)), 'TL_DISPOSED')
})

test("fromPretrained pads on the right unless defaultPaddingSide says otherwise, whatever tokenizer_config.json says (TL's default_padding_side)", async (t) => {
  const dir = tempDir(t, 'tl-leftcfg-')
  for (const f of fs.readdirSync(SNAPSHOT)) fs.copyFileSync(path.join(SNAPSHOT, f), path.join(dir, f))
  const cfgPath = path.join(dir, 'tokenizer_config.json')
  fs.writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgPath, 'utf8')), padding_side: 'left' }))
  const byDefault = await HookedTransformer.fromPretrained(dir)
  t.is(byDefault.tokenizer!.paddingSide, 'right')
  const right = golden('snapshot', 'right').tokens
  const left = golden('snapshot', 'left').tokens
  t.deepEqual(rows(byDefault.toTokens(PROMPTS)), right.default)
  const leftModel = await HookedTransformer.fromPretrained(dir, { default_padding_side: 'left' } as never)
  t.is(leftModel.tokenizer!.paddingSide, 'left')
  t.deepEqual(rows(leftModel.toTokens(PROMPTS)), left.default)
  await t.throwsAsync(HookedTransformer.fromPretrained(dir, { defaultPaddingSide: 'up' as never }), { code: 'TL_INVALID_ARGUMENT' })
  byDefault.dispose()
  leftModel.dispose()
})
