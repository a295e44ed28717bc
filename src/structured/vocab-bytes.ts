// The bytes each token adds to the text, from a Hugging Face tokenizer: what TokenVocabulary
// wants. Decoding a token alone is not it (partial UTF-8 comes back as U+FFFD, SentencePiece
// decoders drop a leading space), so the pieces are mapped the way the decoder would map them
// inside a longer text:
//   - ByteLevel decoder (GPT-2, Llama 3, Qwen): each piece character stands for one byte through
//     GPT-2's bytes_to_unicode table;
//   - otherwise (SentencePiece: Metaspace / Replace decoders, ByteFallback): '<0xNN>' is the byte
//     NN when the decoder has ByteFallback, and '▁' is a space;
//   - added tokens: their content as UTF-8; special ones (BOS, EOS, control tokens): null, never
//     allowed by a constraint.

import type { Tokenizer } from '../formats/tokenizer.ts';
import { TokenVocabulary } from './tokens.ts';

/** The parts of Tokenizer this needs (a stub will do in tests). */
export type TokenizerLike = Pick<Tokenizer, 'json' | 'vocabSize' | 'idToToken' | 'isSpecial' | 'addedTokens'>;

/** GPT-2's bytes_to_unicode, inverted: piece character -> byte. */
function byteLevelInverse(): Map<number, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const inv = new Map<number, number>();
  for (const b of printable) inv.set(b, b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!inv.has(b)) inv.set(256 + n++, b);
  return inv;
}

/** Decoder types named in tokenizer.json's decoder (a Sequence is flattened). */
function decoderTypes(json: unknown): Set<string> {
  const out = new Set<string>();
  const visit = (d: unknown) => {
    if (!d || typeof d !== 'object') return;
    const o = d as { type?: unknown; decoders?: unknown };
    if (typeof o.type === 'string') out.add(o.type);
    if (Array.isArray(o.decoders)) o.decoders.forEach(visit);
  };
  visit((json as { decoder?: unknown } | null)?.decoder);
  return out;
}

/** Per token id: the bytes it adds to a text, or null (special / unknown: never allowed). */
export function tokenBytes(tok: TokenizerLike): (Uint8Array | null)[] {
  const types = decoderTypes(tok.json);
  const byteLevel = types.has('ByteLevel');
  const byteFallback = types.has('ByteFallback');
  const inv = byteLevel ? byteLevelInverse() : null;
  const added = tok.addedTokens();
  const enc = new TextEncoder();
  const out: (Uint8Array | null)[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    const piece = tok.idToToken(id);
    const a = added.get(id);
    if (piece === undefined || tok.isSpecial(id) || a?.special) {
      out.push(null);
      continue;
    }
    if (a) {
      out.push(enc.encode(a.content));
      continue;
    }
    if (inv) {
      const bytes: number[] = [];
      for (const ch of piece) {
        const b = inv.get(ch.codePointAt(0)!);
        if (b === undefined) break;
        bytes.push(b);
      }
      out.push(bytes.length === [...piece].length ? Uint8Array.from(bytes) : enc.encode(piece));
      continue;
    }
    const m = byteFallback ? /^<0x([0-9A-Fa-f]{2})>$/.exec(piece) : null;
    out.push(m ? Uint8Array.of(parseInt(m[1], 16)) : enc.encode(piece.replace(/\u2581/g, ' ')));
  }
  return out;
}

const vocabs = new WeakMap<object, TokenVocabulary>();

/** The TokenVocabulary of a tokenizer, built once per tokenizer object. */
export function vocabularyFor(tok: TokenizerLike): TokenVocabulary {
  let v = vocabs.get(tok);
  if (!v) vocabs.set(tok, (v = new TokenVocabulary(tokenBytes(tok))));
  return v;
}
