// Model download from the Hugging Face hub into a local cache: `--model hf:org/name[@revision]`.
//
// The cache keeps huggingface_hub's layout, so it reads familiar and tools can inspect it:
//
//   <cache>/models--org--name/
//     blobs/<sha256 or git sha1>          file contents, named by the hub's ETag
//     blobs/<id>.incomplete               a download in progress (resumed with Range)
//     snapshots/<commit>/<path>           symlinks into blobs/, the tree a loader opens
//     refs/<revision>                     the commit a branch or tag pointed at, written once
//                                         every file of that snapshot is in place
//     manifests/<commit>.json             (ours) the repo's file list, for offline checks
//
// What talks to the hub (see huggingface_hub's hf_api.py / file_download.py):
//   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true
//       -> { sha: commit, siblings: [{ rfilename, size, blobId, lfs?: { sha256, size } }] }
//   GET {endpoint}/{repo}/resolve/{commit}/{path}
//       -> the file, or (LFS) a redirect to a CDN; X-Linked-Etag / X-Linked-Size / ETag carry
//          the blob id and size when the listing does not.
//
// Every blob is checked before it enters the cache: its size, the sha256 for LFS files and the
// git blob sha1 (sha1 of "blob <size>\0" + bytes) for regular files. A download only ever lands
// in blobs/ by an atomic rename, so a snapshot never points at a partial file.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, readFile, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { FormatError } from './errors.ts';
import { createProgress, formatBytes, type Progress } from './progress.ts';

export interface HubOptions {
  /** Cache root; default $SLIPSTREAM_CACHE, else $XDG_CACHE_HOME/slipstream, else ~/.cache/slipstream. */
  cacheDir?: string;
  /** Hub URL; default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Access token for private and gated repos; default $HF_TOKEN. */
  token?: string;
  /** Use only the cache, never the network; default true when $HF_HUB_OFFLINE is 1/true/yes/on. */
  offline?: boolean;
  /** Progress bars on stderr (one line per file when stderr is not a terminal); default true. */
  progress?: boolean;
  /** Which repo files to fetch; default `defaultInclude`. Ignored when the spec names a file. */
  include?: (path: string) => boolean;
  /** The fetch to use (tests, proxies); default the global fetch. */
  fetch?: typeof fetch;
}

export interface ModelSpec {
  /** 'org/name' */
  repo: string;
  /** Branch, tag or commit; 'main' when the spec names none. */
  revision: string;
  /** One file of the repo (`hf:org/name/model-q8_0.gguf`); then only that file is fetched. */
  file?: string;
}

/** A hub or cache problem; the message names the model (or file) and says what to do. */
export class HubError extends FormatError {
  readonly status: number | undefined;
  constructor(what: string, problem: string, status?: number) {
    super(what, problem);
    this.name = 'HubError';
    this.status = status;
  }
}

const SPEC_HELP = 'expected hf:org/name[/file][@revision]';
const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const COMMIT = /^[0-9a-f]{40}$/;
const BLOB_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const ATTEMPTS = 4; // per file: a dropped connection is resumed this many times before giving up
const MAX_REDIRECTS = 10;

/** A relative path with no '', '.', '..' segments and no backslash or NUL: safe to join under a folder. */
function isSafeRelPath(p: string): boolean {
  if (p.length === 0 || p.length > 4096 || /[\\\0]/.test(p)) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/**
 * 'hf:org/name' -> { repo: 'org/name', revision: 'main' }; 'hf:org/name@v1.0' pins a branch, tag
 * or commit; 'hf:org/name/file.gguf[@rev]' names one file. The revision is everything after the
 * first '@' (it may hold '/', as in refs/pr/1). Returns null when `spec` does not start with
 * 'hf:'; throws a HubError for a malformed hub spec.
 */
export function parseModelSpec(spec: string): ModelSpec | null {
  if (!spec.startsWith('hf:')) return null;
  let rest = spec.slice(3);
  let revision = 'main';
  const at = rest.indexOf('@');
  if (at >= 0) {
    revision = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isSafeRelPath(revision) || /[\s?#%]/.test(revision)) {
      throw new HubError(spec, `bad revision '${revision}' (${SPEC_HELP})`);
    }
  }
  const parts = rest.split('/');
  const [org, name] = parts;
  if (parts.length < 2 || !org || !name) throw new HubError(spec, `missing repository name (${SPEC_HELP})`);
  for (const p of [org, name]) {
    // The hub forbids '--' and '..' in repo ids; that keeps models--org--name unambiguous.
    if (!REPO_PART.test(p) || p.includes('--') || p.includes('..') || p.length > 96) {
      throw new HubError(spec, `bad repository name '${org}/${name}' (${SPEC_HELP})`);
    }
  }
  const out: ModelSpec = { repo: `${org}/${name}`, revision };
  if (parts.length > 2) {
    const file = parts.slice(2).join('/');
    if (!isSafeRelPath(file)) throw new HubError(spec, `bad file path '${file}' (${SPEC_HELP})`);
    out.file = file;
  }
  return out;
}

// ---- which files a model needs ------------------------------------------------------------

const MODEL_FILES = new Set(['config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja']);

/**
 * The files a model needs, at the repo root only (subfolders such as original/ or onnx/ hold
 * other copies of the weights): config.json, generation_config.json, tokenizer*.json,
 * special_tokens_map.json, chat_template.jinja, *.safetensors and *.safetensors.index.json.
 * A repo holding only .gguf files must be named with its file: hf:org/name/file.gguf.
 */
export function defaultInclude(path: string): boolean {
  if (path.includes('/')) return false;
  return (
    MODEL_FILES.has(path) ||
    /^tokenizer.*\.json$/.test(path) ||
    path.endsWith('.safetensors') ||
    path.endsWith('.safetensors.index.json')
  );
}

/** One file of the repo as the listing describes it; the expectations a download is checked against. */
interface RepoFile {
  path: string;
  size?: number;
  /** LFS files: the sha256 of the contents (also their blob id). */
  sha256?: string;
  /** Regular files: the git blob sha1 (also their blob id). */
  gitSha1?: string;
}

const blobIdOf = (f: RepoFile) => f.sha256 ?? f.gitSha1;

// ---- settings ------------------------------------------------------------------------------

interface Settings {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
  progress: boolean;
  include: ((path: string) => boolean) | undefined;
  fetch: typeof fetch;
}

const truthy = (v: string | undefined) => v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
const nonEmpty = (v: string | undefined) => (v !== undefined && v.trim() !== '' ? v.trim() : undefined);

/** Where models go when no option or $SLIPSTREAM_CACHE says otherwise. */
export function defaultCacheDir(): string {
  const env = process.env;
  return nonEmpty(env.SLIPSTREAM_CACHE) ?? join(nonEmpty(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'slipstream');
}

/** The cache folder of one repo: <cache>/models--org--name. */
export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

function settings(opts: HubOptions): Settings {
  const env = process.env;
  const endpoint = (opts.endpoint ?? nonEmpty(env.HF_ENDPOINT) ?? 'https://huggingface.co').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(endpoint) || !URL.canParse(endpoint)) {
    throw new HubError(opts.endpoint !== undefined ? 'endpoint option' : 'HF_ENDPOINT', `'${endpoint}' is not an http(s) URL`);
  }
  return {
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    endpoint,
    token: opts.token ?? nonEmpty(env.HF_TOKEN),
    offline: opts.offline ?? truthy(env.HF_HUB_OFFLINE),
    progress: opts.progress ?? true,
    include: opts.include,
    fetch: opts.fetch ?? globalThis.fetch,
  };
}

/** Everything one download needs to know. */
interface Job extends ModelSpec {
  s: Settings;
  repoDir: string;
}

// ---- entry point ---------------------------------------------------------------------------

/**
 * Makes `spec` (hf:org/name[/file][@revision]) available locally and returns the snapshot folder,
 * or the file's path when the spec names one. Files already in the cache are not fetched again;
 * offline, or when the hub cannot be reached, the cached snapshot of the revision is used.
 */
export async function downloadModel(spec: string, opts: HubOptions = {}): Promise<string> {
  const parsed = parseModelSpec(spec);
  if (!parsed) throw new HubError(spec, `not a hub model (${SPEC_HELP})`);
  const s = settings(opts);
  const job: Job = { ...parsed, s, repoDir: repoCacheDir(s.cacheDir, parsed.repo) };
  if (s.offline) return fromCache(job, 'offline mode is on (HF_HUB_OFFLINE or the offline option)');

  let listing: { commit: string; files: RepoFile[] };
  try {
    listing = await fetchListing(job);
  } catch (e) {
    // No network (refused, DNS, reset): the cache may still hold this revision.
    if (e instanceof NetworkError) return fromCache(job, `cannot reach ${s.endpoint} (${e.detail})`);
    throw e;
  }
  const { commit, files } = listing;
  await writeJsonAtomic(join(job.repoDir, 'manifests', `${commit}.json`), { repo: job.repo, commit, files });

  const wanted = selectFiles(job, files);
  const snapshot = join(job.repoDir, 'snapshots', commit);
  for (const f of wanted) await ensureFile(job, commit, f, join(snapshot, f.path));

  // The ref moves only once the snapshot is whole, so offline use never lands on a partial one.
  // A commit needs no ref (as in huggingface_hub): its snapshot folder has its name.
  if (job.revision !== commit) await writeTextAtomic(join(job.repoDir, 'refs', job.revision), commit);
  return job.file ? join(snapshot, job.file) : snapshot;
}

/** The files of the listing this job fetches; throws when the repo has nothing usable. */
function selectFiles(job: Job, files: RepoFile[]): RepoFile[] {
  const what = `hf:${job.repo}@${job.revision}`;
  if (job.file) {
    const f = files.find((x) => x.path === job.file);
    if (!f) throw new HubError(what, `file ${job.file} not found in ${job.repo} at revision ${job.revision}`, 404);
    return [f];
  }
  const include = job.s.include ?? defaultInclude;
  const picked = files.filter((f) => include(f.path));
  if (!job.s.include && !picked.some((f) => f.path.endsWith('.safetensors'))) {
    const ggufs = files.filter((f) => f.path.endsWith('.gguf')).map((f) => f.path);
    if (ggufs.length > 0) {
      const shown = ggufs.slice(0, 8).join(', ') + (ggufs.length > 8 ? `, ... (${ggufs.length} in all)` : '');
      throw new HubError(what, `the repository holds GGUF files only; name the one to use, e.g. hf:${job.repo}/${ggufs[0]} (available: ${shown})`);
    }
    throw new HubError(what, `no safetensors weights in ${job.repo} at revision ${job.revision} (files: ${files.map((f) => f.path).slice(0, 12).join(', ') || 'none'})`);
  }
  if (picked.length === 0) throw new HubError(what, `no file of ${job.repo} at revision ${job.revision} matches the include filter`);
  return picked;
}

// ---- HTTP ----------------------------------------------------------------------------------

/** The request never got an HTTP answer (connection refused, DNS failure, reset). */
class NetworkError extends Error {
  readonly detail: string;
  constructor(url: string, cause: unknown) {
    const c = (cause as { cause?: { code?: string; message?: string } } | undefined)?.cause;
    const detail = c?.code ?? c?.message ?? (cause instanceof Error ? cause.message : String(cause));
    super(`${url}: ${detail}`);
    this.detail = detail;
  }
}

/** A transfer that broke off or came back short or garbled: worth resuming. */
class TransferError extends Error {}

interface Fetched {
  res: Response;
  /** Headers of every redirect hop before `res` (X-Linked-Etag and friends live on the hub's hop). */
  hops: Headers[];
}

/**
 * fetch with redirects followed by hand: the token goes only to the hub's own origin (the CDN URL
 * the hub redirects to is pre-signed), and callers can read the hub's headers on the redirect.
 * `crossOrigin: false` stops at a redirect to another origin and returns it.
 */
async function hubFetch(job: Job, url: string, init: { method?: string; headers?: Record<string, string>; crossOrigin?: boolean } = {}): Promise<Fetched> {
  const hubOrigin = new URL(job.s.endpoint).origin;
  const hops: Headers[] = [];
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers = new Headers(init.headers);
    headers.set('user-agent', 'slipstream');
    if (job.s.token && new URL(current).origin === hubOrigin) headers.set('authorization', `Bearer ${job.s.token}`);
    let res: Response;
    try {
      res = await job.s.fetch(current, { method: init.method ?? 'GET', headers, redirect: 'manual' });
    } catch (e) {
      throw new NetworkError(current, e);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, current).href;
      if (init.crossOrigin === false && new URL(next).origin !== new URL(current).origin) return { res, hops };
      await res.body?.cancel();
      hops.push(res.headers);
      current = next;
      continue;
    }
    return { res, hops };
  }
  throw new HubError(`hf:${job.repo}`, `more than ${MAX_REDIRECTS} redirects from ${url}`);
}

/** A HubError for a failed hub answer, saying what is missing or what to do. */
async function httpError(job: Job, res: Response, url: string, path?: string): Promise<HubError> {
  await res.body?.cancel().catch(() => {});
  const code = res.headers.get('x-error-code');
  const message = res.headers.get('x-error-message');
  const what = path ? `hf:${job.repo}/${path}@${job.revision}` : `hf:${job.repo}@${job.revision}`;
  const st = res.status;
  if (st === 401 || st === 403) {
    if (code === 'GatedRepo') {
      return new HubError(what, `${job.repo} is a gated repository: accept its terms at ${job.s.endpoint}/${job.repo} and set HF_TOKEN to a token of that account (HTTP ${st})`, st);
    }
    if (job.s.token) {
      return new HubError(what, `access to ${job.repo} denied with the given token (HTTP ${st}${message ? `: ${message}` : ''}); check that HF_TOKEN is valid and can read this repository`, st);
    }
    return new HubError(what, `access to ${job.repo} denied (HTTP ${st}): the repository is private or gated, or does not exist; set HF_TOKEN to an access token that can read it`, st);
  }
  if (st === 404) {
    if (code === 'RepoNotFound') return new HubError(what, `repository ${job.repo} not found on ${job.s.endpoint}`, st);
    if (code === 'RevisionNotFound') return new HubError(what, `revision ${job.revision} not found in repository ${job.repo}`, st);
    if (code === 'EntryNotFound' || path) return new HubError(what, `file ${path ?? '?'} not found in ${job.repo} at revision ${job.revision}`, st);
    return new HubError(what, `repository ${job.repo} or revision ${job.revision} not found on ${job.s.endpoint}`, st);
  }
  return new HubError(what, `the hub answered HTTP ${st} for ${url}${message ? ` (${message})` : ''}`, st);
}

const isRetryableStatus = (st: number) => st === 408 || st === 429 || st >= 500;

/** 'W/"abc"' or '"abc"' -> 'abc' (the hub quotes its ETags; weak ones may carry W/). */
function normalizeEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  let e = v.trim();
  if (e.startsWith('W/')) e = e.slice(2);
  if (e.length >= 2 && e.startsWith('"') && e.endsWith('"')) e = e.slice(1, -1);
  return e || undefined;
}

/** The commit and file list of the job's revision. */
async function fetchListing(job: Job): Promise<{ commit: string; files: RepoFile[] }> {
  const url = `${job.s.endpoint}/api/models/${job.repo}/revision/${encodeURIComponent(job.revision)}?blobs=true`;
  const { res } = await hubFetch(job, url, { headers: { accept: 'application/json' } });
  if (!res.ok) throw await httpError(job, res, url);
  const what = `hf:${job.repo}@${job.revision}`;
  let body: unknown;
  try {
    body = await res.json();
  } catch (e) {
    if (e instanceof TypeError) throw new NetworkError(url, e); // connection dropped mid-body
    throw new HubError(what, `the hub answered ${url} with something that is not JSON`);
  }
  const info = body as { sha?: unknown; siblings?: unknown };
  if (typeof info?.sha !== 'string' || !COMMIT.test(info.sha)) throw new HubError(what, `the hub's answer for ${url} has no commit hash ('sha')`);
  if (!Array.isArray(info.siblings)) throw new HubError(what, `the hub's answer for ${url} has no file list ('siblings')`);

  const files: RepoFile[] = [];
  for (const raw of info.siblings as unknown[]) {
    const sib = raw as { rfilename?: unknown; size?: unknown; blobId?: unknown; lfs?: { sha256?: unknown; size?: unknown } | null };
    // A path that could climb out of the snapshot folder is never written; skip it.
    if (typeof sib?.rfilename !== 'string' || !isSafeRelPath(sib.rfilename)) continue;
    const f: RepoFile = { path: sib.rfilename };
    const size = sib.lfs?.size ?? sib.size;
    if (typeof size === 'number' && Number.isSafeInteger(size) && size >= 0) f.size = size;
    if (sib.lfs) {
      if (typeof sib.lfs.sha256 === 'string' && /^[0-9a-f]{64}$/.test(sib.lfs.sha256)) f.sha256 = sib.lfs.sha256;
    } else if (typeof sib.blobId === 'string' && COMMIT.test(sib.blobId)) {
      f.gitSha1 = sib.blobId;
    }
    files.push(f);
  }
  return { commit: info.sha, files };
}

const resolveUrl = (job: Job, commit: string, path: string) =>
  `${job.s.endpoint}/${job.repo}/resolve/${commit}/${path.split('/').map(encodeURIComponent).join('/')}`;

/**
 * Fills in the blob id and size of a file the listing did not describe, from a HEAD of its resolve
 * URL (as huggingface_hub does): X-Linked-Etag / X-Linked-Size on an LFS redirect, else ETag and
 * Content-Length. A 64-hex id is a sha256, a 40-hex one a git blob sha1.
 */
async function describeFile(job: Job, commit: string, f: RepoFile): Promise<RepoFile> {
  const url = resolveUrl(job, commit, f.path);
  const { res, hops } = await hubFetch(job, url, { method: 'HEAD', headers: { 'accept-encoding': 'identity' }, crossOrigin: false });
  if (res.status >= 400) throw await httpError(job, res, url, f.path);
  const all = [...hops, res.headers];
  const linked = all.find((h) => h.has('x-linked-etag'));
  const etag = normalizeEtag(linked ? linked.get('x-linked-etag') : res.headers.get('etag'));
  const sizeHeader = linked?.get('x-linked-size') ?? (res.status === 200 ? res.headers.get('content-length') : null);
  const out: RepoFile = { ...f };
  if (out.size === undefined && sizeHeader && /^\d+$/.test(sizeHeader)) out.size = Number(sizeHeader);
  if (etag && /^[0-9a-f]{64}$/.test(etag)) out.sha256 = etag;
  else if (etag && COMMIT.test(etag)) out.gitSha1 = etag;
  else throw new HubError(`hf:${job.repo}/${f.path}@${job.revision}`, `the hub gave no usable ETag for ${f.path} (got ${etag ?? 'none'}), so it cannot be cached`);
  return out;
}

// ---- files ---------------------------------------------------------------------------------

async function fileSize(path: string): Promise<number | null> {
  try {
    const st = await stat(path); // follows a snapshot's symlink to its blob
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

/** Puts one file into the snapshot: already there, linked from a cached blob, or downloaded. */
async function ensureFile(job: Job, commit: string, listed: RepoFile, target: string): Promise<void> {
  const have = await fileSize(target);
  if (have !== null && (listed.size === undefined || have === listed.size)) return;

  const f = blobIdOf(listed) ? listed : await describeFile(job, commit, listed);
  const blob = join(job.repoDir, 'blobs', blobIdOf(f)!);
  const cached = await fileSize(blob);
  // Cached blobs are trusted by size: they were hashed on the way in, and rehashing gigabytes
  // on every start would cost more than the download check is worth.
  if (cached === null || (f.size !== undefined && cached !== f.size)) await downloadBlob(job, commit, f, blob);
  await linkInto(blob, target);
}

/** Creates `target` pointing at `blob` (a relative symlink; a copy where symlinks fail), atomically. */
async function linkInto(blob: string, target: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}`;
  await rm(tmp, { force: true });
  try {
    await symlink(relative(dirname(target), blob), tmp);
  } catch {
    await copyFile(blob, tmp);
  }
  await rename(tmp, target);
}

/** Hashes the checks of `f` expects, primed with what is already on disk when resuming. */
async function startHashes(f: RepoFile, part: string, resumeFrom: number): Promise<{ sha256?: Hash; sha1?: Hash }> {
  const h: { sha256?: Hash; sha1?: Hash } = {};
  if (f.sha256) h.sha256 = createHash('sha256');
  // The git blob id covers a header with the size, so it can be checked only when the size is known.
  if (f.gitSha1 && f.size !== undefined) h.sha1 = createHash('sha1').update(`blob ${f.size}\0`);
  if (resumeFrom > 0 && (h.sha256 || h.sha1)) {
    for await (const chunk of createReadStream(part, { end: resumeFrom - 1 })) {
      h.sha256?.update(chunk as Buffer);
      h.sha1?.update(chunk as Buffer);
    }
  }
  return h;
}

/** Digests computed while downloading (hex), so verify() need not reread the file. */
interface Digests {
  sha256?: string | undefined;
  sha1?: string | undefined;
}

/**
 * Downloads `f` into blobs/<id>.incomplete, resuming what an earlier try (or an earlier run) left,
 * checks it, and renames it to `blob`. A dropped connection is resumed up to ATTEMPTS times.
 */
async function downloadBlob(job: Job, commit: string, f: RepoFile, blob: string): Promise<void> {
  await mkdir(dirname(blob), { recursive: true });
  const part = `${blob}.incomplete`;
  const bar = createProgress(f.path, f.size ?? 0, { unit: 'bytes', enabled: job.s.progress ? undefined : false });
  let digests: Digests | null = null;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        digests = await downloadOnce(job, commit, f, part, bar);
        break;
      } catch (e) {
        if (!(e instanceof TransferError || e instanceof NetworkError)) throw e;
        if (attempt >= ATTEMPTS) {
          throw new HubError(`hf:${job.repo}/${f.path}@${job.revision}`, `download failed after ${ATTEMPTS} tries (${e.message}); run again to resume from ${part}`);
        }
        await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1))); // 0.1, 0.2, 0.4 s
      }
    }
  } finally {
    bar.stop();
  }
  await verify(job, f, part, digests);
  await rename(part, blob);
}

/**
 * One GET of the file, appending to `part` when the server honours our Range. Returns the digests
 * of the whole file, or null when `part` was already complete (verify() then hashes it).
 */
async function downloadOnce(job: Job, commit: string, f: RepoFile, part: string, bar: Progress): Promise<Digests | null> {
  let from = (await fileSize(part)) ?? 0;
  if (f.size !== undefined && from > f.size) {
    await rm(part, { force: true }); // longer than the file can be: not ours to resume
    from = 0;
  }
  if (f.size !== undefined && from === f.size) return null; // a previous run got every byte; verify() decides

  // Hash what we have before asking: a body left waiting while we read gigabytes off disk could
  // be dropped by the connection, and then the try makes no progress.
  let hashes = await startHashes(f, part, from);
  const url = resolveUrl(job, commit, f.path);
  // identity: a compressed body would not match the sizes, hashes and byte offsets we resume at.
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (from > 0) headers.range = `bytes=${from}-`;
  const { res } = await hubFetch(job, url, { headers });
  if (res.status === 416) {
    // Our partial file and the server disagree on the size: start over.
    await res.body?.cancel();
    await rm(part, { force: true });
    throw new TransferError(`the server refused to resume ${f.path} at byte ${from}`);
  }
  if (!res.ok) {
    if (isRetryableStatus(res.status)) {
      await res.body?.cancel();
      throw new TransferError(`HTTP ${res.status}`);
    }
    throw await httpError(job, res, url, f.path);
  }
  if (res.status === 206) {
    const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (!m || Number(m[1]) !== from) {
      await res.body?.cancel();
      await rm(part, { force: true });
      throw new TransferError(`the server resumed ${f.path} at the wrong offset (${res.headers.get('content-range') ?? 'no Content-Range'})`);
    }
  } else {
    // 200: the server ignored Range and sends the whole file; start over.
    if (from > 0) hashes = await startHashes(f, part, 0);
    from = 0;
  }
  const lengthHeader = res.headers.get('content-length');
  const expectedEnd = f.size ?? (lengthHeader && /^\d+$/.test(lengthHeader) ? from + Number(lengthHeader) : undefined);

  const fh = await open(part, from > 0 ? 'a' : 'w');
  let done = from;
  bar.update(done);
  try {
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw new TransferError(`connection lost after ${formatBytes(done)} of ${f.path} (${(e as Error).message})`);
        }
        if (chunk.done) break;
        const bytes = chunk.value;
        done += bytes.length;
        if (expectedEnd !== undefined && done > expectedEnd) {
          await reader.cancel();
          throw new TransferError(`the server sent more than the ${expectedEnd} bytes of ${f.path}`);
        }
        hashes.sha256?.update(bytes);
        hashes.sha1?.update(bytes);
        for (let off = 0; off < bytes.length; ) off += (await fh.write(bytes, off)).bytesWritten;
        bar.update(done);
      }
    }
  } finally {
    await fh.close();
  }
  if (expectedEnd !== undefined && done < expectedEnd) {
    throw new TransferError(`connection closed after ${done} of ${expectedEnd} bytes of ${f.path}`);
  }
  return { sha256: hashes.sha256?.digest('hex'), sha1: hashes.sha1?.digest('hex') };
}

/** Checks size and checksum of a finished `part`; on a mismatch deletes it and throws. */
async function verify(job: Job, f: RepoFile, part: string, digests: Digests | null): Promise<void> {
  const what = `hf:${job.repo}/${f.path}@${job.revision}`;
  let d = digests;
  if (!d) {
    // The file was complete from an earlier run: hash it from disk.
    const h = await startHashes(f, part, (await fileSize(part)) ?? 0);
    d = { sha256: h.sha256?.digest('hex'), sha1: h.sha1?.digest('hex') };
  }
  const size = (await fileSize(part)) ?? 0;
  const fail = async (problem: string) => {
    await rm(part, { force: true });
    return new HubError(what, `${problem}; the download was deleted, run again to fetch it anew`);
  };
  if (f.size !== undefined && size !== f.size) throw await fail(`size mismatch: expected ${f.size} bytes, got ${size}`);
  if (f.sha256 && d.sha256 !== f.sha256) throw await fail(`checksum mismatch: expected sha256 ${f.sha256}, got ${d.sha256}`);
  if (f.gitSha1 && d.sha1 !== undefined && d.sha1 !== f.gitSha1) throw await fail(`checksum mismatch: expected git blob sha1 ${f.gitSha1}, got ${d.sha1}`);
}

// ---- offline -------------------------------------------------------------------------------

/** The cached snapshot of the job's revision, if every file it needs is there; else a clear error. */
async function fromCache(job: Job, why: string): Promise<string> {
  const what = `hf:${job.repo}@${job.revision}`;
  const notCached = (detail: string) =>
    new HubError(what, `${why}, and ${detail} (cache: ${job.repoDir}); run once online to download it`);

  let commit: string | undefined;
  try {
    commit = (await readFile(join(job.repoDir, 'refs', job.revision), 'utf8')).trim();
  } catch {
    if (COMMIT.test(job.revision)) commit = job.revision; // a pinned commit needs no ref
  }
  if (!commit || !COMMIT.test(commit)) throw notCached('the model is not in the cache');
  const snapshot = join(job.repoDir, 'snapshots', commit);

  let needed: string[];
  try {
    const manifest = JSON.parse(await readFile(join(job.repoDir, 'manifests', `${commit}.json`), 'utf8')) as { files: RepoFile[] };
    needed = selectFiles(job, manifest.files).map((f) => f.path);
  } catch (e) {
    if (e instanceof HubError) throw e;
    // No manifest (a cache filled by another tool): trust what the snapshot holds.
    needed = await snapshotFiles(job, snapshot);
  }
  const missing: string[] = [];
  for (const p of needed) if ((await fileSize(join(snapshot, p))) === null) missing.push(p);
  if (needed.length === 0) throw notCached('the model is not in the cache');
  if (missing.length > 0) throw notCached(`the cached snapshot ${commit} lacks ${missing.slice(0, 8).join(', ')}`);
  return job.file ? join(snapshot, job.file) : snapshot;
}

/** Without a manifest: the files of `snapshot` the job wants, plus the shards its index names. */
async function snapshotFiles(job: Job, snapshot: string): Promise<string[]> {
  if (job.file) return [job.file];
  let names: string[];
  try {
    names = (await readdir(snapshot, { recursive: true })).map((n) => n.split('\\').join('/'));
  } catch {
    return [];
  }
  const include = job.s.include ?? defaultInclude;
  const out = new Set(names.filter(include));
  for (const p of [...out]) {
    if (!p.endsWith('.safetensors.index.json')) continue;
    try {
      const index = JSON.parse(await readFile(join(snapshot, p), 'utf8')) as { weight_map?: Record<string, string> };
      for (const shard of Object.values(index.weight_map ?? {})) if (isSafeRelPath(shard)) out.add(shard);
    } catch {
      // an unreadable index is the loader's problem to report, with its own file name
    }
  }
  return [...out];
}

// ---- small file helpers --------------------------------------------------------------------

async function writeTextAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

const writeJsonAtomic = (path: string, value: unknown) => writeTextAtomic(path, JSON.stringify(value, null, 1));

// ---- the cache as a list of models (`slipstream list`, `slipstream rm`) ----------------------

/** One snapshot in the cache: a commit of a repo, with the branches or tags that point at it. */
export interface CachedSnapshot {
  /** 'org/name' */
  repo: string;
  commit: string;
  /** refs/ entries naming this commit ('main', 'v1.0', 'refs/pr/1'). */
  refs: string[];
  /** The snapshot folder. */
  path: string;
  /** Files of the snapshot, relative, '/'-separated. */
  files: string[];
  /** Bytes of the blobs the snapshot's files point at (each blob once). */
  bytes: number;
  /**
   * Every file the download wanted is in place: a ref points at the commit (the ref moves last),
   * or, for a commit pulled by hash, the repo holds no partial download.
   */
  complete: boolean;
  /** Latest change to the snapshot (download time). */
  modified: Date;
}

async function readdirOr(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** refs/ of a repo folder: name -> commit (names may hold '/', as refs/pr/1). */
async function readRefs(repoDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = (await readdir(join(repoDir, 'refs'), { recursive: true })).map((n) => n.split('\\').join('/'));
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      const c = (await readFile(join(repoDir, 'refs', n), 'utf8')).trim();
      if (COMMIT.test(c)) out.set(n, c);
    } catch {
      // a folder (refs/pr) or an unreadable file
    }
  }
  return out;
}

/** Files of a snapshot with the blob each resolves to (realpath) and its size; broken links are skipped. */
async function snapshotBlobs(snapshot: string): Promise<{ files: string[]; blobs: Map<string, number>; modified: number }> {
  const files: string[] = [];
  const blobs = new Map<string, number>();
  let modified = 0;
  let names: string[];
  try {
    names = (await readdir(snapshot, { recursive: true })).map((n) => n.split('\\').join('/'));
    modified = (await stat(snapshot)).mtimeMs;
  } catch {
    return { files, blobs, modified };
  }
  for (const n of names.sort()) {
    const p = join(snapshot, n);
    try {
      const st = await stat(p);
      if (!st.isFile()) continue;
      files.push(n);
      blobs.set(await realpath(p), st.size);
      modified = Math.max(modified, (await lstat(p)).mtimeMs);
    } catch {
      // a link into a blob that is gone
    }
  }
  return { files, blobs, modified };
}

/** Every snapshot in the cache (default cache: $SLIPSTREAM_CACHE, ~/.cache/slipstream), by repo then newest first. */
export async function listCache(cacheDir = defaultCacheDir()): Promise<CachedSnapshot[]> {
  const out: CachedSnapshot[] = [];
  for (const entry of (await readdirOr(cacheDir)).sort()) {
    if (!entry.startsWith('models--')) continue;
    const parts = entry.slice('models--'.length).split('--');
    if (parts.length !== 2) continue;
    const repo = parts.join('/');
    const repoDir = join(cacheDir, entry);
    const refs = await readRefs(repoDir);
    const partial = (await readdirOr(join(repoDir, 'blobs'))).some((b) => b.endsWith('.incomplete'));
    const snaps: CachedSnapshot[] = [];
    for (const commit of await readdirOr(join(repoDir, 'snapshots'))) {
      if (!COMMIT.test(commit)) continue;
      const path = join(repoDir, 'snapshots', commit);
      const { files, blobs, modified } = await snapshotBlobs(path);
      const named = [...refs].filter(([, c]) => c === commit).map(([n]) => n).sort();
      let bytes = 0;
      for (const b of blobs.values()) bytes += b;
      snaps.push({ repo, commit, refs: named, path, files, bytes, complete: named.length > 0 || (files.length > 0 && !partial), modified: new Date(modified) });
    }
    if (partial) {
      // A pull that broke off before its first file was whole has no snapshot yet: list its
      // commit (from the manifest written first) as incomplete, with the bytes it has so far.
      const have = new Set(snaps.map((x) => x.commit));
      for (const m of await readdirOr(join(repoDir, 'manifests'))) {
        const commit = m.replace(/\.json$/, '');
        if (!COMMIT.test(commit) || have.has(commit)) continue;
        let bytes = 0;
        let modified = 0;
        for (const b of await readdirOr(join(repoDir, 'blobs'))) {
          if (!b.endsWith('.incomplete')) continue;
          const st = await stat(join(repoDir, 'blobs', b)).catch(() => null);
          if (st) {
            bytes += st.size;
            modified = Math.max(modified, st.mtimeMs);
          }
        }
        const named = [...refs].filter(([, c]) => c === commit).map(([n]) => n).sort();
        snaps.push({ repo, commit, refs: named, path: join(repoDir, 'snapshots', commit), files: [], bytes, complete: false, modified: new Date(modified) });
      }
    }
    out.push(...snaps.sort((a, b) => b.modified.getTime() - a.modified.getTime()));
  }
  return out;
}

export interface RemoveResult {
  /** The snapshots removed (whole), or those a file was removed from. */
  removed: CachedSnapshot[];
  /** Bytes of blobs deleted (blobs still used by another snapshot stay). */
  freedBytes: number;
}

/**
 * Removes `spec` from the cache: 'org/name' or 'hf:org/name' removes every snapshot of the repo
 * (and its partial downloads), '@revision' only the snapshot that branch, tag or commit (or a
 * commit prefix of 7+ characters) names, and 'hf:org/name/file' only that file. Blobs go when no
 * remaining snapshot points at them. Throws a HubError when nothing matches.
 */
export async function removeFromCache(spec: string, cacheDir = defaultCacheDir()): Promise<RemoveResult> {
  const parsed = parseModelSpec(spec.startsWith('hf:') ? spec : `hf:${spec}`);
  if (!parsed) throw new HubError(spec, `not a model name (${SPEC_HELP})`);
  const explicitRev = /@/.test(spec);
  const repoDir = repoCacheDir(cacheDir, parsed.repo);
  const all = (await listCache(cacheDir)).filter((s) => s.repo === parsed.repo);
  const name = `hf:${parsed.repo}${parsed.file ? `/${parsed.file}` : ''}${explicitRev ? `@${parsed.revision}` : ''}`;
  if (all.length === 0 && (await readdirOr(repoDir)).length === 0) throw new HubError(name, `not in the cache (${cacheDir}); \`slipstream list\` shows what is`);
  let chosen = all;
  if (explicitRev) {
    const r = parsed.revision;
    chosen = all.filter((s) => s.refs.includes(r) || s.commit === r || (r.length >= 7 && /^[0-9a-f]+$/.test(r) && s.commit.startsWith(r)));
    if (chosen.length === 0) {
      const have = all.map((s) => (s.refs.length ? s.refs.join(',') : s.commit.slice(0, 7))).join(', ') || 'none';
      throw new HubError(name, `revision ${r} is not in the cache (cached revisions: ${have})`);
    }
  }
  if (parsed.file) {
    chosen = chosen.filter((s) => s.files.includes(parsed.file!));
    if (chosen.length === 0) throw new HubError(name, `file ${parsed.file} is not in the cache`);
  }

  // Blobs before: which snapshots use which, so shared ones stay.
  const used = new Map<string, number>(); // blob realpath -> size
  const keep = new Set<string>();
  const removedPaths = new Set(chosen.map((s) => s.path));
  for (const s of all) {
    const { blobs } = await snapshotBlobs(s.path);
    const wholeGone = removedPaths.has(s.path) && !parsed.file;
    for (const [b, size] of blobs) {
      used.set(b, size);
      if (!wholeGone) keep.add(b);
    }
  }
  if (parsed.file) {
    // keep every blob except the file's in the chosen snapshots (unless another path uses it)
    for (const s of chosen) {
      const p = join(s.path, parsed.file);
      const blob = await realpath(p).catch(() => null);
      await rm(p, { force: true });
      if (blob) {
        keep.delete(blob);
        const again = await Promise.all(all.map((x) => snapshotBlobs(x.path)));
        if (again.some((x) => x.blobs.has(blob))) keep.add(blob);
      }
      if ((await snapshotBlobs(s.path)).files.length === 0) await rm(s.path, { recursive: true, force: true });
    }
  } else {
    for (const s of chosen) {
      await rm(s.path, { recursive: true, force: true });
      await rm(join(repoDir, 'manifests', `${s.commit}.json`), { force: true });
      for (const r of s.refs) await rm(join(repoDir, 'refs', r), { force: true });
    }
  }
  let freedBytes = 0;
  for (const [b, size] of used) {
    if (keep.has(b)) continue;
    await rm(b, { force: true });
    freedBytes += size;
  }
  // Nothing left of the repo (or the whole repo was asked for): remove its folder, partial downloads included.
  const left = (await listCache(cacheDir)).filter((s) => s.repo === parsed.repo);
  if (left.length === 0) {
    for (const b of await readdirOr(join(repoDir, 'blobs'))) {
      if (b.endsWith('.incomplete')) freedBytes += (await fileSize(join(repoDir, 'blobs', b))) ?? 0;
    }
    await rm(repoDir, { recursive: true, force: true });
  }
  return { removed: chosen, freedBytes };
}
