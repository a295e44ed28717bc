// Token masks: which token ids may come next in a matcher state.
//
// The vocabulary is given as the decoded text of each token id. A token is a candidate only if
// its text is non-empty and contains no U+FFFD: ids that decode to '' (specials, control
// tokens) or to partial UTF-8 (byte-fallback / byte-level pieces of a multi-byte character)
// are never allowed. This is the simple, always-correct choice; its cost is that a character
// the vocabulary spells only through partial-UTF-8 pieces cannot be produced (for ASCII JSON
// and most text it never matters, since every tokenizer has whole tokens for those).
//
// Candidates are stored in a trie, flattened in preorder: a node's subtree is the index range
// [i, end[i]), so a mask walk is one linear pass that skips a whole subtree as soon as the
// matcher rejects its first character (shared prefixes are matched once). Masks are cached
// per interned matcher state (the state id is the canonical key), bounded by an LRU.

import { normRanges } from './grammar.ts';
import { DEAD, FINAL, LIVE, POPPED, type GrammarEngine } from './matcher.ts';

/**
 * Context-independent part of the masks of every state with the same top positions (keyed by
 * the engine's local state): tokens accepted whatever the return context, and the trie nodes
 * below which a token may pop into the context (those subtrees are re-walked with the real
 * state). Only that small remainder depends on the full stack.
 */
interface LocalMask {
  accepted: Uint32Array; //   [words] bitmask of context-independently accepted tokens
  popNodes: Int32Array; //    trie nodes whose prefix pops into the context (no nesting)
  popPrefix: Int32Array[]; // [popNodes] code points from the root to that node
}

/** Decoded vocabulary + its token trie. Build once per model and share it. */
export class TokenVocabulary {
  readonly size: number; //           number of token ids
  readonly texts: readonly string[]; // [ids] decoded text
  // trie, nodes in preorder; node 0 is the root (empty prefix)
  readonly cp: Int32Array; //         [nodes] code point on the edge into the node
  readonly depth: Int32Array; //      [nodes] prefix length in code points
  readonly end: Int32Array; //        [nodes] one past the node's last descendant
  readonly tokStart: Int32Array; //   [nodes + 1] CSR offsets into tokIds
  readonly tokIds: Int32Array; //     token ids whose text ends at each node
  readonly maxDepth: number;
  /**
   * Ranges of the code points that are a whole token by themselves. Token constraints restrict
   * their grammar to these characters, so from every state the grammar admits, some sequence of
   * single-character tokens reaches the end: masks are never empty before completion, whatever
   * characters the vocabulary lacks (e.g. a CJK character only reachable through byte tokens).
   */
  readonly alphabet: number[];

  constructor(texts: readonly string[], exclude: Iterable<number> = []) {
    this.size = texts.length;
    this.texts = texts;
    const skip = new Set(exclude);
    const ids: number[] = [];
    for (let id = 0; id < texts.length; id++) {
      const t = texts[id];
      if (t && !t.includes('\ufffd') && !skip.has(id)) ids.push(id);
    }
    ids.sort((a, b) => (texts[a] < texts[b] ? -1 : texts[a] > texts[b] ? 1 : a - b));
    const cp: number[] = [0];
    const depth: number[] = [0];
    const end: number[] = [0];
    const tokNode = new Int32Array(ids.length);
    const path: number[] = [0]; // node index at each depth of the current token
    let prev: number[] = [];
    let maxDepth = 0;
    ids.forEach((id, k) => {
      const c = Array.from(texts[id], (ch) => ch.codePointAt(0)!);
      let l = 0;
      while (l < prev.length && l < c.length && prev[l] === c[l]) l++;
      while (path.length - 1 > l) end[path.pop()!] = cp.length;
      for (let j = l; j < c.length; j++) {
        path.push(cp.length);
        cp.push(c[j]);
        depth.push(j + 1);
        end.push(0);
      }
      tokNode[k] = path[path.length - 1];
      maxDepth = Math.max(maxDepth, c.length);
      prev = c;
    });
    while (path.length) end[path.pop()!] = cp.length;
    const n = cp.length;
    const tokStart = new Int32Array(n + 1);
    for (let k = 0; k < ids.length; k++) tokStart[tokNode[k] + 1]++;
    for (let i = 0; i < n; i++) tokStart[i + 1] += tokStart[i];
    const fill = tokStart.slice(0, n);
    const tokIds = new Int32Array(ids.length);
    for (let k = 0; k < ids.length; k++) tokIds[fill[tokNode[k]]++] = ids[k];
    this.cp = Int32Array.from(cp);
    this.depth = Int32Array.from(depth);
    this.end = Int32Array.from(end);
    this.tokStart = tokStart;
    this.tokIds = tokIds;
    this.maxDepth = maxDepth;
    const single: number[] = [];
    for (const id of ids) {
      const t = texts[id];
      const cp0 = t.codePointAt(0)!;
      if (t.length === (cp0 > 0xffff ? 2 : 1)) single.push(cp0, cp0);
    }
    this.alphabet = normRanges(single);
  }

  get nodeCount(): number {
    return this.cp.length;
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
  private pathCp: Int32Array;
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
    this.pathCp = new Int32Array(vocab.maxDepth + 1);
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
    const t = this.vocab.texts[tokenId];
    if (!t || t.includes('\ufffd')) return DEAD;
    return this.engine.stepString(state, t);
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
    const { cp, depth, end, tokStart, tokIds } = this.vocab;
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
      for (const c of local.popPrefix[j]) if ((s = engine.step(s, c)) === DEAD) break;
      if (s === DEAD) continue;
      set(root);
      stateAt[depth[root]] = s;
      tableAt[depth[root]] = engine.asciiTable(s);
      for (let i = root + 1, stop = end[root]; i < stop; ) {
        const d = depth[i];
        const c = cp[i];
        let t = c < 128 ? tableAt[d - 1][c] : -1;
        if (t < 0) t = engine.step(stateAt[d - 1], c);
        if (t === DEAD) {
          i = end[i];
          continue;
        }
        stateAt[d] = t;
        tableAt[d] = engine.asciiTable(t);
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
    const popPrefix: Int32Array[] = [];
    if (local === DEAD) return { accepted, popNodes: new Int32Array(0), popPrefix };
    const { cp, depth, end, tokStart, tokIds } = this.vocab;
    const engine = this.engine;
    const stateAt = this.stateAt;
    const tableAt = this.tableAt; // ASCII transition memo of stateAt[d]: the hot path
    const pathCp = this.pathCp;
    stateAt[0] = local;
    tableAt[0] = engine.asciiTable(local);
    const n = cp.length;
    let popEnd = 0; // inside a recorded pop subtree until this node index
    let i = 1;
    while (i < n) {
      const d = depth[i];
      const c = cp[i];
      let s = c < 128 ? tableAt[d - 1][c] : -1;
      if (s < 0) s = engine.step(stateAt[d - 1], c);
      if (s === DEAD) {
        i = end[i];
        continue;
      }
      pathCp[d] = c;
      const f = engine.flags(s);
      if (f & POPPED && i >= popEnd) {
        popNodes.push(i);
        popPrefix.push(pathCp.slice(1, d + 1));
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
      tableAt[d] = engine.asciiTable(s);
      i++;
    }
    return { accepted, popNodes: Int32Array.from(popNodes), popPrefix };
  }
}
