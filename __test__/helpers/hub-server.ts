/**
 * A local stand-in for the HuggingFace hub's file protocol (`/{repo}/resolve/{revision}/{file}`;
 * a repo id may carry the `spaces/` or `datasets/` prefix, and files may sit in folders) and its
 * file list (`/api/{models,spaces,datasets}/{repo}/revision/{revision}`: sha + siblings),
 * on 127.0.0.1 only: HEAD/GET with X-Repo-Commit and git-sha1 ETags for small files; LFS files
 * (`*.safetensors`, `*.bin`) answered with X-Linked-Etag (sha256) / X-Linked-Size and a 302 to a
 * second server playing the CDN; X-Error-Code 404s; renamed repos as relative 307s; an optional
 * bearer token. Knobs make bodies slow, cut short or stalled.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'
import { AddressInfo } from 'node:net'
import * as path from 'node:path'

export interface HubServerOptions {
  /** repo id (`spaces/org/name` for a space) → folder whose files (and subfolders) the repo holds. */
  repos: Record<string, string>
  /** old repo id → new one, answered with a relative 307 as the hub does for renamed repos. */
  renamed?: Record<string, string>
  /** When set, hub requests need `Authorization: Bearer {token}` (else 401 GatedRepo). */
  token?: string
  /** GET bodies go out in 16 KiB chunks this many ms apart. */
  chunkDelayMs?: number
  /** file → how its GET body goes wrong: 'cut' (socket closed halfway), 'short' (chunked, ends halfway), 'stall' (never sends). */
  faults?: Record<string, 'cut' | 'short' | 'stall'>
}

export interface LoggedRequest {
  server: 'hub' | 'cdn'
  method: string
  path: string
  authorization: string | undefined
  userAgent: string | undefined
}

export interface HubServer {
  endpoint: string
  commit: string
  /** Every request either server received. */
  requests: LoggedRequest[]
  /** Mutable: change knobs between downloads. */
  options: HubServerOptions
  close(): Promise<void>
}

interface Entry {
  bytes: Buffer
  lfs: boolean
  /** git blob sha1 for small files, sha256 for LFS files: the blob name a client must use. */
  etag: string
}

export const FAKE_COMMIT = 'c0ffee0000000000000000000000000000000001'
const CHUNK = 16 * 1024

export function gitSha1(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex')
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export function isLfs(file: string): boolean {
  return file.endsWith('.safetensors') || file.endsWith('.bin')
}

/** The repo's files by path (`lens/gpt2/params.pt` for files in folders). */
function readRepo(dir: string, prefix = '', files = new Map<string, Entry>()): Map<string, Entry> {
  for (const name of fs.readdirSync(dir)) {
    const full = path.join(dir, name)
    if (fs.statSync(full).isDirectory()) {
      readRepo(full, `${prefix}${name}/`, files)
      continue
    }
    const bytes = fs.readFileSync(full)
    const lfs = isLfs(name)
    files.set(prefix + name, { bytes, lfs, etag: lfs ? sha256(bytes) : gitSha1(bytes) })
  }
  return files
}

function listen(handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler)
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

function url(server: http.Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function stop(server: http.Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

/** Sends a body, honouring the slow and fault knobs. */
async function sendBody(res: http.ServerResponse, bytes: Buffer, fault: 'cut' | 'short' | 'stall' | undefined, delayMs: number) {
  if (fault === 'stall') {
    res.writeHead(200, { 'Content-Length': bytes.length })
    res.flushHeaders()
    return
  }
  const end = fault === undefined ? bytes.length : Math.floor(bytes.length / 2)
  res.writeHead(200, fault === 'short' ? {} : { 'Content-Length': bytes.length })
  for (let at = 0; at < end; at += CHUNK) {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs))
    if (res.destroyed) return
    res.write(bytes.subarray(at, Math.min(at + CHUNK, end)))
  }
  if (fault === 'cut') res.socket?.destroy()
  else res.end()
}

export async function startHubServer(options: HubServerOptions): Promise<HubServer> {
  const repos = new Map(Object.entries(options.repos).map(([id, dir]) => [id, readRepo(dir)]))
  const byEtag = new Map<string, Entry & { name: string }>()
  for (const files of repos.values()) for (const [name, e] of files) if (e.lfs) byEtag.set(e.etag, { ...e, name })
  const requests: LoggedRequest[] = []
  const log = (server: 'hub' | 'cdn', req: http.IncomingMessage) =>
    requests.push({
      server,
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      userAgent: req.headers['user-agent'],
    })

  const cdn = await listen((req, res) => {
    log('cdn', req)
    const etag = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/blobs\//, '')
    const entry = byEtag.get(etag)
    if (entry === undefined) return void res.writeHead(404).end()
    if (req.method === 'HEAD') return void res.writeHead(200, { 'Content-Length': entry.bytes.length }).end()
    void sendBody(res, entry.bytes, options.faults?.[entry.name], options.chunkDelayMs ?? 0)
  })

  const hub = await listen((req, res) => {
    log('hub', req)
    const fail = (status: number, code: string | null, extra: Record<string, string> = {}) => {
      res.writeHead(status, { ...(code ? { 'X-Error-Code': code } : {}), 'X-Error-Message': code ?? 'error', ...extra })
      res.end()
    }
    const pathname = new URL(req.url ?? '/', 'http://x').pathname
    const listing = /^\/api\/(models|spaces|datasets)\/(.+)\/revision\/([^/]+)$/.exec(pathname)
    if (listing !== null) {
      const [, kind, id, rev] = listing
      const files = repos.get(kind === 'models' ? id : `${kind}/${id}`)
      if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) return fail(401, 'GatedRepo')
      if (files === undefined) return fail(404, 'RepoNotFound')
      if (![`main`, FAKE_COMMIT].includes(decodeURIComponent(rev))) return fail(404, 'RevisionNotFound')
      const body = JSON.stringify({ sha: FAKE_COMMIT, siblings: [...files.keys()].sort().map((rfilename) => ({ rfilename })) })
      res.writeHead(200, { 'Content-Type': 'application/json' })
      return void res.end(body)
    }
    const at = pathname.indexOf('/resolve/')
    if (at < 0) return fail(404, null)
    const repoId = pathname.slice(1, at)
    const [rev, ...rest] = pathname.slice(at + '/resolve/'.length).split('/')
    const revision = decodeURIComponent(rev)
    const filename = rest.map(decodeURIComponent).join('/')
    const renamed = options.renamed?.[repoId]
    if (renamed !== undefined) {
      res.writeHead(307, { Location: `/${renamed}/resolve/${rev}/${rest.join('/')}` })
      return void res.end()
    }
    if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) return fail(401, 'GatedRepo')
    const files = repos.get(repoId)
    if (files === undefined) return fail(401, 'RepoNotFound')
    if (revision !== 'main' && revision !== FAKE_COMMIT) return fail(404, 'RevisionNotFound')
    const entry = files.get(filename)
    if (entry === undefined) return fail(404, 'EntryNotFound', { 'X-Repo-Commit': FAKE_COMMIT })
    if (entry.lfs) {
      res.writeHead(302, {
        Location: `${url(cdn)}/blobs/${entry.etag}?X-Amz-Signature=fake`,
        'X-Repo-Commit': FAKE_COMMIT,
        'X-Linked-Etag': `"${entry.etag}"`,
        'X-Linked-Size': String(entry.bytes.length),
        ETag: `"${gitSha1(Buffer.from(`lfs pointer ${entry.etag}`))}"`,
      })
      return void res.end()
    }
    res.setHeader('X-Repo-Commit', FAKE_COMMIT)
    res.setHeader('ETag', `"${entry.etag}"`)
    if (req.method === 'HEAD') return void res.writeHead(200, { 'Content-Length': entry.bytes.length }).end()
    void sendBody(res, entry.bytes, options.faults?.[filename], options.chunkDelayMs ?? 0)
  })

  return {
    endpoint: url(hub),
    commit: FAKE_COMMIT,
    requests,
    options,
    close: async () => {
      await Promise.all([stop(hub), stop(cdn)])
    },
  }
}
