/**
 * A headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
 * the browser reads commands on fd 3 and writes replies on fd 4, NUL-separated JSON), so the
 * tests can open a page and check what it renders (computed colours, text, real mouse hover and
 * clicks, network requests) with no dependency beyond Node. `launchBrowser()` finds or installs
 * the browser through scripts/ensure-chromium.js and answers why not when there is none.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pathToFileURL } from 'node:url'

const ENSURE = path.join(__dirname, '..', '..', 'scripts', 'ensure-chromium.js')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromiumPath } = require(ENSURE) as { chromiumPath: () => string | null }

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--hide-scrollbars',
  '--mute-audio',
]

type Msg = { id?: number; method?: string; params?: any; result?: any; error?: { message: string }; sessionId?: string }

/** Finds the browser, installing it once if allowed (see scripts/ensure-chromium.js). */
export async function findChromium(): Promise<{ path: string | null; reason?: string }> {
  const found = chromiumPath()
  if (found) return { path: found }
  const out = await new Promise<string>((resolve) => {
    execFile(process.execPath, [ENSURE], { timeout: 15 * 60_000, maxBuffer: 16 * 1024 * 1024 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`))
  })
  const now = chromiumPath()
  return now ? { path: now } : { path: null, reason: out.trim().split('\n').pop() ?? 'unknown' }
}

export class Browser {
  #proc: ChildProcess
  #out: Writable
  #dir: string
  #next = 0
  #pending = new Map<number, { resolve: (m: Msg) => void; reject: (e: Error) => void }>()
  #listeners = new Set<(m: Msg) => void>()
  #closed = false

  private constructor(proc: ChildProcess, dir: string) {
    this.#proc = proc
    this.#dir = dir
    this.#out = proc.stdio[3] as Writable
    let buf = ''
    ;(proc.stdio[4] as Readable).on('data', (d: Buffer) => {
      buf += d.toString('utf8')
      for (let i = buf.indexOf('\0'); i >= 0; i = buf.indexOf('\0')) {
        const m = JSON.parse(buf.slice(0, i)) as Msg
        buf = buf.slice(i + 1)
        const p = m.id === undefined ? undefined : this.#pending.get(m.id)
        if (p) {
          this.#pending.delete(m.id as number)
          if (m.error) p.reject(new Error(`CDP: ${m.error.message}`))
          else p.resolve(m)
        } else for (const l of this.#listeners) l(m)
      }
    })
    proc.on('exit', () => {
      this.#closed = true
      for (const p of this.#pending.values()) p.reject(new Error('chromium exited'))
      this.#pending.clear()
    })
  }

  static async launch(exe: string): Promise<Browser> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-chromium-'))
    const proc = spawn(exe, [...FLAGS, `--user-data-dir=${dir}`, '--remote-debugging-pipe', 'about:blank'], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    })
    const b = new Browser(proc, dir)
    await b.send('Browser.getVersion')
    return b
  }

  send(method: string, params: object = {}, sessionId?: string): Promise<any> {
    if (this.#closed) return Promise.reject(new Error('chromium is closed'))
    const id = ++this.#next
    return new Promise<Msg>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#out.write(`${JSON.stringify({ id, method, params, sessionId })}\0`)
    }).then((m) => m.result)
  }

  /** @internal */
  listen(fn: (m: Msg) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  async newPage(width = 1200, height = 900): Promise<Page> {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' })
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true })
    const page = new Page(this, sessionId, targetId)
    await Promise.all(['Page.enable', 'Runtime.enable', 'Network.enable', 'Log.enable'].map((m) => this.send(m, {}, sessionId)))
    await this.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false }, sessionId)
    return page
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      const exited = new Promise((r) => this.#proc.once('exit', r))
      await this.send('Browser.close').catch(() => undefined)
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      if (!this.#closed) this.#proc.kill('SIGKILL')
    }
    fs.rmSync(this.#dir, { recursive: true, force: true })
  }
}

export class Page {
  /** URLs the page asked for (the document itself included). */
  readonly requests: string[] = []
  /** Uncaught exceptions, console errors and browser log errors (a CSP refusal lands here). */
  readonly errors: string[] = []
  #loaded: (() => void) | null = null

  constructor(
    readonly browser: Browser,
    readonly sessionId: string,
    readonly targetId: string,
  ) {
    browser.listen((m) => {
      if (m.sessionId !== sessionId) return
      const p = m.params
      if (m.method === 'Network.requestWillBeSent') this.requests.push(p.request.url)
      else if (m.method === 'Runtime.exceptionThrown') this.errors.push(`exception: ${p.exceptionDetails?.exception?.description ?? p.exceptionDetails?.text}`)
      else if (m.method === 'Runtime.consoleAPICalled' && p.type === 'error') this.errors.push(`console: ${p.args?.map((a: any) => a.value).join(' ')}`)
      else if (m.method === 'Log.entryAdded' && p.entry.level === 'error') this.errors.push(`log: ${p.entry.text}`)
      else if (m.method === 'Page.loadEventFired' && this.#loaded) this.#loaded()
    })
  }

  send(method: string, params: object = {}): Promise<any> {
    return this.browser.send(method, params, this.sessionId)
  }

  /** Opens a file and waits for its load event. */
  async open(file: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => (this.#loaded = resolve))
    await this.send('Page.navigate', { url: pathToFileURL(file).href })
    await Promise.race([loaded, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out loading ${file}`)), 30_000))])
  }

  /** The value of a JS expression in the page (promises awaited). */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })
    if (r.exceptionDetails) throw new Error(`in page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`)
    return r.result.value as T
  }

  /** The centre of the first element matching `selector`, scrolled into view. */
  async center(selector: string): Promise<{ x: number; y: number }> {
    const c = await this.eval<{ x: number; y: number } | null>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)}); if (!e) return null; e.scrollIntoView({ block: 'center', inline: 'center' });
        const r = e.getBoundingClientRect(); return { x: r.left + r.width / 2, y: r.top + r.height / 2 } })()`,
    )
    if (!c) throw new Error(`no element matches ${selector}`)
    return c
  }

  async mouseMove(x: number, y: number): Promise<void> {
    await this.send('Input.dispatchMouseEvent', { type: 'mouseMoved', x, y })
  }

  /** Moves the mouse onto the element (a real hover: hit testing, mouseover, :hover). */
  async hover(selector: string): Promise<void> {
    const { x, y } = await this.center(selector)
    await this.mouseMove(x, y)
  }

  async click(selector: string): Promise<void> {
    const { x, y } = await this.center(selector)
    await this.mouseMove(x, y)
    await this.send('Input.dispatchMouseEvent', { type: 'mousePressed', x, y, button: 'left', clickCount: 1 })
    await this.send('Input.dispatchMouseEvent', { type: 'mouseReleased', x, y, button: 'left', clickCount: 1 })
  }

  async key(key: 'ArrowRight' | 'ArrowLeft'): Promise<void> {
    const code = { ArrowRight: 39, ArrowLeft: 37 }[key]
    await this.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', key, code: key, windowsVirtualKeyCode: code })
    await this.send('Input.dispatchKeyEvent', { type: 'keyUp', key, code: key, windowsVirtualKeyCode: code })
  }

  /** A PNG of the page (the full page when `full`). */
  async screenshot(file: string, full = true): Promise<void> {
    let clip: object | undefined
    if (full) {
      const m = await this.send('Page.getLayoutMetrics')
      clip = { x: 0, y: 0, width: Math.ceil(m.cssContentSize.width), height: Math.ceil(m.cssContentSize.height), scale: 1 }
    }
    const r = await this.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: full, clip })
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, Buffer.from(r.data, 'base64'))
  }

  async close(): Promise<void> {
    await this.browser.send('Target.closeTarget', { targetId: this.targetId }).catch(() => undefined)
  }
}
