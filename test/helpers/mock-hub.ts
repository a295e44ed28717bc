// A local stand-in for the Hugging Face hub, serving in-memory repos with the hub's URL layout:
//
//   GET  /api/models/{org}/{name}/revision/{rev}[?blobs=true]   -> { id, sha, siblings: [...] }
//   GET  /{org}/{name}/resolve/{rev}/{path}  (and HEAD)         -> the file, or 302 to /cdn/...
//   GET  /cdn/{sha256}                                         -> an LFS blob (what the CDN serves)
//
// Headers follow the hub: X-Repo-Commit, ETag (git blob sha1 for regular files, sha256 for LFS),
// X-Linked-Etag / X-Linked-Size on LFS redirects, X-Error-Code (RepoNotFound, RevisionNotFound,
// EntryNotFound) on 404s. `hub.knobs` and `hub.failNext()` make it misbehave the ways a real
// network does.
//
//   const hub = await MockHub.start();
//   const commit = hub.addRepo('org/tiny', [{ path: 'config.json', content: '{}' }]);
//   ... downloadModel('hf:org/tiny', { endpoint: hub.url }) ...
//   await hub.close();

import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MockFile {
  path: string;
  content: Uint8Array | string;
  /** Stored with git-lfs (weights): the API reports lfs.sha256 and resolve redirects to the CDN. */
  lfs?: boolean;
}

export interface MockKnobs {
  /** Every request must carry `Authorization: Bearer <token>` (a private or gated repo). */
  token?: string;
  /** Answer Range requests with the whole file and status 200, as some servers do. */
  ignoreRange?: boolean;
  /** Paths served with one byte flipped (same size), so their sha256 does not match the API. */
  corrupt?: Set<string>;
  /** LFS downloads redirect to /cdn/<sha256> on this server ('same-host') or on a second one. */
  redirect?: 'none' | 'same-host' | 'other-host';
  /** The API lists only file names (no sizes, blob ids or lfs info), like the hub without ?blobs=true. */
  noBlobsMetadata?: boolean;
  /** Quote ETags as W/"..." (weak), which the client must normalize. */
  weakEtags?: boolean;
}

export interface SeenRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

interface StoredFile {
  path: string;
  data: Buffer;
  lfs: boolean;
  sha256: string;
  gitSha1: string;
}

interface StoredRepo {
  refs: Map<string, string>; // branch or tag -> commit
  commits: Map<string, StoredFile[]>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitBlobSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export class MockHub {
  readonly knobs: MockKnobs = { redirect: 'none' };
  /** Every request either server saw, in order. */
  readonly requests: SeenRequest[] = [];
  /** File body bytes sent, summed over all downloads (hub and CDN). */
  bytesSent = 0;
  private failAfterBytes = 0;
  private failuresLeft = 0;
  private failHow: 'short' | 'reset' = 'short';
  private readonly repos = new Map<string, StoredRepo>();
  private readonly blobs = new Map<string, StoredFile>(); // sha256 -> file, for the CDN

  private constructor(
    private readonly hubServer: http.Server,
    private readonly cdnServer: http.Server,
  ) {}

  static async start(knobs: MockKnobs = {}): Promise<MockHub> {
    let self: MockHub | null = null;
    const hubServer = http.createServer((req, res) => self!.handle('hub', req, res));
    const cdnServer = http.createServer((req, res) => self!.handle('cdn', req, res));
    self = new MockHub(hubServer, cdnServer);
    Object.assign(self.knobs, knobs);
    await Promise.all([listen(hubServer), listen(cdnServer)]);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.hubServer.address() as AddressInfo).port}`;
  }

  get cdnUrl(): string {
    return `http://127.0.0.1:${(this.cdnServer.address() as AddressInfo).port}`;
  }

  /**
   * The next `times` file downloads (of files longer than `afterBytes`) break off after
   * `afterBytes` body bytes. 'short': the body is sent chunked and simply ends early, so exactly
   * `afterBytes` arrive (deterministic). 'reset': Content-Length promises the whole file and the
   * connection is destroyed; fetch may then drop bytes it had received but not yet handed over,
   * so tests of this mode can only count tries, not bytes.
   */
  failNext(afterBytes: number, times = 1, how: 'short' | 'reset' = 'short'): void {
    this.failAfterBytes = afterBytes;
    this.failuresLeft = times;
    this.failHow = how;
  }

  /** Adds (or moves) branch or tag `revision` of repo `id` to a new commit holding `files`; returns the commit. */
  addRepo(id: string, files: MockFile[], revision = 'main'): string {
    let repo = this.repos.get(id);
    if (!repo) {
      repo = { refs: new Map(), commits: new Map() };
      this.repos.set(id, repo);
    }
    const stored = files.map((f) => {
      const data = Buffer.from(typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : f.content);
      const file: StoredFile = { path: f.path, data, lfs: f.lfs === true, sha256: sha256(data), gitSha1: gitBlobSha1(data) };
      if (file.lfs) this.blobs.set(file.sha256, file);
      return file;
    });
    const h = createHash('sha1').update(`${id}\0${revision}\0${repo.commits.size}`);
    for (const f of stored) h.update(`${f.path}\0${f.sha256}\0`);
    const commit = h.digest('hex');
    repo.commits.set(commit, stored);
    repo.refs.set(revision, commit);
    return commit;
  }

  /** Forgets the requests seen and puts every knob back to a well-behaved hub. */
  reset(): void {
    this.requests.length = 0;
    this.bytesSent = 0;
    this.failuresLeft = 0;
    for (const k of Object.keys(this.knobs) as (keyof MockKnobs)[]) delete this.knobs[k];
    this.knobs.redirect = 'none';
  }

  /** Requests matching `pred`. */
  count(pred: (r: SeenRequest) => boolean): number {
    return this.requests.filter(pred).length;
  }

  /** File downloads (GET of resolve or CDN URLs; redirects count once, at the CDN). */
  downloads(): SeenRequest[] {
    return this.requests.filter((r) => r.method === 'GET' && (r.path.includes('/resolve/') || r.path.startsWith('/cdn/')));
  }

  async close(): Promise<void> {
    for (const s of [this.hubServer, this.cdnServer]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  // ---- serving ------------------------------------------------------------------------------

  private handle(server: 'hub' | 'cdn', req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const seen: SeenRequest = { server, method: req.method ?? 'GET', path: url.pathname };
    if (req.headers.range) seen.range = req.headers.range;
    if (req.headers.authorization) seen.authorization = req.headers.authorization;
    this.requests.push(seen);

    if (url.pathname.startsWith('/cdn/')) return this.serveCdn(url, req, res);
    if (server === 'cdn') return error(res, 404, 'not a CDN path');

    // The CDN URL is pre-signed; only the hub itself checks the token.
    const { token } = this.knobs;
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
      return error(res, 401, 'Invalid credentials in Authorization header');
    }

    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'revision' && parts.length === 6) {
      return this.serveApi(`${parts[2]}/${parts[3]}`, parts[5]!, url.searchParams.get('blobs') === 'true', res);
    }
    if (parts[2] === 'resolve' && parts.length >= 5) {
      return this.serveResolve(`${parts[0]}/${parts[1]}`, parts[3]!, parts.slice(4).join('/'), req, res);
    }
    error(res, 404, 'no such route');
  }

  private lookup(repoId: string, revision: string, res: http.ServerResponse): { commit: string; files: StoredFile[] } | null {
    const repo = this.repos.get(repoId);
    if (!repo) {
      error(res, 404, 'Repository not found', 'RepoNotFound');
      return null;
    }
    const commit = repo.refs.get(revision) ?? (repo.commits.has(revision) ? revision : undefined);
    if (!commit) {
      error(res, 404, `Invalid rev id: ${revision}`, 'RevisionNotFound');
      return null;
    }
    return { commit, files: repo.commits.get(commit)! };
  }

  private serveApi(repoId: string, revision: string, blobs: boolean, res: http.ServerResponse): void {
    const found = this.lookup(repoId, revision, res);
    if (!found) return;
    const full = blobs && !this.knobs.noBlobsMetadata;
    const siblings = found.files.map((f) => {
      if (!full) return { rfilename: f.path };
      const s: Record<string, unknown> = { rfilename: f.path, size: f.data.length };
      if (f.lfs) {
        s.blobId = createHash('sha1').update(`pointer ${f.sha256}`).digest('hex'); // the pointer's oid
        s.lfs = { sha256: f.sha256, size: f.data.length, pointerSize: 134 };
      } else {
        s.blobId = f.gitSha1;
      }
      return s;
    });
    const body = JSON.stringify({ _id: 'x', id: repoId, modelId: repoId, sha: found.commit, private: false, siblings });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  private etag(value: string): string {
    return this.knobs.weakEtags ? `W/"${value}"` : `"${value}"`;
  }

  private serveResolve(repoId: string, revision: string, path: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    const found = this.lookup(repoId, revision, res);
    if (!found) return;
    const file = found.files.find((f) => f.path === path);
    if (!file) return error(res, 404, 'Entry not found', 'EntryNotFound');
    const headers: http.OutgoingHttpHeaders = { 'X-Repo-Commit': found.commit };
    const redirect = this.knobs.redirect ?? 'none';
    if (file.lfs && redirect !== 'none') {
      const target = `/cdn/${file.sha256}?expires=0`;
      res.writeHead(302, {
        ...headers,
        Location: redirect === 'same-host' ? target : this.cdnUrl + target,
        ETag: this.etag(createHash('sha1').update(`pointer ${file.sha256}`).digest('hex')),
        'X-Linked-Etag': this.etag(file.sha256),
        'X-Linked-Size': String(file.data.length),
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    headers.ETag = this.etag(file.lfs ? file.sha256 : file.gitSha1);
    this.serveBody(file, req, res, headers);
  }

  private serveCdn(url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
    const file = this.blobs.get(url.pathname.slice('/cdn/'.length));
    if (!file) return error(res, 404, 'NoSuchKey');
    this.serveBody(file, req, res, { ETag: `"s3-${file.sha256.slice(0, 16)}"` });
  }

  /** Sends a file honouring Range (unless ignoreRange) and the failure knobs. */
  private serveBody(file: StoredFile, req: http.IncomingMessage, res: http.ServerResponse, headers: http.OutgoingHttpHeaders): void {
    let data = file.data;
    if (this.knobs.corrupt?.has(file.path) && data.length > 0) {
      data = Buffer.from(data);
      data[data.length >> 1] ^= 0xff;
    }
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !this.knobs.ignoreRange) {
      start = Number(m[1]);
      if (start >= data.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const body = data.subarray(start);
    const cut = this.failAfterBytes;
    const failing = req.method !== 'HEAD' && this.failuresLeft > 0 && cut < body.length;
    const outHeaders: http.OutgoingHttpHeaders = { ...headers, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    if (!(failing && this.failHow === 'short')) outHeaders['Content-Length'] = body.length; // else chunked
    res.writeHead(status, outHeaders);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (failing) {
      this.failuresLeft--;
      this.bytesSent += cut;
      if (this.failHow === 'short') {
        res.end(body.subarray(0, cut));
      } else {
        res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
      }
      return;
    }
    this.bytesSent += body.length;
    res.end(body);
  }
}

function error(res: http.ServerResponse, status: number, message: string, code?: string): void {
  const body = JSON.stringify({ error: message });
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json', 'X-Error-Message': message };
  if (code) headers['X-Error-Code'] = code;
  res.writeHead(status, headers);
  res.end(body);
}

function listen(server: http.Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
}
