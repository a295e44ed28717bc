// Model management as Ollama users know it, over the Hugging Face-layout cache that
// `--model hf:...` already fills (src/formats/hub.ts):
//
//   slipstream pull hf:org/name[@rev]   download (progress bars; an interrupted pull resumes)
//   slipstream list                     cached models: name, revision, size, family, quantization
//   slipstream rm hf:org/name[@rev]     remove a model and the blobs no other snapshot uses

import { open as openFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultCacheDir, downloadModel, listCache, parseModelSpec, removeFromCache, type CachedSnapshot } from '../formats/hub.ts';
import { formatBytes } from '../formats/progress.ts';
import { readGguf } from '../formats/gguf.ts';
import { UsageError } from '../errors.ts';

/** 'org/name' or 'hf:org/name...' -> 'hf:org/name...' (a bare name is a hub repo, as in `ollama pull`). */
function hubSpec(name: string): string {
  const spec = name.startsWith('hf:') ? name : `hf:${name}`;
  if (!/^hf:[^/]+\/[^/]/.test(spec)) throw new UsageError(`'${name}' is not a model name: expected hf:org/name[/file.gguf][@revision]`);
  parseModelSpec(spec); // a malformed name throws a HubError naming the problem
  return spec;
}

export interface PullOptions {
  /** Progress bars (default true; one line per file when stderr is not a terminal). */
  progress?: boolean;
}

export async function pullCommand(name: string, o: PullOptions = {}): Promise<void> {
  const spec = hubSpec(name);
  const t0 = performance.now();
  const path = await downloadModel(spec, { progress: o.progress !== false });
  const parsed = parseModelSpec(spec)!;
  const snap = (await listCache()).find((s) => path === s.path || path.startsWith(s.path + '/'));
  const info = snap ? await describeSnapshot(snap) : null;
  const facts = info ? [`commit ${snap!.commit.slice(0, 7)}`, formatBytes(snap!.bytes), info.family, info.quantization].filter((x) => x && x !== '-').join(', ') : '';
  process.stderr.write(`pulled hf:${parsed.repo}${parsed.file ? `/${parsed.file}` : ''}@${parsed.revision}${facts ? ` (${facts})` : ''} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  process.stdout.write(`${path}\n`);
}

/** What `list` shows of a snapshot's model: family and quantization, from its own files. */
export interface ModelFacts {
  family: string;
  quantization: string;
}

/** Dtype of most weight bytes in a safetensors file, from its header only. */
async function safetensorsDtypes(path: string, bytesByType: Map<string, number>): Promise<void> {
  const fh = await openFile(path, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    if (n <= 0 || n > 100_000_000) return;
    const head = Buffer.alloc(n);
    await fh.read(head, 0, n, 8);
    const header = JSON.parse(head.toString('utf8')) as Record<string, { dtype?: string; data_offsets?: [number, number] }>;
    for (const [k, t] of Object.entries(header)) {
      if (k === '__metadata__' || !t.dtype || !t.data_offsets) continue;
      const d = t.dtype.toLowerCase();
      bytesByType.set(d, (bytesByType.get(d) ?? 0) + (t.data_offsets[1] - t.data_offsets[0]));
    }
  } finally {
    await fh.close();
  }
}

const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1])[0]?.[0];

export async function describeSnapshot(s: CachedSnapshot): Promise<ModelFacts> {
  let family = '-';
  let quantization = '-';
  try {
    const cfg = JSON.parse(await readFile(join(s.path, 'config.json'), 'utf8')) as { model_type?: string; quantization_config?: { quant_method?: string; bits?: number }; torch_dtype?: string };
    if (typeof cfg.model_type === 'string') family = cfg.model_type;
    const q = cfg.quantization_config;
    if (q?.quant_method) quantization = `${q.quant_method}${q.bits ? ` ${q.bits}-bit` : ''}`;
  } catch {
    // no config.json: a GGUF file, or a partial download
  }
  const bytesByType = new Map<string, number>();
  for (const f of s.files) {
    const p = join(s.path, f);
    try {
      if (f.endsWith('.safetensors') && quantization === '-') await safetensorsDtypes(p, bytesByType);
      else if (f.endsWith('.gguf')) {
        const g = readGguf(p);
        const arch = g.metadata.get('general.architecture');
        if (family === '-' && arch?.type === 'string') family = String(arch.value);
        for (const t of g.tensors.values()) if (t.dims.length >= 2) bytesByType.set(t.typeName.toLowerCase(), (bytesByType.get(t.typeName.toLowerCase()) ?? 0) + t.nbytes);
      }
    } catch {
      // an unreadable file: `list` still shows the rest
    }
  }
  if (quantization === '-') quantization = top(bytesByType) ?? '-';
  return { family, quantization };
}

function ago(d: Date): string {
  const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
  if (s < 60) return 'just now';
  const [n, u] = s < 3600 ? [s / 60, 'minute'] : s < 86400 ? [s / 3600, 'hour'] : s < 86400 * 60 ? [s / 86400, 'day'] : [s / 86400 / 30, 'month'];
  const k = Math.floor(n);
  return `${k} ${u}${k === 1 ? '' : 's'} ago`;
}

/** The name a user passes back to --model, pull and rm. */
function nameOf(s: CachedSnapshot): string {
  const gguf = s.files.filter((f) => f.endsWith('.gguf'));
  const hasSafetensors = s.files.some((f) => f.endsWith('.safetensors'));
  return `hf:${s.repo}${!hasSafetensors && gguf.length === 1 ? `/${gguf[0]}` : ''}`;
}

export async function listCommand(o: { json?: boolean } = {}): Promise<void> {
  const cache = defaultCacheDir();
  const snaps = await listCache(cache);
  const rows = await Promise.all(
    snaps.map(async (s) => {
      const f = await describeSnapshot(s);
      return { name: nameOf(s), revision: s.refs.length ? s.refs.join(',') : s.commit.slice(0, 7), commit: s.commit, bytes: s.bytes, size: formatBytes(s.bytes), family: f.family, quantization: f.quantization, modified: s.modified, complete: s.complete, path: s.path };
    }),
  );
  if (o.json) {
    process.stdout.write(JSON.stringify(rows.map((r) => ({ ...r, modified: r.modified.toISOString() })), null, 1) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stderr.write(`no models in ${cache} (\`slipstream pull hf:org/name\` downloads one)\n`);
    return;
  }
  const table = [['NAME', 'REVISION', 'COMMIT', 'SIZE', 'FAMILY', 'QUANT', 'MODIFIED'], ...rows.map((r) => [r.name, r.revision, r.commit.slice(0, 7), r.size, r.family, r.quantization, ago(r.modified) + (r.complete ? '' : ' (incomplete: pull again to resume)')])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) process.stdout.write(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ') + '\n');
}

export async function rmCommand(names: string[]): Promise<void> {
  if (names.length === 0) throw new UsageError('name a model to remove: slipstream rm hf:org/name[@revision]');
  for (const name of names) {
    const spec = hubSpec(name);
    const r = await removeFromCache(spec);
    const what = r.removed.map((s) => (s.refs.length ? s.refs.join(',') : s.commit.slice(0, 7))).join(', ');
    process.stderr.write(`removed ${spec}${what ? ` (${what})` : ''}, freed ${formatBytes(r.freedBytes)}\n`);
  }
}
