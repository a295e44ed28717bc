// The one grammar representation every constraint source (JSON Schema, regex, choice list,
// GBNF) compiles to: a context-free grammar, written over Unicode code points and run over
// their UTF-8 bytes.
//
// Sources build an expression tree (`Expr`, below) per named rule; `lowerGrammar` then turns the
// named rules into the flat form the matcher runs on (`Grammar`): every rule is a list of
// alternatives, every alternative a sequence of elements, each element either one *byte* class
// or a reference to a rule. A code-point class becomes its UTF-8 byte sequences (one helper rule
// with an alternative per sequence of byte ranges, as regex engines compile Unicode classes), so
// tokens that end or start inside a multi-byte character are matched exactly. Repetition,
// optionals and nested alternations become helper rules (right-recursive, so the matcher's
// tail-call handling keeps its stacks flat).
//
// Lowering also checks what the matcher relies on: every alternative that survives can derive
// some finite string (unproductive alternatives are dropped, an unproductive root is an error),
// no character class is empty, and there is no left recursion that would grow the stack
// without consuming input.

/** Base class of every error a bad constraint raises (the server maps it to a 400). */
export class ConstraintError extends Error {
  override name = 'ConstraintError';
}
/** A regex, GBNF or grammar-level problem (message names the place: offset or line:col). */
export class GrammarError extends ConstraintError {
  override name = 'GrammarError';
}

export const MAX_CODE_POINT = 0x10ffff;

/** Source-independent grammar expression. Char classes are sorted, merged [lo, hi] pairs. */
export type Expr =
  | { k: 'chars'; ranges: number[] } //               one code point in any [lo, hi] pair
  | { k: 'lit'; s: string } //                         the literal string (code points)
  | { k: 'seq'; items: Expr[] } //                     concatenation (empty: matches '')
  | { k: 'alt'; items: Expr[] } //                     alternation (must be non-empty)
  | { k: 'rep'; e: Expr; min: number; max: number } // e{min,max}; max may be Infinity
  | { k: 'ref'; name: string }; //                     a named rule

// ---- char-class helpers (ranges: flat [lo0, hi0, lo1, hi1, ...]) ----

/** Sort and merge overlapping / adjacent ranges. */
export function normRanges(r: number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) if (r[i] <= r[i + 1]) pairs.push([r[i], r[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n && lo <= out[n - 1] + 1) out[n - 1] = Math.max(out[n - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}
/** Complement within [0, MAX_CODE_POINT]. */
export function negateRanges(r: number[]): number[] {
  const n = normRanges(r);
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < n.length; i += 2) {
    if (n[i] > next) out.push(next, n[i] - 1);
    next = n[i + 1] + 1;
  }
  if (next <= MAX_CODE_POINT) out.push(next, MAX_CODE_POINT);
  return out;
}
export function intersectRanges(a: number[], b: number[]): number[] {
  return negateRanges([...negateRanges(a), ...negateRanges(b)]);
}
export function rangesHas(r: number[], cp: number): boolean {
  for (let i = 0; i < r.length; i += 2) if (cp >= r[i] && cp <= r[i + 1]) return true;
  return false;
}

// ---- expression constructors ----

export const E = {
  chars: (ranges: number[]): Expr => ({ k: 'chars', ranges: normRanges(ranges) }),
  /** Class from a string of single characters, e.g. E.set('+-'). */
  set: (s: string): Expr => E.chars([...s].flatMap((c) => [c.codePointAt(0)!, c.codePointAt(0)!])),
  range: (lo: string, hi: string): Expr => E.chars([lo.codePointAt(0)!, hi.codePointAt(0)!]),
  lit: (s: string): Expr => ({ k: 'lit', s }),
  seq: (...items: Expr[]): Expr => (items.length === 1 ? items[0] : { k: 'seq', items }),
  alt: (...items: Expr[]): Expr => (items.length === 1 ? items[0] : { k: 'alt', items }),
  rep: (e: Expr, min: number, max: number): Expr => ({ k: 'rep', e, min, max }),
  opt: (e: Expr): Expr => ({ k: 'rep', e, min: 0, max: 1 }),
  star: (e: Expr): Expr => ({ k: 'rep', e, min: 0, max: Infinity }),
  plus: (e: Expr): Expr => ({ k: 'rep', e, min: 1, max: Infinity }),
  ref: (name: string): Expr => ({ k: 'ref', name }),
  empty: (): Expr => ({ k: 'seq', items: [] }),
};

// ---- the flat grammar the matcher runs on ----

export const END = 0; //   end of an alternative (pop)
export const CHARS = 1; // match one byte against classes[arg]
export const REF = 2; //   expand rule arg

/** A byte class: 256-bit bitmap. */
export interface ByteClass {
  bits: Uint32Array; // 8 words: bit b set when byte b is in the class
}

/**
 * Flat grammar. Positions index `kind`/`arg`; each alternative is a run of positions ending
 * with an END position. A matcher "position" is an index into these arrays.
 */
export interface Grammar {
  kind: Uint8Array; //        [positions] END | CHARS | REF
  arg: Int32Array; //         [positions] class index (CHARS) or rule index (REF)
  ruleAlts: Int32Array[]; //  [rules][alternatives] start position of each alternative
  ruleNames: string[]; //     [rules] names (helper rules get synthetic ones), for errors
  classes: ByteClass[];
  root: number; //            rule index of the start symbol
}

export function classHas(c: ByteClass, byte: number): boolean {
  return (c.bits[byte >> 5] & (1 << (byte & 31))) !== 0;
}

// ---- UTF-8 ----

const SURROGATES = [0xd800, 0xdfff];

/** UTF-8 bytes of one code point (a surrogate encodes as U+FFFD's bytes, as TextEncoder does). */
export function utf8Of(cp: number, out: number[] = []): number[] {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  return out;
}

/**
 * The code points lo..hi (one encoded length, no surrogates) as UTF-8 byte-range sequences:
 * each sequence is [lo, hi] byte ranges per position, and their cartesian products are exactly
 * the encodings of lo..hi. Split until every continuation position spans whole subranges.
 */
function utf8Sequences(lo: number, hi: number, out: [number, number][][]): void {
  const bounds = [0x7f, 0x7ff, 0xffff, 0x10ffff];
  for (const b of bounds) {
    if (lo <= b && hi > b) {
      utf8Sequences(lo, b, out);
      utf8Sequences(b + 1, hi, out);
      return;
    }
  }
  const n = utf8Of(lo).length;
  for (let i = 1; i < n; i++) {
    const m = (1 << (6 * i)) - 1; // the low i continuation bytes
    if ((lo & ~m) !== (hi & ~m)) {
      if ((lo & m) !== 0) {
        utf8Sequences(lo, lo | m, out);
        utf8Sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) !== m) {
        utf8Sequences(lo, (hi & ~m) - 1, out);
        utf8Sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  const a = utf8Of(lo);
  const b = utf8Of(hi);
  out.push(a.map((x, k) => [x, b[k]]));
}

/** Byte-range sequences of a code-point class (surrogates dropped: they have no UTF-8). */
export function classToUtf8(ranges: number[]): [number, number][][] {
  const out: [number, number][][] = [];
  const r = intersectRanges(ranges, negateRanges(SURROGATES));
  for (let i = 0; i < r.length; i += 2) utf8Sequences(r[i], r[i + 1], out);
  return out;
}

/** Upper bound on positions in one grammar (bounded repetitions are expanded). */
export const MAX_GRAMMAR_POSITIONS = 1_000_000;

type Elem = { c: number } | { r: number };

/**
 * Lower named rules to the flat grammar. With `alphabet` (ranges), every character class is
 * intersected with it first, so alternatives needing a character outside it are dropped as
 * unproductive: token constraints pass the characters their vocabulary can always spell.
 */
export function lowerGrammar(rules: Map<string, Expr>, root: string, alphabet?: number[]): Grammar {
  const ruleIds = new Map<string, number>();
  const ruleNames: string[] = [];
  const bodies: Elem[][][] = []; // [rule][alt][elem]
  const classes: number[][] = []; // byte ranges per byte class
  const classIds = new Map<string, number>();
  const cpClassElems = new Map<string, Elem[]>(); // code-point class -> its lowered elements
  let size = 0;

  const newRule = (name: string): number => {
    ruleNames.push(name);
    bodies.push([]);
    return ruleNames.length - 1;
  };
  for (const name of rules.keys()) ruleIds.set(name, newRule(name));
  if (!ruleIds.has(root)) throw new GrammarError(`missing root rule "${root}"`);

  const byteClass = (ranges: number[]): number => {
    const key = ranges.join(',');
    let id = classIds.get(key);
    if (id === undefined) {
      id = classes.length;
      classes.push(ranges);
      classIds.set(key, id);
    }
    return id;
  };
  const emptyRule = () => newRule(`empty#${ruleNames.length}`); // no alternatives: unproductive
  /** A code-point class as elements: one byte class (ASCII), or a rule over UTF-8 sequences. */
  const charElems = (cpRanges: number[]): Elem[] => {
    const key = cpRanges.join(',');
    const hit = cpClassElems.get(key);
    if (hit) return hit;
    const r = alphabet ? intersectRanges(cpRanges, alphabet) : cpRanges;
    const seqs = classToUtf8(r);
    // all one-byte (ASCII) sequences form one byte class; each longer sequence an alternative
    const single = seqs.filter((q) => q.length === 1).flatMap((q) => q[0]);
    const alts: Elem[][] = seqs.filter((q) => q.length > 1).map((q) => q.map(([lo, hi]) => ({ c: byteClass([lo, hi]) })));
    if (single.length) alts.unshift([{ c: byteClass(normRanges(single)) }]);
    let elems: Elem[];
    if (alts.length === 0) elems = [{ r: emptyRule() }];
    else if (alts.length === 1) elems = alts[0];
    else {
      const id = newRule(`utf8#${ruleNames.length}`);
      bodies[id] = alts;
      elems = [{ r: id }];
    }
    cpClassElems.set(key, elems);
    return elems;
  };
  const grow = (n: number) => {
    size += n;
    if (size > MAX_GRAMMAR_POSITIONS) throw new GrammarError(`grammar too large (over ${MAX_GRAMMAR_POSITIONS} positions after expanding repetitions)`);
  };
  // Helper rules are shared per Expr object, so a sub-expression reused by reference lowers once.
  const helperOf = new Map<Expr, number>();

  const seqOf = (e: Expr, out: Elem[]): void => {
    switch (e.k) {
      case 'chars':
        out.push(...charElems(e.ranges));
        break;
      case 'lit':
        for (const ch of e.s) {
          const cp = ch.codePointAt(0)!;
          out.push(...charElems([cp, cp]));
        }
        break;
      case 'seq':
        for (const it of e.items) seqOf(it, out);
        break;
      case 'ref': {
        const id = ruleIds.get(e.name);
        if (id === undefined) throw new GrammarError(`undefined rule "${e.name}"`);
        out.push({ r: id });
        break;
      }
      case 'alt': {
        if (e.items.length === 1) return seqOf(e.items[0], out);
        let id = helperOf.get(e);
        if (id === undefined) {
          id = newRule(`alt#${ruleNames.length}`);
          helperOf.set(e, id);
          bodies[id] = altsOf(e);
        }
        out.push({ r: id });
        break;
      }
      case 'rep': {
        const { min, max } = e;
        if (!(min >= 0) || !(max >= min)) throw new GrammarError(`bad repetition {${min},${max}}`);
        // min copies inline, then a chain for the optional rest.
        const one: Elem[] = [];
        seqOf(e.e, one);
        grow(one.length * Math.min(min, MAX_GRAMMAR_POSITIONS));
        for (let i = 0; i < min; i++) out.push(...one);
        if (max === min) break;
        if (max === Infinity) {
          // S ::= one S | ''
          const s = newRule(`star#${ruleNames.length}`);
          bodies[s] = [[...one, { r: s }], []];
          out.push({ r: s });
        } else {
          // T_k ::= one T_{k-1} | ''   (T_1 ::= one | '')
          const n = max - min;
          grow((one.length + 2) * n);
          let prev = -1;
          for (let k = 1; k <= n; k++) {
            const t = newRule(`rep#${ruleNames.length}`);
            bodies[t] = [prev < 0 ? [...one] : [...one, { r: prev }], []];
            prev = t;
          }
          out.push({ r: prev });
        }
        break;
      }
    }
  };
  const altsOf = (e: Expr): Elem[][] => {
    if (e.k === 'alt') {
      return e.items.map((it) => {
        const s: Elem[] = [];
        seqOf(it, s);
        return s;
      });
    }
    const s: Elem[] = [];
    seqOf(e, s);
    return [s];
  };
  for (const [name, body] of rules) bodies[ruleIds.get(name)!] = altsOf(body);

  // Productive rules: some alternative of only productive elements (classes are non-empty).
  const R = bodies.length;
  const productive = new Uint8Array(R);
  const elemOk = (el: Elem) => ('c' in el ? true : productive[el.r] === 1);
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < R; r++) {
      if (!productive[r] && bodies[r].some((alt) => alt.every(elemOk))) {
        productive[r] = 1;
        changed = true;
      }
    }
  }
  const rootId = ruleIds.get(root)!;
  if (!productive[rootId]) {
    throw new GrammarError(alphabet ? `the constraint cannot be written with this vocabulary's characters` : `rule "${root}" can never complete (no finite string matches it)`);
  }
  for (let r = 0; r < R; r++) bodies[r] = bodies[r].filter((alt) => alt.every(elemOk));

  // Nullable rules, then left recursion: an edge A -> B when B can be the first thing A expands
  // (only nullable elements before it). A cycle through such edges recurses without consuming
  // input; it is harmless only if every edge on it is a tail call (nothing after B in A's
  // alternative, so no return position is pushed): the matcher's visited set stops those loops.
  const nullable = new Uint8Array(R);
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < R; r++) {
      if (!nullable[r] && bodies[r].some((alt) => alt.every((el) => 'r' in el && nullable[el.r]))) {
        nullable[r] = 1;
        changed = true;
      }
    }
  }
  const edges: { to: number; push: boolean }[][] = bodies.map((alts) => {
    const out: { to: number; push: boolean }[] = [];
    for (const alt of alts) {
      for (let i = 0; i < alt.length; i++) {
        const el = alt[i];
        if ('c' in el) break;
        out.push({ to: el.r, push: i < alt.length - 1 });
        if (!nullable[el.r]) break;
      }
    }
    return out;
  });
  // Tarjan SCC; a push edge inside one SCC is growing left recursion.
  {
    const index = new Int32Array(R).fill(-1);
    const low = new Int32Array(R);
    const comp = new Int32Array(R).fill(-1);
    const onStack = new Uint8Array(R);
    const st: number[] = [];
    let counter = 0;
    let ncomp = 0;
    const visit = (v: number) => {
      // iterative DFS to survive deep helper chains
      const work: [number, number][] = [[v, 0]];
      index[v] = low[v] = counter++;
      st.push(v);
      onStack[v] = 1;
      while (work.length) {
        const top = work[work.length - 1];
        const [u, i] = top;
        if (i < edges[u].length) {
          top[1]++;
          const w = edges[u][i].to;
          if (index[w] < 0) {
            index[w] = low[w] = counter++;
            st.push(w);
            onStack[w] = 1;
            work.push([w, 0]);
          } else if (onStack[w]) low[u] = Math.min(low[u], index[w]);
        } else {
          work.pop();
          if (work.length) {
            const p = work[work.length - 1][0];
            low[p] = Math.min(low[p], low[u]);
          }
          if (low[u] === index[u]) {
            let w: number;
            do {
              w = st.pop()!;
              onStack[w] = 0;
              comp[w] = ncomp;
            } while (w !== u);
            ncomp++;
          }
        }
      }
    };
    for (let r = 0; r < R; r++) if (index[r] < 0) visit(r);
    for (let r = 0; r < R; r++) {
      for (const e of edges[r]) {
        if (e.push && comp[e.to] === comp[r]) {
          throw new GrammarError(`left recursion through rule "${displayName(ruleNames, r, ruleNames[e.to])}" is not supported (rewrite it as repetition, e.g. a ::= b ("x" b)*)`);
        }
      }
    }
  }

  // Flatten.
  let positions = 0;
  for (const alts of bodies) for (const alt of alts) positions += alt.length + 1;
  const kind = new Uint8Array(positions);
  const arg = new Int32Array(positions);
  const ruleAlts: Int32Array[] = [];
  let p = 0;
  for (const alts of bodies) {
    const starts = new Int32Array(alts.length);
    alts.forEach((alt, a) => {
      starts[a] = p;
      for (const el of alt) {
        if ('c' in el) {
          kind[p] = CHARS;
          arg[p] = el.c;
        } else {
          kind[p] = REF;
          arg[p] = el.r;
        }
        p++;
      }
      kind[p++] = END;
    });
    ruleAlts.push(starts);
  }
  const cls: ByteClass[] = classes.map((ranges) => {
    const bits = new Uint32Array(8);
    for (let i = 0; i < ranges.length; i += 2) for (let b = ranges[i]; b <= ranges[i + 1]; b++) bits[b >> 5] |= 1 << (b & 31);
    return { bits };
  });
  return { kind, arg, ruleAlts, ruleNames, classes: cls, root: rootId };
}

function displayName(names: string[], r: number, fallback: string): string {
  const n = names[r];
  return n.includes('#') ? fallback : n;
}
