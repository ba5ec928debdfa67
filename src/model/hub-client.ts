/**
 * The HuggingFace hub's file protocol, as `huggingface_hub`'s `hf_hub_download` speaks it:
 * a HEAD on `{endpoint}/{repo}/resolve/{revision}/{file}` for the commit, ETag and size, then a
 * streamed GET of the bytes. HTTP failures become TransformerLensErrors with stable codes.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { TransformerLensError } from '../errors'

/** One file on its way into the cache. */
export interface DownloadProgress {
  /** The file's name in the repo (`model.safetensors`). */
  file: string
  /** Bytes received so far. */
  loaded: number
  /** The file's size, when the hub announced it. */
  total: number | null
}

/** Where and how to talk to the hub. */
export interface HubClientOptions {
  /** Hub URL (default `HF_ENDPOINT`, else `https://huggingface.co`). */
  endpoint?: string
  /** Access token; default `HF_TOKEN`, else the token file `HF_HOME/token`. `false` sends none. */
  token?: string | false
  /** Cancels requests and downloads. */
  signal?: AbortSignal
  /**
   * Per-request limit in ms: the whole HEAD, and any silence while a file streams (default
   * `HF_HUB_ETAG_TIMEOUT` / `HF_HUB_DOWNLOAD_TIMEOUT` seconds, else 10 s).
   */
  timeoutMs?: number
  /** The kind of repo (default 'model'): datasets and spaces live under `/datasets/` and `/spaces/`. */
  repoType?: RepoType
}

/** huggingface_hub's repo types. */
export type RepoType = 'model' | 'dataset' | 'space'

/** A file the hub has, at a commit. */
export interface FileMeta {
  filename: string
  commit: string
  /** Normalised ETag: git sha1 for small files, sha256 for LFS files. Names the blob. */
  etag: string
  size: number
  /** Where to GET the bytes (the CDN for LFS files). */
  url: string
}

/** A file the hub says is not in the repo (`X-Error-Code: EntryNotFound`). */
export interface AbsentFile {
  filename: string
  absent: true
  commit: string | null
}

const DEFAULT_ENDPOINT = 'https://huggingface.co'
const DEFAULT_TIMEOUT_S = 10
const PROGRESS_INTERVAL_MS = 100
const MAX_RELATIVE_REDIRECTS = 10
/** An ETag names a file in `blobs/`: no separators, no `..`. */
const SAFE_ETAG = /^(?!\.{1,2}$)[\w.-]+$/

function homeDir(p: string): string {
  return p.startsWith('~') ? path.join(os.homedir(), p.slice(1)) : p
}

/** `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
function hfHome(): string {
  const xdg = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache')
  return homeDir(process.env.HF_HOME ?? path.join(xdg, 'huggingface'))
}

/** The token to send: the option, else `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, `HF_HOME/token`). */
export function hubToken(token?: string | false): string | null {
  if (token === false) return null
  if (token) return token
  const env = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN
  if (env) return env
  const file = homeDir(process.env.HF_TOKEN_PATH ?? path.join(hfHome(), 'token'))
  try {
    return fs.readFileSync(file, 'utf8').trim() || null
  } catch {
    return null
  }
}

function envSeconds(name: string): number {
  const v = Number(process.env[name])
  return (Number.isFinite(v) && v > 0 ? v : DEFAULT_TIMEOUT_S) * 1000
}

function userAgent(): string {
  let version = 'unknown'
  try {
    version = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version
  } catch {
    // running from an unusual layout: the version is cosmetic
  }
  return `transformer-lens/${version}; node/${process.versions.node}`
}

/** A connection to one repo on the hub. */
export class HubClient {
  readonly endpoint: string
  readonly repoId: string
  readonly repoType: RepoType
  readonly #headers: Record<string, string>
  readonly #signal: AbortSignal | undefined
  readonly #headTimeoutMs: number
  readonly #idleTimeoutMs: number

  constructor(repoId: string, opts: HubClientOptions = {}) {
    this.repoId = repoId
    this.repoType = opts.repoType ?? 'model'
    if (!['model', 'dataset', 'space'].includes(this.repoType)) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `repoType must be 'model', 'dataset' or 'space', got ${JSON.stringify(this.repoType)}`)
    }
    this.endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '')
    this.#signal = opts.signal
    this.#headTimeoutMs = opts.timeoutMs ?? envSeconds('HF_HUB_ETAG_TIMEOUT')
    this.#idleTimeoutMs = opts.timeoutMs ?? envSeconds('HF_HUB_DOWNLOAD_TIMEOUT')
    this.#headers = { 'User-Agent': userAgent(), 'Accept-Encoding': 'identity' }
    const token = hubToken(opts.token)
    if (token) this.#headers.Authorization = `Bearer ${token}`
  }

  /**
   * `{endpoint}/{repo}/resolve/{revision}/{filename}` (`{endpoint}/spaces/{repo}/...` for a space,
   * `/datasets/` for a dataset), revision and path segments url-encoded.
   */
  fileUrl(revision: string, filename: string): string {
    const file = filename.split('/').map(encodeURIComponent).join('/')
    const prefix = this.repoType === 'model' ? '' : `${this.repoType}s/`
    return `${this.endpoint}/${prefix}${this.repoId}/resolve/${encodeURIComponent(revision)}/${file}`
  }

  /** HEAD a file (following relative redirects, as a renamed repo answers): its commit, ETag and size. */
  async metadata(revision: string, filename: string): Promise<FileMeta | AbsentFile> {
    let url = this.fileUrl(revision, filename)
    let res: Response
    for (let hops = 0; ; hops++) {
      const init: RequestInit = { method: 'HEAD', headers: this.#headers, redirect: 'manual' }
      res = await this.#fetch(url, init, AbortSignal.timeout(this.#headTimeoutMs), filename)
      const location = res.headers.get('location')
      if (res.status < 300 || res.status > 399 || location === null || !isRelative(location) || hops >= MAX_RELATIVE_REDIRECTS) break
      url = new URL(location, url).href
    }
    const h = res.headers
    if (res.status >= 400) {
      if (h.get('x-error-code') === 'EntryNotFound') return { filename, absent: true, commit: h.get('x-repo-commit') }
      throw this.#statusError(res, revision, filename)
    }
    const commit = h.get('x-repo-commit')
    const etag = normalizeEtag(h.get('x-linked-etag') ?? h.get('etag'))
    const size = Number(h.get('x-linked-size') ?? h.get('content-length') ?? NaN)
    if (!commit || !etag || !SAFE_ETAG.test(etag) || !Number.isInteger(size)) {
      throw new TransformerLensError(
        'TL_NETWORK',
        `${url} did not answer as a HuggingFace hub (missing X-Repo-Commit, a usable ETag or the size); check HF_ENDPOINT and any proxy`,
      )
    }
    const location = h.get('location')
    return { filename, commit, etag, size, url: location !== null ? new URL(location, url).href : url }
  }

  /**
   * The repo's files at a revision, as `huggingface_hub.list_repo_files` gives them (the hub's
   * `/api/{models,datasets,spaces}/{repo}/revision/{revision}` listing), and that revision's commit.
   */
  async listFiles(revision: string): Promise<{ commit: string; files: string[] }> {
    const kind = `${this.repoType}s`
    const url = `${this.endpoint}/api/${kind}/${this.repoId}/revision/${encodeURIComponent(revision)}`
    const res = await this.#fetch(url, { method: 'GET', headers: this.#headers }, AbortSignal.timeout(this.#headTimeoutMs), '(file list)')
    if (res.status >= 400) {
      await res.body?.cancel()
      throw this.#statusError(res, revision, '(file list)')
    }
    let body: { sha?: unknown; siblings?: unknown }
    try {
      body = (await res.json()) as typeof body
    } catch (e) {
      throw this.#networkError(e, url, `the file list of '${this.repoId}' is not JSON`)
    }
    const siblings = Array.isArray(body.siblings) ? body.siblings : null
    const files = siblings?.map((s) => (s as { rfilename?: unknown })?.rfilename)
    if (typeof body.sha !== 'string' || !files || !files.every((f): f is string => typeof f === 'string')) {
      throw new TransformerLensError('TL_NETWORK', `${url} did not answer with a HuggingFace file list (sha, siblings[].rfilename)`)
    }
    return { commit: body.sha, files }
  }

  /**
   * Streams a file to `dest + '.incomplete'`, checks its size, then renames it to `dest`. A failed
   * or interrupted download leaves nothing behind. Redirects (to a CDN) are followed; the token is
   * sent only to the hub's own host.
   */
  async download(meta: FileMeta, dest: string, onProgress?: (p: DownloadProgress) => void): Promise<void> {
    const headers = { ...this.#headers }
    if (new URL(meta.url).host !== new URL(this.endpoint).host) delete headers.Authorization
    const idle = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => idle.abort(new DOMException('download stalled', 'TimeoutError')), this.#idleTimeoutMs)
    }
    const tmp = `${dest}.incomplete`
    let loaded = 0
    let file: fs.promises.FileHandle | undefined
    try {
      arm()
      const res = await this.#fetch(meta.url, { method: 'GET', headers, redirect: 'follow' }, idle.signal, meta.filename)
      if (res.status !== 200 || res.body === null) {
        await res.body?.cancel()
        throw this.#statusError(res, meta.commit, meta.filename)
      }
      file = await fs.promises.open(tmp, 'w')
      let reported = Date.now()
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          arm()
          await file.write(chunk)
          loaded += chunk.byteLength
          if (onProgress && loaded < meta.size && Date.now() - reported >= PROGRESS_INTERVAL_MS) {
            reported = Date.now()
            onProgress({ file: meta.filename, loaded, total: meta.size })
          }
        }
      } catch (e) {
        throw this.#networkError(e, meta.url, `the download of '${meta.filename}' was cut off after ${loaded} of ${meta.size} bytes`)
      }
      await file.close()
      file = undefined
      if (loaded !== meta.size) {
        throw new TransformerLensError('TL_NETWORK', `'${meta.filename}' of '${this.repoId}' arrived with ${loaded} bytes, expected ${meta.size}`)
      }
      await fs.promises.rename(tmp, dest)
      onProgress?.({ file: meta.filename, loaded, total: meta.size })
    } catch (e) {
      await file?.close().catch(() => undefined)
      await fs.promises.rm(tmp, { force: true })
      throw e
    } finally {
      clearTimeout(timer)
    }
  }

  async #fetch(url: string, init: RequestInit, timeout: AbortSignal, filename: string): Promise<Response> {
    const signal = this.#signal ? AbortSignal.any([this.#signal, timeout]) : timeout
    try {
      return await fetch(url, { ...init, signal })
    } catch (e) {
      const origin = new URL(url).origin
      const hub = url.startsWith(this.endpoint) ? ' (the hub endpoint, HF_ENDPOINT)' : ''
      throw this.#networkError(e, url, `cannot fetch '${filename}' of '${this.repoId}' from ${origin}${hub}`)
    }
  }

  #networkError(e: unknown, url: string, what: string): TransformerLensError {
    if (e instanceof TransformerLensError) return e
    if (this.#signal?.aborted) return new TransformerLensError('TL_ABORTED', `download from '${this.repoId}' aborted`, { cause: e })
    const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } }
    const reason = err.name === 'TimeoutError' ? 'timed out' : (err.cause?.message ?? err.cause?.code ?? err.message ?? String(e))
    return new TransformerLensError('TL_NETWORK', `${what}: ${reason} (${url})`, { cause: e })
  }

  #statusError(res: Response, revision: string, filename: string): TransformerLensError {
    const code = res.headers.get('x-error-code')
    const where = `'${this.repoId}' at ${this.endpoint}`
    const tokenHint = `if it is private or gated, accept its terms on the hub and set HF_TOKEN (or pass the token option)`
    if (code === 'RevisionNotFound') {
      return new TransformerLensError('TL_UNKNOWN_MODEL', `revision '${revision}' of ${where} does not exist`)
    }
    if (code === 'EntryNotFound') {
      return new TransformerLensError('TL_MISSING_FILE', `'${filename}' is not in ${where} (revision ${revision})`)
    }
    if (code === 'GatedRepo') {
      return new TransformerLensError('TL_AUTH', `${where} is gated (HTTP ${res.status}): accept its terms on the hub page and set HF_TOKEN (or pass the token option)`)
    }
    if (code === 'RepoNotFound') {
      return new TransformerLensError('TL_UNKNOWN_MODEL', `repository ${where} was not found (HTTP ${res.status}); ${tokenHint}`)
    }
    if (res.status === 401 || res.status === 403) {
      const sent = this.#headers.Authorization !== undefined ? 'the token sent was refused' : 'no token was sent'
      return new TransformerLensError('TL_AUTH', `access to ${where} was refused (HTTP ${res.status}, ${sent}): the repo is gated or private; set HF_TOKEN (or pass the token option) to a token with access`)
    }
    return new TransformerLensError('TL_NETWORK', `HTTP ${res.status} for '${filename}' of ${where} (revision ${revision})`)
  }
}

/** `W/"abc"` or `"abc"` → `abc`, as huggingface_hub names blobs. */
function normalizeEtag(etag: string | null): string | null {
  if (etag === null) return null
  return etag.replace(/^W\//, '').replace(/^"+|"+$/g, '') || null
}

/** A Location without a scheme or host: the hub's renamed-repo redirect. */
function isRelative(location: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(location) && !location.startsWith('//')
}
