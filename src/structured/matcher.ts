// Incremental recognizer over UTF-8 bytes: a pushdown automaton over the flat grammar, the way
// llama.cpp's grammar sampler works, with everything interned so a matcher state is one integer.
// Text is fed as its UTF-8 bytes, so a state may sit inside a multi-byte character.
//
// - A *stack* is a persistent linked list of grammar positions: the top is a CHARS position
//   (the next byte to match), the rest are return positions to continue at once the rule
//   being matched ends. Stack nodes are hash-consed: (position, next stack id) -> stack id, and
//   stack 0 is the empty stack, meaning "the document is complete".
// - A *state* is the set of stacks alive after the input so far (the grammar may be ambiguous),
//   interned as a sorted list of stack ids: state 0 is the dead state (no stack).
// - Transitions (state, byte) -> state are memoized in a 256-entry table per state, so after
//   warm-up a step is an array read.
//
// Expansion uses a tail call: when a rule reference is the last element of its alternative no
// return position is pushed, so right recursion (how repetition is lowered) keeps stacks flat
// and the number of distinct states finite for regular parts of a grammar.
//
// All of this belongs to one grammar and is shared by every request using it (states are just
// ids, so copying or rolling back a matcher is copying a number). The tables only grow, with
// the number of distinct states visited.

import { CHARS, END, REF, classHas, utf8Of, type Grammar, ConstraintError } from './grammar.ts';

export const DEAD = 0;
// state flags
export const FINAL = 1; //  contains the empty stack: the document is complete
export const POPPED = 2; // contains the POPPED marker (local states only)
export const LIVE = 4; //   contains a stack that can take more input

const EMPTY_STACK = 0;
const NODE_SHIFT = 2 ** 26; // stack node key = position * 2^26 + next stack id

export class GrammarEngine {
  readonly grammar: Grammar;
  // stack nodes: [stacks]
  private sPos: Int32Array = new Int32Array(1024);
  private sNext: Int32Array = new Int32Array(1024);
  private nStacks = 1; // stack 0 = empty stack
  private stackIds = new Map<number, number>();
  // states: [states] sorted stack ids; state 0 = dead
  private stateStacks: Int32Array[] = [new Int32Array(0)];
  private stateIds = new Map<string, number>();
  private stateFlags: number[] = [0]; // [states] FINAL | POPPED | LIVE
  private localOf: number[] = [0]; //    [states] context-free version (-1: not computed yet)
  private nextTable: (Int32Array | undefined)[] = [undefined]; // [states] byte -> state, -1 unknown
  /** Interned start state. */
  readonly start: number;
  // Context sentinel (see localState): a stack node at a virtual position past the grammar.
  // Popping into it yields the POPPED marker stack, which matches nothing.
  private readonly sentPos: number;
  private readonly sentinel: number;
  private readonly popped: number;

  constructor(grammar: Grammar) {
    this.grammar = grammar;
    this.sentPos = grammar.kind.length;
    this.sentinel = this.node(this.sentPos, EMPTY_STACK);
    this.popped = this.node(this.sentPos + 1, EMPTY_STACK);
    const out = new Set<number>();
    const seen = new Set<number>();
    for (const a of grammar.ruleAlts[grammar.root]) this.expand(a, EMPTY_STACK, out, seen);
    this.start = this.internState(out);
  }

  /** Number of interned states (diagnostics / memory watch). */
  get stateCount(): number {
    return this.stateStacks.length;
  }

  /** The document so far is a complete match. */
  isFinal(state: number): boolean {
    return (this.stateFlags[state] & FINAL) !== 0;
  }
  /** FINAL (complete), POPPED (a path returned into the sentinel context), LIVE (a stack can continue). */
  flags(state: number): number {
    return this.stateFlags[state];
  }

  /**
   * The state with the stack tail common to all its stacks replaced by one sentinel: the same
   * frames on top (e.g. "inside a JSON string"), unknown callers beneath. What it accepts
   * without popping into the sentinel (flag LIVE) is accepted in every state with these top
   * frames; a path that pops shows up as POPPED and needs the real context. Token masks cache their context-independent part per local state (xgrammar's
   * adaptive token mask cache). DEAD when the state is complete with nothing to continue.
   */
  localState(state: number): number {
    const v = this.localOf[state];
    if (v >= 0) return v;
    // Cut the longest tail all stacks share (keeping at least each top node): the frames above
    // it are what the state is "inside", the tail is context the local part does not depend on.
    const chains: number[][] = [];
    for (const s of this.stateStacks[state]) {
      if (s === EMPTY_STACK || s === this.popped) continue;
      const c: number[] = [];
      for (let n = s; n !== EMPTY_STACK; n = this.sNext[n]) c.push(n);
      chains.push(c);
    }
    let tail = chains.length ? Math.min(...chains.map((c) => c.length)) - 1 : 0;
    for (let t = 1; t <= tail; t++) {
      const id = chains[0][chains[0].length - t];
      if (chains.some((c) => c[c.length - t] !== id)) {
        tail = t - 1;
        break;
      }
    }
    const set = new Set<number>();
    for (const c of chains) {
      let r = tail > 0 ? this.sentinel : EMPTY_STACK;
      for (let k = c.length - tail - 1; k >= 0; k--) r = this.node(this.sPos[c[k]], r);
      set.add(r);
    }
    const l = this.internState(set);
    this.localOf[state] = l;
    return l;
  }
  /** Stacks of a state (top positions only matter to callers): for canonical keys and tests. */
  stacks(state: number): Int32Array {
    return this.stateStacks[state];
  }

  /**
   * Fewest bytes that complete the document from `state` (0 when complete, Infinity when
   * dead). Lets a caller steer toward a valid end, e.g. when the token budget runs out.
   */
  minCompletion(state: number): number {
    if (state === DEAD) return Infinity;
    if (!this.posMin) this.posMin = this.positionMinimums();
    let best = Infinity;
    for (const s of this.stateStacks[state]) {
      let d = 0;
      for (let n = s; n !== EMPTY_STACK; n = this.sNext[n]) d += this.posMin[this.sPos[n]];
      if (d < best) best = d;
    }
    return best;
  }
  private posMin: Float64Array | undefined;
  /** [positions] fewest bytes from a position to the end of its alternative. */
  private positionMinimums(): Float64Array {
    const { kind, arg, ruleAlts } = this.grammar;
    const R = ruleAlts.length;
    const ruleMin = new Float64Array(R).fill(Infinity);
    const altMin = (p: number): number => {
      let d = 0;
      for (; kind[p] !== END; p++) d += kind[p] === CHARS ? 1 : ruleMin[arg[p]];
      return d;
    };
    for (let changed = true; changed; ) {
      changed = false;
      for (let r = 0; r < R; r++) {
        for (const a of ruleAlts[r]) {
          const d = altMin(a);
          if (d < ruleMin[r]) {
            ruleMin[r] = d;
            changed = true;
          }
        }
      }
    }
    const out = new Float64Array(kind.length);
    for (let p = kind.length - 1; p >= 0; p--) {
      out[p] = kind[p] === END ? 0 : (kind[p] === CHARS ? 1 : ruleMin[arg[p]]) + out[p + 1];
    }
    return out;
  }

  /**
   * The memo of a state's transitions: entry b is the next state on byte b, or -1 when not
   * computed yet (then call step). For hot loops (token-trie walks).
   */
  table(state: number): Int32Array {
    let t = this.nextTable[state];
    if (t === undefined) t = this.nextTable[state] = new Int32Array(256).fill(-1);
    return t;
  }

  /** Transition on one byte; DEAD when no stack accepts it. */
  step(state: number, byte: number): number {
    if (state === DEAD) return DEAD;
    const t = this.table(state);
    const v = t[byte];
    if (v >= 0) return v;
    return (t[byte] = this.compute(state, byte));
  }

  /** Run bytes; DEAD as soon as one is rejected. */
  stepBytes(state: number, bytes: ArrayLike<number>): number {
    for (let i = 0; i < bytes.length && state !== DEAD; i++) state = this.step(state, bytes[i]);
    return state;
  }

  /** Run one code point (its UTF-8 bytes). */
  stepChar(state: number, cp: number): number {
    return this.stepBytes(state, utf8Of(cp));
  }

  /** Run a whole string (its UTF-8 bytes); DEAD as soon as a byte is rejected. */
  stepString(state: number, s: string): number {
    const bytes: number[] = [];
    for (const ch of s) {
      bytes.length = 0;
      state = this.stepBytes(state, utf8Of(ch.codePointAt(0)!, bytes));
      if (state === DEAD) return DEAD;
    }
    return state;
  }

  /** Transitions computed so far (the memo's misses), for benchmarks. */
  transitionsComputed = 0;

  private compute(state: number, byte: number): number {
    this.transitionsComputed++;
    const { kind, arg, classes } = this.grammar;
    const out = new Set<number>();
    const seen = new Set<number>();
    for (const s of this.stateStacks[state]) {
      if (s === EMPTY_STACK) continue;
      const p = this.sPos[s];
      if (kind[p] === CHARS && classHas(classes[arg[p]], byte)) this.expand(p + 1, this.sNext[s], out, seen);
    }
    return this.internState(out);
  }

  /**
   * Add to `out` every stack whose top is a CHARS position, reachable from "continue at
   * position p, then return to `rest`" without consuming input. `seen` stops nullable cycles.
   * An explicit work list instead of recursion: long chains of nullable rules can't overflow
   * the JS stack.
   */
  private expand(p0: number, rest0: number, out: Set<number>, seen: Set<number>): void {
    const { kind, arg, ruleAlts } = this.grammar;
    const work = [p0, rest0]; // pairs (position, rest)
    while (work.length) {
      let rest = work.pop()!;
      let p = work.pop()!;
      for (;;) {
        if (p >= this.sentPos) {
          out.add(this.popped); // returned into the sentinel context
          break;
        }
        const key = p * NODE_SHIFT + rest;
        if (seen.has(key)) break;
        seen.add(key);
        const k = kind[p];
        if (k === CHARS) {
          out.add(this.node(p, rest));
          break;
        }
        if (k === END) {
          if (rest === EMPTY_STACK) {
            out.add(EMPTY_STACK);
            break;
          }
          p = this.sPos[rest];
          rest = this.sNext[rest];
          continue;
        }
        // REF: tail call when the reference ends its alternative
        const alts = ruleAlts[arg[p]];
        if (alts.length === 0) break;
        const r = kind[p + 1] === END ? rest : this.node(p + 1, rest);
        for (let i = 0; i < alts.length - 1; i++) work.push(alts[i], r);
        p = alts[alts.length - 1];
        rest = r;
      }
    }
  }

  private node(p: number, next: number): number {
    const key = p * NODE_SHIFT + next;
    let id = this.stackIds.get(key);
    if (id !== undefined) return id;
    id = this.nStacks++;
    if (id >= NODE_SHIFT) throw new ConstraintError('matcher stack table overflow');
    if (id >= this.sPos.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.sPos = grow(this.sPos);
      this.sNext = grow(this.sNext);
    }
    this.sPos[id] = p;
    this.sNext[id] = next;
    this.stackIds.set(key, id);
    return id;
  }

  private internState(set: Set<number>): number {
    if (set.size === 0) return DEAD;
    const ids = Int32Array.from(set).sort();
    const key = ids.join(',');
    let id = this.stateIds.get(key);
    if (id !== undefined) return id;
    id = this.stateStacks.length;
    this.stateStacks.push(ids);
    let f = 0;
    for (const sid of ids) f |= sid === EMPTY_STACK ? FINAL : sid === this.popped ? POPPED : LIVE;
    this.stateFlags.push(f);
    this.localOf.push(-1);
    this.nextTable.push(undefined);
    this.stateIds.set(key, id);
    return id;
  }
}

/**
 * Character-level matcher over one grammar: a mutable cursor on an interned state.
 * `accept` leaves the state unchanged when it returns false; `clone`/`rollback` are O(1).
 */
export class Matcher {
  constructor(
    readonly engine: GrammarEngine,
    public state: number = engine.start,
  ) {}
  /** Advance by one character (one code point); false (state unchanged) if it is rejected. */
  accept(ch: string | number): boolean {
    const cp = typeof ch === 'number' ? ch : ch.codePointAt(0)!;
    const n = this.engine.stepChar(this.state, cp);
    if (n === DEAD) return false;
    this.state = n;
    return true;
  }
  /** Advance by raw bytes (may end inside a character); all or nothing. */
  acceptBytes(bytes: ArrayLike<number>): boolean {
    const n = this.engine.stepBytes(this.state, bytes);
    if (n === DEAD) return false;
    this.state = n;
    return true;
  }
  /** Advance by a whole string; all or nothing. */
  acceptString(s: string): boolean {
    const n = this.engine.stepString(this.state, s);
    if (n === DEAD) return false;
    this.state = n;
    return true;
  }
  /** The input so far is a complete document. */
  canTerminate(): boolean {
    return this.engine.isFinal(this.state);
  }
  /** No continuation can ever match (only reachable by assigning `state` by hand). */
  isDead(): boolean {
    return this.state === DEAD;
  }
  clone(): Matcher {
    return new Matcher(this.engine, this.state);
  }
  /** Snapshot / rollback: the state is one integer. */
  snapshot(): number {
    return this.state;
  }
  rollback(snapshot: number): void {
    this.state = snapshot;
  }
}
