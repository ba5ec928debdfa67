// The README's first command: the demo runs offline (empty HF cache) on the embedded trained
// model and shows induction. Its numbers are computed when it runs; here we check they say what
// the demo claims.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..')

test('the demo finds induction heads in the embedded model, offline', (t) => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) return t.fail('dist/ is not built (npm install builds it)')
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-demo-'))
  const env = { ...process.env, HF_HUB_CACHE: path.join(tmp, 'empty-cache'), HF_HOME: path.join(tmp, 'home'), HF_HUB_OFFLINE: '1', DEMO_REPORT: path.join(tmp, 'report') }
  const r = spawnSync(process.execPath, [path.join(ROOT, 'examples', 'demo.js')], { env, encoding: 'utf8', timeout: 120_000 })
  t.is(r.status, 0, r.stderr)
  const out = r.stdout
  const num = (re: RegExp) => Number(re.exec(out)?.[1])
  const first = num(/first half ([\d.]+)/)
  const repeat = num(/repeated half ([\d.]+)/)
  t.true(repeat < first / 4, `repeat ${repeat} vs first ${first}`)
  const ablatedInduction = num(/induction heads \([^)]*\): ([\d.]+)/)
  const other = num(/a head that is neither \([^)]*\): ([\d.]+)/)
  t.true(ablatedInduction > 3 * repeat && other < 2 * repeat, `ablations: induction ${ablatedInduction}, other ${other}, clean ${repeat}`)
  const afterLast = num(/after L1\s+([\d.]+)/)
  const embed = num(/embed\s+([\d.]+)/)
  t.true(afterLast > 0.5 && embed < 0.1, `logit lens ${embed} -> ${afterLast}`)
  for (const f of ['index.html', 'induction-scores.html', 'previous-token-scores.html', 'attention.html', 'logit-lens.html']) {
    t.true(fs.statSync(path.join(tmp, 'report', f)).size > 500, f)
  }
})
