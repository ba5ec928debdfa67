/**
 * The `transformer-lens` command (bin/transformer-lens.js):
 *   transformer-lens models [filter] [--json | --html FILE] [--download] [--supported]
 *   transformer-lens config <name> [--offline] [--fold-ln]
 * Errors print their TransformerLensError code and exit with status 1.
 */
import { TransformerLensError } from './errors'
import { getPretrainedModelConfig } from './model/pretrained-config'
import { modelPropertiesToJson, modelPropertiesTable, ModelPropertiesRow } from './registry/properties'
import { modelPropertiesHtml } from './registry/properties-html'
import { writeHtml } from './viz/html'

export const USAGE = `Usage: transformer-lens <command> [options]

Commands:
  models [filter]     TL's official models with their config facts and whether they run here.
                      filter: a case-insensitive substring, or /regex/flags, matched against
                      the name, aliases and architecture.
    --json            print the rows as JSON
    --html FILE       write a sortable, filterable HTML page to FILE
    --supported       only the models this library runs
    --download        fetch config.json from the HF hub for models not in the cache
                      (default: never touch the network; unknown values print as ?)
  config <name>       print getPretrainedModelConfig(name) (TL's config) as JSON
    --offline         use the HF cache only (also HF_HUB_OFFLINE=1)
    --fold-ln         the config of a model loaded with fold_ln (LN → LNPre)

Options:
  -h, --help          show this help
`

export interface CliIo {
  out: (s: string) => void
  err: (s: string) => void
}

const defaultIo: CliIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

function usageError(message: string): TransformerLensError {
  return new TransformerLensError('TL_INVALID_ARGUMENT', `${message} (see transformer-lens --help)`)
}

/** Splits argv into positionals and flags; `valued` flags take the next argument. */
function parseArgs(argv: string[], known: readonly string[], valued: readonly string[]): { pos: string[]; flags: Map<string, string | true> } {
  const pos: string[] = []
  const flags = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      pos.push(...argv.slice(i + 1))
      break
    }
    if (a.startsWith('--')) {
      const [name, inline] = a.split(/=(.*)/s, 2)
      if (!known.includes(name)) throw usageError(`unknown option ${name}`)
      if (valued.includes(name)) {
        const v = inline ?? argv[++i]
        if (v === undefined) throw usageError(`${name} needs a value`)
        flags.set(name, v)
      } else flags.set(name, true)
    } else pos.push(a)
  }
  return { pos, flags }
}

const TEXT_COLUMNS: ReadonlyArray<readonly [string, (r: ModelPropertiesRow) => string]> = [
  ['name', (r) => r.name],
  ['n_params', (r) => r.n_params_str ?? '?'],
  ['n_layers', (r) => (r.n_layers ?? '?').toString()],
  ['d_model', (r) => (r.d_model ?? '?').toString()],
  ['n_heads', (r) => (r.n_heads ?? '?').toString()],
  ['d_vocab', (r) => (r.d_vocab ?? '?').toString()],
  ['act_fn', (r) => r.act_fn ?? '?'],
  ['architecture', (r) => r.architecture ?? '?'],
  ['source', (r) => r.source],
  ['runs', (r) => (r.supported ? 'yes' : `no: ${r.reason ?? ''}`)],
]

/** The rows as an aligned text table. */
export function formatTable(rows: readonly ModelPropertiesRow[]): string {
  const cells = rows.map((r) => TEXT_COLUMNS.map(([, f]) => f(r)))
  const widths = TEXT_COLUMNS.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) => c.map((s, i) => (i === c.length - 1 ? s : s.padEnd(widths[i]))).join('  ').trimEnd()
  return [line(TEXT_COLUMNS.map(([h]) => h)), ...cells.map(line)].join('\n') + '\n'
}

async function models(argv: string[], io: CliIo): Promise<number> {
  const { pos, flags } = parseArgs(argv, ['--json', '--html', '--download', '--supported'], ['--html'])
  if (pos.length > 1) throw usageError(`models takes one filter, got ${pos.length}`)
  let rows = await modelPropertiesTable({ filter: pos[0], download: flags.has('--download') })
  if (flags.has('--supported')) rows = rows.filter((r) => r.supported)
  if (rows.length === 0) {
    io.err(`no model matches '${pos[0] ?? ''}'\n`)
    return 1
  }
  const html = flags.get('--html')
  if (typeof html === 'string') {
    io.out(`${writeHtml(html, modelPropertiesHtml(rows))}\n`)
  } else if (flags.has('--json')) {
    io.out(modelPropertiesToJson(rows) + '\n')
  } else {
    io.out(formatTable(rows))
    const unknown = rows.filter((r) => r.source === 'unknown offline').length
    io.out(`\n${rows.length} models, ${rows.filter((r) => r.supported).length} run here${unknown ? `; ${unknown} with values unknown offline (? — use --download)` : ''}\n`)
  }
  return 0
}

async function config(argv: string[], io: CliIo): Promise<number> {
  const { pos, flags } = parseArgs(argv, ['--offline', '--fold-ln'], [])
  if (pos.length !== 1) throw usageError('config takes one model name')
  const cfg = await getPretrainedModelConfig(pos[0], { localFilesOnly: flags.has('--offline'), foldLn: flags.has('--fold-ln'), device: 'cpu' })
  io.out(JSON.stringify(cfg, null, 2) + '\n')
  return 0
}

/** Runs the command line `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  try {
    const [cmd, ...rest] = argv
    if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help' || rest.includes('--help') || rest.includes('-h')) {
      io.out(USAGE)
      return 0
    }
    if (cmd === 'models') return await models(rest, io)
    if (cmd === 'config') return await config(rest, io)
    throw usageError(`unknown command '${cmd}'`)
  } catch (e) {
    if (e instanceof TransformerLensError) {
      io.err(`transformer-lens: ${e.code}: ${e.message}\n`)
    } else {
      io.err(`transformer-lens: TL_INTERNAL: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
    }
    return 1
  }
}
