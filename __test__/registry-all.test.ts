/**
 * Every official name and alias of TL 2.16.1 through the model properties table: each either
 * resolves to a supported family and a config (TL's hard-coded tables, or config.json in the
 * fixture cache), or is reported as unknown offline / unsupported with a reason; no name is
 * dropped. Also the JSON and HTML forms and the `transformer-lens` command (needs dist/).
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import {
  architectureOf,
  getOfficialModelName,
  getPretrainedModelConfig,
  MODEL_ALIASES,
  modelPropertiesHtml,
  modelPropertiesRow,
  modelPropertiesTable,
  ModelPropertiesRow,
  OFFICIAL_MODEL_NAMES,
  SUPPORTED_ARCHITECTURES,
  TL_ARCHITECTURES,
  TL_CHECKPOINT,
} from '../src/index'
import { rejectionCode } from './helpers/errors'
import { HUB } from './helpers/fixtures'

// Hermetic: the fixture cache, offline, and a hub address that answers nothing.
process.env.HF_HUB_CACHE = HUB
process.env.HF_HUB_OFFLINE = '1'
process.env.HF_ENDPOINT = 'http://127.0.0.1:9'

const ROOT = path.join(__dirname, '..')
const BIN = path.join(ROOT, 'bin', 'transformer-lens.js')
const CONFIG_FIELDS = ['n_layers', 'd_model', 'n_heads', 'd_head', 'n_ctx', 'd_vocab'] as const
const VALUE_FIELDS = [...CONFIG_FIELDS, 'n_params', 'd_mlp', 'n_key_value_heads', 'act_fn', 'positional_embedding_type', 'normalization_type', 'original_architecture'] as const

/** Names whose config.json the fixture cache holds. */
function cachedNames(): Set<string> {
  const out = new Set<string>()
  for (const d of fs.readdirSync(HUB)) {
    if (!d.startsWith('models--')) continue
    const name = d.slice('models--'.length).replace('--', '/')
    const snaps = path.join(HUB, d, 'snapshots')
    if (fs.existsSync(snaps) && fs.readdirSync(snaps).some((s) => fs.existsSync(path.join(snaps, s, 'config.json')))) out.add(name)
  }
  return out
}

let tablePromise: Promise<ModelPropertiesRow[]> | null = null
const table = () => (tablePromise ??= modelPropertiesTable())

test('216 official names, unique; every alias maps to its official name', (t) => {
  t.is(OFFICIAL_MODEL_NAMES.length, 216)
  t.is(new Set(OFFICIAL_MODEL_NAMES).size, 216)
  for (const name of OFFICIAL_MODEL_NAMES) {
    t.is(getOfficialModelName(name), name)
    t.is(getOfficialModelName(name.toUpperCase()), name)
    for (const a of MODEL_ALIASES[name] ?? []) t.is(getOfficialModelName(a), name, a)
  }
  for (const key of Object.keys(MODEL_ALIASES)) t.true(OFFICIAL_MODEL_NAMES.includes(key), `alias key ${key} is an official name`)
})

test('every official name has an architecture TL 2.16.1 loads', (t) => {
  for (const name of OFFICIAL_MODEL_NAMES) {
    const arch = architectureOf(name)
    t.true(arch === TL_CHECKPOINT || TL_ARCHITECTURES.includes(arch as string), `${name}: ${arch}`)
  }
  t.is(TL_ARCHITECTURES.length, 19)
})

test("SUPPORTED_ARCHITECTURES is the engine's FAMILIES table", (t) => {
  const dir = path.join(ROOT, 'crates', 'engine', 'src', 'families')
  const engine = new Set<string>()
  for (const f of fs.readdirSync(dir)) {
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^\s*architecture: "([A-Za-z0-9]+)",$/gm)) engine.add(m[1])
  }
  t.deepEqual([...SUPPORTED_ARCHITECTURES].sort(), [...engine].sort())
})

test('cached config.json files agree with the known architecture of their name', (t) => {
  for (const name of cachedNames()) {
    if (!OFFICIAL_MODEL_NAMES.includes(name) || architectureOf(name) === TL_CHECKPOINT) continue
    const snaps = path.join(HUB, `models--${name.replace('/', '--')}`, 'snapshots')
    for (const s of fs.readdirSync(snaps)) {
      const j = JSON.parse(fs.readFileSync(path.join(snaps, s, 'config.json'), 'utf8'))
      // TL's hard-coded Gemma names: TL's table decides (google/gemma-2b is Gemma2ForCausalLM in TL).
      if (/gemma/i.test(name)) continue
      t.is(j.architectures[0], architectureOf(name), name)
    }
  }
})

test('the table: one row per official name, each derived, unknown offline, or unsupported with a reason', async (t) => {
  const rows = await table()
  t.deepEqual(rows.map((r) => r.name), [...OFFICIAL_MODEL_NAMES])
  const cached = cachedNames()
  const counts: Record<string, number> = {}
  for (const r of rows) {
    counts[r.source] = (counts[r.source] ?? 0) + 1
    t.deepEqual(r.aliases, [...(MODEL_ALIASES[r.name] ?? [])])
    t.is(r.default_alias, r.aliases[0] ?? r.name)
    if (r.source === 'TL table' || r.source === 'config.json (cache)') {
      t.true(r.supported, r.name)
      for (const f of CONFIG_FIELDS) t.is(typeof r[f], 'number', `${r.name}.${f}`)
      t.is(typeof r.n_params_str, 'string')
    } else {
      for (const f of VALUE_FIELDS) t.is(r[f], null, `${r.name}.${f} is not guessed`)
    }
    if (r.source === 'unknown offline') t.false(cached.has(r.name) && r.supported, `${r.name} is cached, so derivable`)
    if (!r.supported) {
      t.truthy(r.reason, r.name)
      t.true(r.reason!.includes(r.architecture ?? '??'), `${r.name}: reason names ${r.architecture}: ${r.reason}`)
    } else {
      t.is(r.reason, null)
    }
  }
  // Derivable offline: every cached fixture of an official name, the Llama and Gemma tables.
  for (const name of cached) {
    if (!OFFICIAL_MODEL_NAMES.includes(name)) continue
    t.not(rows.find((r) => r.name === name)!.source, 'unknown offline', name)
  }
  for (const r of rows.filter((r) => /llama|gemma/i.test(r.name))) t.is(r.source, 'TL table', r.name)
  // BERT runs as HookedEncoder, T5 as HookedEncoderDecoder: supported, their configs derived as
  // TL's get_pretrained_model_config from the cached fixtures' config.json.
  for (const r of rows.filter((r) => /^google-bert\//.test(r.name))) t.true(r.supported, r.name)
  t.is(rows.find((r) => r.name === 'google-bert/bert-base-cased')!.source, 'config.json (cache)')
  for (const r of rows.filter((r) => /^google-t5\//.test(r.name))) t.true(r.supported, r.name)
  t.is(rows.find((r) => r.name === 'google-t5/t5-small')!.source, 'config.json (cache)')
  for (const r of rows.filter((r) => /^Qwen\/Qwen-/.test(r.name))) t.true(r.supported, r.name)
  t.is(rows.filter((r) => !r.supported).length, 0)
  t.log(counts)
})

test('derived rows hold getPretrainedModelConfig values', async (t) => {
  const rows = await table()
  for (const r of rows.filter((r) => r.source !== 'unknown offline' && r.source !== 'not derived')) {
    const cfg = await getPretrainedModelConfig(r.name, { device: 'cpu' })
    for (const f of [...CONFIG_FIELDS, 'n_params', 'd_mlp', 'act_fn', 'normalization_type', 'positional_embedding_type'] as const) {
      t.is<unknown, unknown>(r[f], cfg[f] ?? null, `${r.name}.${f}`)
    }
  }
  t.is(rows.find((r) => r.name === 'meta-llama/Llama-2-7b-hf')!.d_model, 4096)
  t.is(rows.find((r) => r.name === 'google/gemma-2-2b')!.n_layers, 26)
})

test('a cached config.json of an architecture without a family: unsupported, values not guessed', async (t) => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-props-hub-'))
  const repo = path.join(cache, 'models--google-bert--bert-base-cased')
  fs.mkdirSync(path.join(repo, 'refs'), { recursive: true })
  fs.mkdirSync(path.join(repo, 'snapshots', 'abc123'), { recursive: true })
  fs.writeFileSync(path.join(repo, 'refs', 'main'), 'abc123')
  fs.writeFileSync(path.join(repo, 'snapshots', 'abc123', 'config.json'), JSON.stringify({ architectures: ['RobertaForMaskedLM'], hidden_size: 768, num_hidden_layers: 12 }))
  const row = await modelPropertiesRow('google-bert/bert-base-cased', { cacheDir: cache })
  t.is(row.source, 'not derived')
  t.false(row.supported)
  t.is(row.architecture, 'RobertaForMaskedLM')
  t.regex(row.reason!, /RobertaForMaskedLM is not an architecture TL/)
  t.is(row.d_model, null)
  const gpt2 = await modelPropertiesRow('gpt2', { cacheDir: cache })
  t.is(gpt2.source, 'unknown offline')
  t.regex(gpt2.note!, /download: true/)
})

test('filter and JSON', async (t) => {
  const pythia = await modelPropertiesTable({ filter: 'PYTHIA-70m' })
  t.deepEqual(pythia.map((r) => r.name), OFFICIAL_MODEL_NAMES.filter((n) => n.toLowerCase().includes('pythia-70m')))
  const byAlias = await modelPropertiesTable({ filter: 'solu-1l-pile' })
  t.deepEqual(byAlias.map((r) => r.name), ['NeelNanda/SoLU_1L_v9_old'])
  const byArch = await modelPropertiesTable({ filter: /^T5ForConditional/ })
  t.is(byArch.length, 3)
  const json = await modelPropertiesTable({ filter: 'gpt2-xl', format: 'json' })
  t.deepEqual(JSON.parse(json), await modelPropertiesTable({ filter: 'gpt2-xl' }))
  t.is(await rejectionCode(modelPropertiesTable({ filter: '/(/' })), 'TL_INVALID_ARGUMENT')
  t.is(await rejectionCode(modelPropertiesTable({ format: 'xml' as 'json' })), 'TL_INVALID_ARGUMENT')
})

test('HTML: every row, escaped, self-contained', async (t) => {
  const rows = await table()
  const html = await modelPropertiesTable({ format: 'html' })
  t.is((html.match(/<tr data-supported=/g) ?? []).length, 216)
  for (const r of rows) t.true(html.includes(`>${r.name.replace(/&/g, '&amp;')}</td>`), r.name)
  t.notRegex(html, /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3)/)
  t.regex(html, /Content-Security-Policy/)
  const hostile = { ...rows[0], name: '<img src=x onerror=alert(1)>', aliases: ['"><script>alert(2)</script>'], note: '</td><b>x' }
  const page = modelPropertiesHtml([hostile])
  t.false(page.includes('<img src=x'))
  t.false(page.includes('<script>alert(2)'))
  t.false(page.includes('</td><b>'))
  t.true(page.includes('&lt;img src=x onerror=alert(1)&gt;'))
})

function cli(args: string[]) {
  const env = { ...process.env, HF_HUB_CACHE: HUB, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' }
  return spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', timeout: 60_000 })
}

test('CLI: models [filter], --json, --html, --help, errors', (t) => {
  t.true(fs.existsSync(path.join(ROOT, 'dist', 'cli.js')), 'dist/ is built (npx tsc -p tsconfig.build.json)')
  const help = cli(['--help'])
  t.is(help.status, 0)
  t.regex(help.stdout, /models \[filter\]/)
  const pythia = cli(['models', 'pythia-70m'])
  t.is(pythia.status, 0, pythia.stderr)
  t.regex(pythia.stdout, /^name\s+n_params/)
  t.regex(pythia.stdout, /EleutherAI\/pythia-70m-deduped-v0/)
  t.notRegex(pythia.stdout, /gpt2/)
  const regex = cli(['models', '/^gpt2(-xl)?$/'])
  t.is(regex.status, 0)
  t.deepEqual(regex.stdout.split('\n').slice(1, 3).map((l) => l.split(/\s+/)[0]), ['gpt2', 'gpt2-xl'])
  const t5 = cli(['models', 't5', '--json'])
  t.is(t5.status, 0)
  const rows = JSON.parse(t5.stdout)
  t.deepEqual(rows.map((r: ModelPropertiesRow) => r.supported), [true, true, true])
  const none = cli(['models', 'no-such-model-anywhere'])
  t.is(none.status, 1)
  t.regex(none.stderr, /no model matches/)
  const bad = cli(['models', '--bogus'])
  t.is(bad.status, 1)
  t.regex(bad.stderr, /TL_INVALID_ARGUMENT/)
  const cmd = cli(['frobnicate'])
  t.is(cmd.status, 1)
  t.regex(cmd.stderr, /TL_INVALID_ARGUMENT: unknown command/)
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tl-props-')), 'models.html')
  const html = cli(['models', 'gemma', '--html', out])
  t.is(html.status, 0, html.stderr)
  t.is(html.stdout.trim(), out)
  t.is((fs.readFileSync(out, 'utf8').match(/<tr data-supported=/g) ?? []).length, 10)
})

test('CLI: config <name>', (t) => {
  const gpt2 = cli(['config', 'gpt2-small'])
  t.is(gpt2.status, 0, gpt2.stderr)
  const cfg = JSON.parse(gpt2.stdout)
  t.is(cfg.model_name, 'gpt2')
  t.is(cfg.original_architecture, 'GPT2LMHeadModel')
  t.is(typeof cfg.n_layers, 'number')
  const llama = JSON.parse(cli(['config', 'meta-llama/Llama-3.2-1B', '--fold-ln']).stdout)
  t.is(llama.normalization_type, 'RMSPre')
  const unknown = cli(['config', 'no-such-model'])
  t.is(unknown.status, 1)
  t.regex(unknown.stderr, /^transformer-lens: TL_UNKNOWN_MODEL: /)
  const offline = cli(['config', 'gpt2-xl', '--offline'])
  t.is(offline.status, 1)
  t.regex(offline.stderr, /TL_MISSING_FILE/)
  t.is(cli(['config']).status, 1)
})
