// GGUF value and tensor types shared by the reader, the writer and the tokenizer/metadata
// converters. Spec: GGUF v3 (ggml's docs/gguf.md). Metadata entries keep their on-disk type so
// a file read and written back is byte-for-byte the same metadata.

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64' | 'bool' | 'string';

/** Numbers for 8-64 bit types; u64/i64 come back as number when exactly representable, else bigint. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufMetaEntry {
  type: GgufScalarType | 'array';
  /** Element type when type === 'array' (nested arrays are rejected). */
  itemType?: GgufScalarType;
  value: GgufValue;
}

export type GgufMetadata = Map<string, GgufMetaEntry>;

/** Convenience constructors for writers. */
export const meta = {
  str: (value: string): GgufMetaEntry => ({ type: 'string', value }),
  u32: (value: number): GgufMetaEntry => ({ type: 'u32', value }),
  i32: (value: number): GgufMetaEntry => ({ type: 'i32', value }),
  f32: (value: number): GgufMetaEntry => ({ type: 'f32', value }),
  bool: (value: boolean): GgufMetaEntry => ({ type: 'bool', value }),
  arr: (itemType: GgufScalarType, value: GgufValue[]): GgufMetaEntry => ({ type: 'array', itemType, value }),
};
