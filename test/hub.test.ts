// Hub download against a local mock hub (test/helpers/mock-hub.ts): cache layout, cache hits,
// offline use, resume, checksums, auth, not-found errors, revisions, single GGUF files, and the
// progress helper. No test touches the network.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { downloadModel, HubError, parseModelSpec, repoCacheDir } from '../src/formats/hub.ts';
import { createProgress, formatBytes } from '../src/formats/progress.ts';
import { MockHub, type MockFile } from './helpers/mock-hub.ts';

// The developer's own hub settings must not leak into the tests.
for (const k of ['HF_TOKEN', 'HF_ENDPOINT', 'HF_HUB_OFFLINE', 'SLIPSTREAM_CACHE']) delete process.env[k];

/** Deterministic pseudo-random bytes (a weight shard stand-in). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: string) => createHash('sha1').update(`blob ${Buffer.byteLength(b)}\0`).update(b).digest('hex');

const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const CONFIG = JSON.stringify({ model_type: 'llama', hidden_size: 64 });
const TOKENIZER = JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } });
const INDEX = JSON.stringify({ weight_map: { 'a.weight': SHARD1, 'b.weight': SHARD2 } });
const S1 = bytes(300_000, 1);
const S2 = bytes(200_000, 2);

const TINY: MockFile[] = [
  { path: 'config.json', content: CONFIG },
  { path: 'tokenizer.json', content: TOKENIZER },
  { path: 'model.safetensors.index.json', content: INDEX },
  { path: SHARD1, content: S1, lfs: true },
  { path: SHARD2, content: S2, lfs: true },
  { path: 'README.md', content: '# tiny' }, // not a model file: never fetched by default
  { path: 'original/consolidated.safetensors', content: bytes(1000, 3), lfs: true }, // subfolder copy: skipped
];
const TINY_FILES = ['config.json', 'model.safetensors.index.json', SHARD1, SHARD2, 'tokenizer.json'].sort();

let hub: MockHub;
let tinyCommit: string;
let cache: string;
const caches: string[] = [];

function newCache(): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-hub-'));
  caches.push(dir);
  return dir;
}

/** Options for a quiet download from the mock hub into the current test's cache. */
const opts = (extra: Parameters<typeof downloadModel>[1] = {}) => ({ endpoint: hub.url, cacheDir: cache, progress: false, ...extra });

/** Resolves to the HubError `p` rejects with. */
async function rejection(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HubError, `expected a HubError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

function assertTinySnapshot(dir: string): void {
  assert.deepEqual(readdirSync(dir).sort(), TINY_FILES);
  assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), CONFIG);
  assert.equal(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), TOKENIZER);
  assert.deepEqual(new Uint8Array(readFileSync(join(dir, SHARD1))), S1);
  assert.deepEqual(new Uint8Array(readFileSync(join(dir, SHARD2))), S2);
}

before(async () => {
  hub = await MockHub.start();
  tinyCommit = hub.addRepo('org/tiny', TINY);
});

after(async () => {
  await hub.close();
  for (const d of caches) rmSync(d, { recursive: true, force: true });
});

beforeEach(() => {
  hub.reset();
  cache = newCache();
});

afterEach(() => {
  for (const k of ['HF_TOKEN', 'HF_ENDPOINT', 'HF_HUB_OFFLINE', 'SLIPSTREAM_CACHE']) delete process.env[k];
});

describe('parseModelSpec', () => {
  it('reads repo, revision and file; null for non-hub specs', () => {
    assert.deepEqual(parseModelSpec('hf:org/name'), { repo: 'org/name', revision: 'main' });
    assert.deepEqual(parseModelSpec('hf:org/name@v1.0'), { repo: 'org/name', revision: 'v1.0' });
    assert.deepEqual(parseModelSpec('hf:org/name@refs/pr/1'), { repo: 'org/name', revision: 'refs/pr/1' });
    assert.deepEqual(parseModelSpec('hf:org/name/q8_0.gguf'), { repo: 'org/name', revision: 'main', file: 'q8_0.gguf' });
    assert.deepEqual(parseModelSpec('hf:org/name/sub/m.gguf@abc'), { repo: 'org/name', revision: 'abc', file: 'sub/m.gguf' });
    assert.equal(parseModelSpec('./models/llama'), null);
    assert.equal(parseModelSpec('org/name'), null);
  });

  it('rejects malformed hub specs with a clear error', () => {
    for (const [spec, re] of [
      ['hf:name', /missing repository name/],
      ['hf:org/', /missing repository name/],
      ['hf:org/na me', /bad repository name/],
      ['hf:org--x/name', /bad repository name/],
      ['hf:org/name@', /bad revision/],
      ['hf:org/name@../x', /bad revision/],
      ['hf:org/name/../../etc/passwd', /bad file path/],
    ] as const) {
      assert.throws(() => parseModelSpec(spec), (e: Error) => e instanceof HubError && re.test(e.message) && e.message.startsWith(spec), spec);
    }
  });
});

describe('downloadModel', () => {
  it('downloads a model into the huggingface_hub cache layout', async () => {
    const dir = await downloadModel('hf:org/tiny', opts());
    const repoDir = repoCacheDir(cache, 'org/tiny');
    assert.equal(repoDir, join(cache, 'models--org--tiny'));
    assert.equal(dir, join(repoDir, 'snapshots', tinyCommit));
    assertTinySnapshot(dir);
    assert.equal(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), tinyCommit);

    // Snapshot entries are symlinks to blobs named by sha256 (LFS) or git blob sha1 (regular).
    assert.ok(lstatSync(join(dir, SHARD1)).isSymbolicLink());
    assert.equal(readlinkSync(join(dir, SHARD1)), join('..', '..', 'blobs', sha256(S1)));
    assert.ok(existsSync(join(repoDir, 'blobs', gitSha1(CONFIG))));
    assert.ok(!readdirSync(join(repoDir, 'blobs')).some((n) => n.endsWith('.incomplete')));

    // One listing call with ?blobs=true, then exactly the five model files.
    const api = hub.requests.filter((r) => r.path.startsWith('/api/'));
    assert.deepEqual(api.map((r) => r.path), ['/api/models/org/tiny/revision/main']);
    const got = hub.downloads().map((r) => r.path.split('/').pop()).sort();
    assert.deepEqual(got, TINY_FILES);
  });

  it('serves a second call from the cache with no file download', async () => {
    await downloadModel('hf:org/tiny', opts());
    hub.reset();
    const dir = await downloadModel('hf:org/tiny', opts());
    assertTinySnapshot(dir);
    assert.equal(hub.downloads().length, 0);
    assert.ok(hub.requests.length <= 1, `expected at most the listing call, saw ${hub.requests.length}`);
  });

  it('relinks a snapshot from cached blobs when another revision shares them', async () => {
    await downloadModel('hf:org/tiny', opts());
    // Same files under a new commit (a tag): nothing to download, only new links.
    const tagCommit = hub.addRepo('org/tiny', TINY, 'v2');
    hub.reset();
    const dir = await downloadModel('hf:org/tiny@v2', opts());
    assert.equal(dir, join(repoCacheDir(cache, 'org/tiny'), 'snapshots', tagCommit));
    assertTinySnapshot(dir);
    assert.equal(hub.downloads().length, 0);
  });

  it('works offline from the cache: offline option, HF_HUB_OFFLINE, or hub unreachable', async () => {
    const online = await downloadModel('hf:org/tiny', opts());
    const other = await MockHub.start();
    const deadEndpoint = other.url;
    await other.close(); // nothing listens there any more: connection refused

    assert.equal(await downloadModel('hf:org/tiny', opts({ offline: true, endpoint: deadEndpoint })), online);
    process.env.HF_HUB_OFFLINE = '1';
    assert.equal(await downloadModel('hf:org/tiny', opts({ endpoint: deadEndpoint })), online);
    delete process.env.HF_HUB_OFFLINE;
    assert.equal(await downloadModel('hf:org/tiny', opts({ endpoint: deadEndpoint })), online);
    assertTinySnapshot(online);
    // A pinned commit needs no ref.
    assert.equal(await downloadModel(`hf:org/tiny@${tinyCommit}`, opts({ offline: true })), online);
  });

  it('offline with an empty cache, or a partial snapshot, says so and where the cache is', async () => {
    let e = await rejection(downloadModel('hf:org/tiny', opts({ offline: true })));
    assert.match(e.message, /^hf:org\/tiny@main: offline mode is on .*not in the cache/);
    assert.ok(e.message.includes(join(cache, 'models--org--tiny')), e.message);

    const other = await MockHub.start();
    const deadEndpoint = other.url;
    await other.close();
    e = await rejection(downloadModel('hf:org/tiny', opts({ endpoint: deadEndpoint })));
    assert.match(e.message, /cannot reach http:\/\/127\.0\.0\.1:\d+ .*not in the cache/);

    // A snapshot missing a shard is not served offline.
    const dir = await downloadModel('hf:org/tiny', opts());
    rmSync(join(dir, SHARD2));
    e = await rejection(downloadModel('hf:org/tiny', opts({ offline: true })));
    assert.match(e.message, new RegExp(`lacks ${SHARD2}`));
  });

  it('resumes an interrupted download with a Range request', async () => {
    hub.knobs.redirect = 'other-host'; // resume against the CDN, as on the real hub
    hub.failNext(100_000);
    const dir = await downloadModel('hf:org/tiny', opts());
    assertTinySnapshot(dir);
    // The Range goes to the hub's resolve URL and along its redirect to the CDN.
    const ranged = hub.requests.filter((r) => r.range);
    assert.deepEqual(ranged.map((r) => `${r.server} ${r.range}`), ['hub bytes=100000-', 'cdn bytes=100000-']);
    const total = S1.length + S2.length + CONFIG.length + TOKENIZER.length + INDEX.length;
    assert.equal(hub.bytesSent, total, 'every byte sent once');
    assert.ok(hub.bytesSent < 2 * total);
  });

  it('retries when the connection is reset mid-file', async () => {
    hub.failNext(100_000, 2, 'reset');
    assertTinySnapshot(await downloadModel('hf:org/tiny', opts()));
    const tries = hub.downloads().filter((r) => r.path.endsWith(SHARD1));
    assert.equal(tries.length, 3);
  });

  it('resumes a download an earlier run left unfinished', async () => {
    hub.failNext(40_000, 4); // every try of the first run breaks off
    const e = await rejection(downloadModel('hf:org/tiny', opts()));
    assert.match(e.message, /download failed after 4 tries .*run again to resume/);
    const partial = join(repoCacheDir(cache, 'org/tiny'), 'blobs', `${sha256(S1)}.incomplete`);
    assert.equal(statSync(partial).size, 160_000);
    assert.ok(!existsSync(join(repoCacheDir(cache, 'org/tiny'), 'refs', 'main')), 'no ref to a partial snapshot');

    hub.reset();
    assertTinySnapshot(await downloadModel('hf:org/tiny', opts()));
    assert.deepEqual(hub.requests.filter((r) => r.range).map((r) => r.range), ['bytes=160000-']);
    assert.ok(hub.bytesSent < S1.length + S2.length, 'the second run did not fetch the first 160 kB again');
  });

  it('restarts cleanly when the server ignores Range', async () => {
    hub.knobs.ignoreRange = true;
    hub.failNext(100_000);
    const dir = await downloadModel('hf:org/tiny', opts());
    assertTinySnapshot(dir);
    assert.equal(hub.count((r) => r.range === 'bytes=100000-'), 1, 'it asked to resume');
    assert.ok(hub.bytesSent >= S1.length + S2.length + 100_000, 'the server sent the whole file again');
  });

  it('rejects a checksum mismatch, deleting the download and leaving no snapshot file', async () => {
    hub.knobs.corrupt = new Set([SHARD2]);
    const e = await rejection(downloadModel('hf:org/tiny', opts()));
    assert.match(e.message, new RegExp(`^hf:org/tiny/${SHARD2}@main: checksum mismatch: expected sha256 ${sha256(S2)}, got [0-9a-f]{64}`));
    const repoDir = repoCacheDir(cache, 'org/tiny');
    assert.ok(!existsSync(join(repoDir, 'snapshots', tinyCommit, SHARD2)));
    assert.ok(!existsSync(join(repoDir, 'blobs', sha256(S2))));
    assert.ok(!existsSync(join(repoDir, 'blobs', `${sha256(S2)}.incomplete`)));
    assert.ok(!existsSync(join(repoDir, 'refs', 'main')));

    // Regular files are checked against their git blob id.
    hub.knobs.corrupt = new Set(['config.json']);
    cache = newCache();
    const e2 = await rejection(downloadModel('hf:org/tiny', opts()));
    assert.match(e2.message, new RegExp(`^hf:org/tiny/config.json@main: checksum mismatch: expected git blob sha1 ${gitSha1(CONFIG)}`));

    hub.reset(); // the hub serves good bytes again: the same cache recovers
    assertTinySnapshot(await downloadModel('hf:org/tiny', opts()));
  });

  it('needs HF_TOKEN for a private repo, and sends it only to the hub', async () => {
    hub.knobs.token = 'hf_secret';
    let e = await rejection(downloadModel('hf:org/tiny', opts()));
    assert.equal(e.status, 401);
    assert.match(e.message, /private or gated.*set HF_TOKEN/);

    e = await rejection(downloadModel('hf:org/tiny', opts({ token: 'hf_wrong' })));
    assert.match(e.message, /denied with the given token.*HF_TOKEN/);

    hub.knobs.redirect = 'other-host';
    process.env.HF_TOKEN = 'hf_secret';
    const mark = hub.requests.length;
    assertTinySnapshot(await downloadModel('hf:org/tiny', opts()));
    const seen = hub.requests.slice(mark);
    assert.equal(seen.filter((r) => r.server === 'cdn').length, 2, 'the shards came from the CDN');
    assert.ok(seen.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined), 'no token sent to the CDN');
    assert.ok(seen.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_secret'));
  });

  it('names a missing repository, revision or file', async () => {
    let e = await rejection(downloadModel('hf:org/missing', opts()));
    assert.match(e.message, /^hf:org\/missing@main: repository org\/missing not found/);
    e = await rejection(downloadModel('hf:org/tiny@nope', opts()));
    assert.match(e.message, /revision nope not found in repository org\/tiny/);
    e = await rejection(downloadModel('hf:org/tiny/nope.gguf', opts()));
    assert.match(e.message, /file nope.gguf not found in org\/tiny at revision main/);
    assert.equal(hub.downloads().length, 0);
  });

  it('pins a revision: refs/<rev> holds its commit and the snapshot holds its files', async () => {
    const v1Config = JSON.stringify({ model_type: 'llama', hidden_size: 32 });
    const v1 = hub.addRepo('org/pinned', [{ path: 'config.json', content: v1Config }, { path: 'model.safetensors', content: bytes(5000, 9), lfs: true }], 'v1');
    const main = hub.addRepo('org/pinned', [{ path: 'config.json', content: CONFIG }, { path: 'model.safetensors', content: bytes(6000, 8), lfs: true }]);
    const repoDir = repoCacheDir(cache, 'org/pinned');

    const dir = await downloadModel('hf:org/pinned@v1', opts());
    assert.equal(dir, join(repoDir, 'snapshots', v1));
    assert.equal(readFileSync(join(repoDir, 'refs', 'v1'), 'utf8'), v1);
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), v1Config);
    assert.ok(!existsSync(join(repoDir, 'refs', 'main')));

    const mainDir = await downloadModel('hf:org/pinned', opts());
    assert.equal(mainDir, join(repoDir, 'snapshots', main));
    assert.equal(readFileSync(join(mainDir, 'config.json'), 'utf8'), CONFIG);
    // A commit works as a revision too, and needs no ref.
    assert.equal(await downloadModel(`hf:org/pinned@${v1}`, opts()), dir);
    assert.deepEqual(readdirSync(join(repoDir, 'refs')).sort(), ['main', 'v1']);
  });

  it('asks for a file name when the repo holds only GGUF files, then fetches just that file', async () => {
    const q8 = bytes(70_000, 5);
    hub.addRepo('org/gguf', [
      { path: 'README.md', content: '# ggufs' },
      { path: 'm-Q4_K_M.gguf', content: bytes(50_000, 4), lfs: true },
      { path: 'm-Q8_0.gguf', content: q8, lfs: true },
    ]);
    const e = await rejection(downloadModel('hf:org/gguf', opts()));
    assert.match(e.message, /GGUF files only; name the one to use, e.g. hf:org\/gguf\/m-Q4_K_M.gguf \(available: m-Q4_K_M.gguf, m-Q8_0.gguf\)/);

    hub.reset();
    const file = await downloadModel('hf:org/gguf/m-Q8_0.gguf', opts());
    assert.ok(file.endsWith(join('snapshots', readFileSync(join(repoCacheDir(cache, 'org/gguf'), 'refs', 'main'), 'utf8'), 'm-Q8_0.gguf')));
    assert.deepEqual(new Uint8Array(readFileSync(file)), q8);
    assert.deepEqual(hub.downloads().map((r) => r.path), ['/org/gguf/resolve/' + file.split('/').at(-2) + '/m-Q8_0.gguf']);
    assert.equal(await downloadModel('hf:org/gguf/m-Q8_0.gguf', opts({ offline: true })), file);
  });

  it('falls back to HEAD metadata (weak ETags, same-host redirects) when the listing has none', async () => {
    hub.knobs.noBlobsMetadata = true;
    hub.knobs.weakEtags = true;
    hub.knobs.redirect = 'same-host';
    const dir = await downloadModel('hf:org/tiny', opts());
    assertTinySnapshot(dir);
    assert.equal(hub.count((r) => r.method === 'HEAD' && r.server === 'hub' && r.path.includes('/resolve/')), TINY_FILES.length);
    assert.ok(existsSync(join(repoCacheDir(cache, 'org/tiny'), 'blobs', sha256(S1))), 'blob named by the X-Linked-Etag');

    cache = newCache();
    hub.knobs.corrupt = new Set([SHARD1]);
    const e = await rejection(downloadModel('hf:org/tiny', opts()));
    assert.match(e.message, /checksum mismatch: expected sha256/);
  });

  it('takes the cache folder and endpoint from SLIPSTREAM_CACHE and HF_ENDPOINT, and a custom include', async () => {
    process.env.SLIPSTREAM_CACHE = cache;
    process.env.HF_ENDPOINT = hub.url + '/';
    const dir = await downloadModel('hf:org/tiny', { progress: false, include: (p) => p === 'config.json' || p === 'README.md' });
    assert.ok(dir.startsWith(join(cache, 'models--org--tiny', 'snapshots')));
    assert.deepEqual(readdirSync(dir).sort(), ['README.md', 'config.json']);

    process.env.HF_ENDPOINT = 'huggingface.co';
    const e = await rejection(downloadModel('hf:org/tiny', { progress: false }));
    assert.match(e.message, /^HF_ENDPOINT: 'huggingface.co' is not an http\(s\) URL/);
  });

  it('does not trust a partial file it cannot account for', async () => {
    // A leftover .incomplete longer than the file is discarded, not resumed.
    const blobs = join(repoCacheDir(cache, 'org/tiny'), 'blobs');
    await downloadModel('hf:org/tiny', opts({ include: (p) => p === 'config.json' }));
    writeFileSync(join(blobs, `${sha256(S2)}.incomplete`), bytes(S2.length + 10, 7));
    hub.reset();
    assertTinySnapshot(await downloadModel('hf:org/tiny', opts()));
    assert.equal(hub.count((r) => r.range !== undefined), 0);
  });
});

describe('createProgress', () => {
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    const stream = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          chunks.push(String(chunk));
          cb();
        },
      }),
      { isTTY },
    );
    return { stream, text: () => chunks.join('') };
  };

  it('prints one summary line when the stream is not a terminal', () => {
    const out = sink(false);
    const p = createProgress('model.safetensors', 2_500_000, { stream: out.stream });
    p.update(1_000_000);
    p.increment(1_500_000);
    assert.equal(out.text(), '', 'no redraws on a non-terminal');
    p.stop();
    p.stop();
    assert.match(out.text(), /^model\.safetensors: 2\.5 MB in \d+\.\d s, .*\/s\n$/);
  });

  it('is silent when disabled, and counts items', () => {
    const off = sink(false);
    const p = createProgress('x', 10, { enabled: false, stream: off.stream });
    p.increment(10);
    p.stop();
    assert.equal(off.text(), '');

    const items = sink(false);
    const q = createProgress('steps', 3, { unit: 'items', stream: items.stream });
    q.increment(1);
    q.increment(2);
    q.stop();
    assert.match(items.text(), /^steps: 3 in /);
  });

  it('formats byte sizes', () => {
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1500), '1.5 kB');
    assert.equal(formatBytes(2_500_000_000), '2.5 GB');
  });
});
