// Token masks: which token ids may come next in a matcher state.
//
// The vocabulary gives each token id either its bytes (Uint8Array: exact, including byte-level
// and byte-fallback pieces of a multi-byte character) or its decoded text (string: used as its
// UTF-8 bytes). A text containing U+FFFD can't be told apart from partial UTF-8 whose bytes we
// don't know, so such ids, and ids with no bytes at all ('' : specials, control tokens), are
// never allowed; pass bytes for byte tokens to have them allowed exactly when they continue a
// character validly (the matcher runs on UTF-8 bytes, so a state may sit inside a character).
//
// Candidates are stored in a trie over bytes, flattened in preorder: a node's subtree is the
// index range [i, end[i]), so a mask walk is one linear pass that skips a whole subtree as soon
// as the matcher rejects its first byte (shared prefixes are matched once). Masks are cached per
// interned matcher state (the state id is the canonical key), bounded by an LRU; below that,
// the context-independent part of a mask is cached per local state (see LocalMask).

import { normRanges, utf8Of } from './grammar.ts';
import { DEAD, FINAL, LIVE, POPPED, type GrammarEngine } from './matcher.ts';

/**
 * Context-independent part of the masks of every state with the same top frames (keyed by the
 * engine's local state): tokens accepted whatever the return context, and the trie nodes
 * below which a token may pop into the context (those subtrees are re-walked with the real
 * state). Only that remainder depends on the full stack.
 */
interface LocalMask {
  accepted: Uint32Array; //   [words] bitmask of context-independently accepted tokens
  popNodes: Int32Array; //    trie nodes whose prefix pops into the context (no nesting)
  popPrefix: Uint8Array[]; // [popNodes] bytes from the root to that node
}

const encoder = new TextEncoder();

/** A vocabulary's token bytes + their trie. Build once per model and share it. */
export class TokenVocabulary {
  readonly size: number; //              number of token ids
  readonly bytes: (Uint8Array | null)[]; // [ids] token bytes; null: never allowed
  // trie, nodes in preorder; node 0 is the root (empty prefix)
  readonly byte: Uint8Array; //          [nodes] byte on the edge into the node
  readonly depth: Int32Array; //         [nodes] prefix length in bytes
  readonly end: Int32Array; //           [nodes] one past the node's last descendant
  readonly tokStart: Int32Array; //      [nodes + 1] CSR offsets into tokIds
  readonly tokIds: Int32Array; //        token ids whose bytes end at each node
  readonly maxDepth: number;
  /**
   * Code-point ranges the vocabulary can always spell one token at a time: characters that are
   * a token by themselves, and, when every non-ASCII lead and continuation byte is a token of
   * its own, all of Unicode. Token constraints restrict their grammar to these characters, so
   * from every state the grammar admits some sequence of such tokens reaches the end: masks are
   * never empty before completion, whatever characters the vocabulary lacks.
   */
  readonly alphabet: number[];

  /** @param tokens per id: bytes, or decoded text; `exclude`: ids never to allow (e.g. EOS). */
  constructor(tokens: readonly (string | Uint8Array | null | undefined)[], exclude: Iterable<number> = []) {
    this.size = tokens.length;
    const skip = new Set(exclude);
    this.bytes = tokens.map((t, id) => {
      if (skip.has(id) || t == null || t.length === 0) return null;
      if (typeof t === 'string') return t.includes('\ufffd') ? null : encoder.encode(t);
      return t;
    });
    const ids: number[] = [];
    for (let id = 0; id < this.size; id++) if (this.bytes[id]) ids.push(id);
    // sort by bytes (as latin1 strings: same order), so shared prefixes are adjacent
    const key = this.bytes.map((b) => (b ? Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1') : ''));
    ids.sort((a, b) => (key[a] < key[b] ? -1 : key[a] > key[b] ? 1 : a - b));
    const byte: number[] = [0];
    const depth: number[] = [0];
    const end: number[] = [0];
    const tokNode = new Int32Array(ids.length);
    const path: number[] = [0]; // node index at each depth of the current token
    let prev: Uint8Array = new Uint8Array(0);
    let maxDepth = 0;
    ids.forEach((id, k) => {
      const c = this.bytes[id]!;
      let l = 0;
      while (l < prev.length && l < c.length && prev[l] === c[l]) l++;
      while (path.length - 1 > l) end[path.pop()!] = byte.length;
      for (let j = l; j < c.length; j++) {
        path.push(byte.length);
        byte.push(c[j]);
        depth.push(j + 1);
        end.push(0);
      }
      tokNode[k] = path[path.length - 1];
      maxDepth = Math.max(maxDepth, c.length);
      prev = c;
    });
    while (path.length) end[path.pop()!] = byte.length;
    const n = byte.length;
    const tokStart = new Int32Array(n + 1);
    for (let k = 0; k < ids.length; k++) tokStart[tokNode[k] + 1]++;
    for (let i = 0; i < n; i++) tokStart[i + 1] += tokStart[i];
    const fill = tokStart.slice(0, n);
    const tokIds = new Int32Array(ids.length);
    for (let k = 0; k < ids.length; k++) tokIds[fill[tokNode[k]]++] = ids[k];
    this.byte = Uint8Array.from(byte);
    this.depth = Int32Array.from(depth);
    this.end = Int32Array.from(end);
    this.tokStart = tokStart;
    this.tokIds = tokIds;
    this.maxDepth = maxDepth;

    // alphabet: single-character tokens, plus everything if all non-ASCII bytes are tokens
    const singleBytes = new Uint8Array(256);
    const single: number[] = [];
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const id of ids) {
      const b = this.bytes[id]!;
      if (b.length === 1) singleBytes[b[0]] = 1;
      let text: string;
      try {
        text = decoder.decode(b);
      } catch {
        continue;
      }
      const cp = text.codePointAt(0)!;
      if (text.length === (cp > 0xffff ? 2 : 1) && utf8Of(cp).length === b.length) single.push(cp, cp);
    }
    let allHigh = true;
    for (let b = 0x80; b <= 0xf4; b++) if (b !== 0xc0 && b !== 0xc1 && !singleBytes[b]) allHigh = false;
    if (allHigh) single.push(0x80, 0x10ffff);
    this.alphabet = normRanges(single);
  }

  get nodeCount(): number {
    return this.byte.length;
  }
}

/** Opaque constraint state: an interned matcher state id (0 = dead). Copy freely. */
export type ConstraintState = number;

const DEFAULT_MASK_CACHE_BYTES = 64 << 20;

/**
 * A grammar applied to a vocabulary: masks per state, token-level advance.
 * EOS ids are allowed exactly when the document so far is complete; when it is complete and
 * nothing may follow, EOS is the only allowed token.
 */
export class TokenConstraint {
  readonly eosIds: Int32Array;
  private readonly eos: Set<number>;
  private readonly words: number;
  private readonly masks = new Map<number, Uint32Array>(); // state -> mask, LRU order
  private readonly locals = new Map<number, LocalMask>(); //  local state -> its part, LRU order
  private readonly maxMasks: number;
  private stateAt: Int32Array;
  private pathBytes: Uint8Array;
  private tableAt: Int32Array[];
  /** Local (context-independent) mask cache statistics. */
  localHits = 0;
  localMisses = 0;
  /** Mask-cache statistics (hits / misses), for benchmarks and metrics. */
  hits = 0;
  misses = 0;

  constructor(
    readonly engine: GrammarEngine,
    readonly vocab: TokenVocabulary,
    eosIds: readonly number[],
    maskCacheBytes = DEFAULT_MASK_CACHE_BYTES,
  ) {
    this.eosIds = Int32Array.from(eosIds);
    this.eos = new Set(eosIds);
    this.words = (vocab.size + 31) >>> 5;
    this.maxMasks = Math.max(16, Math.floor(maskCacheBytes / (this.words * 4)));
    this.stateAt = new Int32Array(vocab.maxDepth + 1);
    this.pathBytes = new Uint8Array(vocab.maxDepth + 1);
    this.tableAt = new Array<Int32Array>(vocab.maxDepth + 1);
  }

  start(): ConstraintState {
    return this.engine.start;
  }

  /**
   * Bitmask of allowed token ids (bit id & 31 of word id >> 5). Cached and shared: do not
   * modify it. Never all-zero for a live state.
   */
  allowed(state: ConstraintState): Uint32Array {
    const hit = this.masks.get(state);
    if (hit) {
      this.hits++;
      this.masks.delete(state); // refresh LRU position
      this.masks.set(state, hit);
      return hit;
    }
    this.misses++;
    const mask = this.computeMask(state);
    this.masks.set(state, mask);
    if (this.masks.size > this.maxMasks) this.masks.delete(this.masks.keys().next().value!);
    return mask;
  }

  /** Allowed token ids as a list (ascending). */
  allowedIds(state: ConstraintState): Int32Array {
    const m = this.allowed(state);
    const out: number[] = [];
    for (let w = 0; w < m.length; w++) {
      let bits = m[w];
      while (bits) {
        const b = 31 - Math.clz32(bits & -bits);
        out.push(w * 32 + b);
        bits &= bits - 1;
      }
    }
    return Int32Array.from(out);
  }

  /** Set disallowed logits to -Infinity in place ([vocab] logits of one row). */
  applyMask(state: ConstraintState, logits: Float32Array): void {
    const m = this.allowed(state);
    const n = Math.min(logits.length, this.vocab.size);
    for (let w = 0; w * 32 < n; w++) {
      const bits = m[w];
      if (bits === -1 >>> 0) continue;
      const top = Math.min(32, n - w * 32);
      for (let b = 0; b < top; b++) if (!(bits & (1 << b))) logits[w * 32 + b] = -Infinity;
    }
    for (let i = this.vocab.size; i < logits.length; i++) logits[i] = -Infinity;
  }

  isAllowed(state: ConstraintState, tokenId: number): boolean {
    const m = this.allowed(state);
    return (m[tokenId >>> 5] & (1 << (tokenId & 31))) !== 0;
  }

  /**
   * State after emitting `tokenId` (0 = dead: the token was not allowed). EOS keeps the state
   * when the document is complete.
   */
  advance(state: ConstraintState, tokenId: number): ConstraintState {
    if (this.eos.has(tokenId)) return this.engine.isFinal(state) ? state : DEAD;
    const b = this.vocab.bytes[tokenId];
    if (!b) return DEAD;
    return this.engine.stepBytes(state, b);
  }

  /** The text so far is a complete document (EOS is allowed). */
  canTerminate(state: ConstraintState): boolean {
    return this.engine.isFinal(state);
  }
  /** Complete and nothing may follow: EOS is the only allowed token. */
  isComplete(state: ConstraintState): boolean {
    return this.engine.isFinal(state) && this.engine.stacks(state).length === 1;
  }
  isDead(state: ConstraintState): boolean {
    return state === DEAD;
  }

  /** Full mask of a state: its local part, plus the context-dependent subtrees walked for real. */
  private computeMask(state: number): Uint32Array {
    const engine = this.engine;
    const local = this.localMask(engine.localState(state));
    const mask = local.accepted.slice();
    const { byte, depth, end, tokStart, tokIds } = this.vocab;
    const stateAt = this.stateAt;
    const tableAt = this.tableAt;
    const set = (node: number) => {
      for (let k = tokStart[node], e = tokStart[node + 1]; k < e; k++) {
        const id = tokIds[k];
        mask[id >>> 5] |= 1 << (id & 31);
      }
    };
    for (let j = 0; j < local.popNodes.length; j++) {
      const root = local.popNodes[j];
      let s = state;
      s = engine.stepBytes(s, local.popPrefix[j]);
      if (s === DEAD) continue;
      set(root);
      stateAt[depth[root]] = s;
      tableAt[depth[root]] = engine.table(s);
      for (let i = root + 1, stop = end[root]; i < stop; ) {
        const d = depth[i];
        const c = byte[i];
        let t = tableAt[d - 1][c];
        if (t < 0) t = engine.step(stateAt[d - 1], c);
        if (t === DEAD) {
          i = end[i];
          continue;
        }
        stateAt[d] = t;
        tableAt[d] = engine.table(t);
        set(i);
        i++;
      }
    }
    // EOS ids by the grammar alone, whatever their text
    const fin = engine.isFinal(state);
    for (const id of this.eosIds) {
      if (fin) mask[id >>> 5] |= 1 << (id & 31);
      else mask[id >>> 5] &= ~(1 << (id & 31));
    }
    return mask;
  }

  private localMask(local: number): LocalMask {
    const hit = this.locals.get(local);
    if (hit) {
      this.localHits++;
      this.locals.delete(local);
      this.locals.set(local, hit);
      return hit;
    }
    this.localMisses++;
    const m = this.walkLocal(local);
    this.locals.set(local, m);
    if (this.locals.size > this.maxMasks) this.locals.delete(this.locals.keys().next().value!);
    return m;
  }

  /** One pass over the trie from a local state: shared prefixes matched once, dead subtrees skipped. */
  private walkLocal(local: number): LocalMask {
    const accepted = new Uint32Array(this.words);
    const popNodes: number[] = [];
    const popPrefix: Uint8Array[] = [];
    if (local === DEAD) return { accepted, popNodes: new Int32Array(0), popPrefix };
    const { byte, depth, end, tokStart, tokIds } = this.vocab;
    const engine = this.engine;
    const stateAt = this.stateAt;
    const tableAt = this.tableAt; // transition memo of stateAt[d]: the hot path
    const pathBytes = this.pathBytes;
    stateAt[0] = local;
    tableAt[0] = engine.table(local);
    const n = byte.length;
    let popEnd = 0; // inside a recorded pop subtree until this node index
    let i = 1;
    while (i < n) {
      const d = depth[i];
      const c = byte[i];
      let s = tableAt[d - 1][c];
      if (s < 0) s = engine.step(stateAt[d - 1], c);
      if (s === DEAD) {
        i = end[i];
        continue;
      }
      pathBytes[d] = c;
      const f = engine.flags(s);
      if (f & POPPED && i >= popEnd) {
        popNodes.push(i);
        popPrefix.push(pathBytes.slice(1, d + 1));
        popEnd = end[i];
      }
      if (f & (LIVE | FINAL)) {
        for (let k = tokStart[i], e = tokStart[i + 1]; k < e; k++) {
          const id = tokIds[k];
          accepted[id >>> 5] |= 1 << (id & 31);
        }
      }
      if (!(f & LIVE)) {
        i = end[i]; // nothing continues locally below (a pop subtree covers the rest)
        continue;
      }
      stateAt[d] = s;
      tableAt[d] = engine.table(s);
      i++;
    }
    return { accepted, popNodes: Int32Array.from(popNodes), popPrefix };
  }
}
