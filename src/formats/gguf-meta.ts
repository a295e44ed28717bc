// Typed accessors for GGUF metadata (a parsed file's, or a bare metadata map's): each checks
// the entry's type and raises a FormatError naming the file and the key. Kept apart from the
// reader and writer (gguf.ts, which re-exports them) so that model-config.ts can use them
// without importing the reader, which imports layout.ts, which imports model-config.ts.

import { FormatError } from './errors.ts';
import type { GgufMetaEntry, GgufMetadata, GgufValue } from './gguf-types.ts';

/** A parsed file (GgufFile) or just its metadata (errors name the file when it is known). */
export type GgufMetaSource = { path: string; metadata: GgufMetadata } | GgufMetadata;

// Which file a metadata map came from, so errors about a key can name it.
const metadataFile = new WeakMap<GgufMetadata, string>();

/** Records that `md` was read from `path` (the reader calls it), for error messages. */
export function nameMetadata(md: GgufMetadata, path: string): void {
  metadataFile.set(md, path);
}

function sourceOf(src: GgufMetaSource): { md: GgufMetadata; path: string } {
  if (src instanceof Map) return { md: src, path: metadataFile.get(src) ?? 'GGUF metadata' };
  return { md: src.metadata, path: src.path };
}

const NUMERIC = new Set(['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64', 'f32', 'f64']);

function describe(e: GgufMetaEntry): string {
  return e.type === 'array' ? `an array of ${e.itemType}` : `a ${e.type}`;
}

/** The value of `key`, or undefined when absent. */
export function getMeta(src: GgufMetaSource, key: string): GgufValue | undefined {
  return sourceOf(src).md.get(key)?.value;
}

/** Looks up `key`; returns undefined when absent and a fallback is given, throws when absent and none is. */
function lookup(src: GgufMetaSource, key: string, hasFallback: boolean): { e?: GgufMetaEntry; fail: (p: string) => never } {
  const { md, path } = sourceOf(src);
  const fail = (p: string): never => {
    throw new FormatError(path, `metadata key "${key}" ${p}`);
  };
  const e = md.get(key);
  if (!e && !hasFallback) fail('is required but missing');
  return { e, fail };
}

/** A numeric value (any integer or float type). u64/i64 values beyond 2^53 are an error. */
export function metaNumber(src: GgufMetaSource, key: string, fallback?: number): number {
  const { e, fail } = lookup(src, key, fallback !== undefined);
  if (!e) return fallback!;
  if (!NUMERIC.has(e.type)) fail(`is ${describe(e)}, expected a number`);
  if (typeof e.value !== 'number') fail(`value ${String(e.value)} does not fit a JS number exactly`);
  return e.value as number;
}

export function metaString(src: GgufMetaSource, key: string, fallback?: string): string {
  const { e, fail } = lookup(src, key, fallback !== undefined);
  if (!e) return fallback!;
  if (e.type !== 'string') fail(`is ${describe(e)}, expected a string`);
  return e.value as string;
}

export function metaBool(src: GgufMetaSource, key: string, fallback?: boolean): boolean {
  const { e, fail } = lookup(src, key, fallback !== undefined);
  if (!e) return fallback!;
  if (e.type !== 'bool') fail(`is ${describe(e)}, expected a bool`);
  return e.value as boolean;
}

/** An array value of any item type. */
export function metaArray(src: GgufMetaSource, key: string, fallback?: GgufValue[]): GgufValue[] {
  const { e, fail } = lookup(src, key, fallback !== undefined);
  if (!e) return fallback!;
  if (e.type !== 'array') fail(`is ${describe(e)}, expected an array`);
  return e.value as GgufValue[];
}

/** An array of strings (e.g. tokenizer.ggml.tokens). */
export function metaStringArray(src: GgufMetaSource, key: string, fallback?: string[]): string[] {
  const { e, fail } = lookup(src, key, fallback !== undefined);
  if (!e) return fallback!;
  if (e.type !== 'array' || e.itemType !== 'string') fail(`is ${describe(e)}, expected an array of string`);
  return e.value as string[];
}

/** An array of numbers (any numeric item type; 64-bit items beyond 2^53 are an error). */
export function metaNumberArray(src: GgufMetaSource, key: string, fallback?: number[]): number[] {
  const { e, fail } = lookup(src, key, fallback !== undefined);
  if (!e) return fallback!;
  if (e.type !== 'array' || !NUMERIC.has(e.itemType!)) fail(`is ${describe(e)}, expected an array of numbers`);
  const v = e.value as GgufValue[];
  const bad = v.findIndex((x) => typeof x !== 'number');
  if (bad >= 0) fail(`item ${bad} (${String(v[bad])}) does not fit a JS number exactly`);
  return v as number[];
}
