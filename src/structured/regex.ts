// ECMAScript regular expressions (the common subset) to grammar expressions.
//
// Supported: literals, escapes (\n \r \t \f \v \0 \xHH \uHHHH \u{H..} and identity escapes),
// classes [...] with ranges and ^ negation, \d \D \w \W \s \S, '.', groups (capturing, (?:...),
// named (?<n>...)), alternation, quantifiers ? * + {m} {m,} {m,n} (lazy forms accepted: same
// language). '^' at the start and '$' at the end of a top-level alternative are accepted
// (matching is always of the whole text); anywhere else they are an error, as are
// backreferences, lookarounds and word boundaries, which no context-free grammar expresses.
// '.' matches any code point except line terminators (the 'u'-flag reading).

import { E, GrammarError, negateRanges, normRanges, type Expr } from './grammar.ts';

const DIGIT = [0x30, 0x39];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE = [9, 13, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];
const LINE_TERMINATORS = [10, 10, 13, 13, 0x2028, 0x2029];
export const ANY_BUT_NEWLINE = negateRanges(LINE_TERMINATORS);

/** One top-level alternative with its anchors. */
export interface RegexBranch {
  expr: Expr;
  anchoredStart: boolean;
  anchoredEnd: boolean;
}

/** Parse a regex to expressions, one per top-level alternative (anchors kept per branch). */
export function parseRegexBranches(src: string): RegexBranch[] {
  return new RegexParser(src).parseTop();
}

/** The language of a full match of `src` (anchors implied). */
export function regexToExpr(src: string): Expr {
  return E.alt(...parseRegexBranches(src).map((b) => b.expr));
}

class RegexParser {
  private i = 0;
  constructor(private readonly s: string) {}

  private fail(msg: string, at = this.i): never {
    throw new GrammarError(`regex: ${msg} at offset ${at} in /${this.s}/`);
  }
  private peek(): string {
    return this.s[this.i] ?? '';
  }

  parseTop(): RegexBranch[] {
    const branches: RegexBranch[] = [];
    for (;;) {
      let anchoredStart = false;
      if (this.peek() === '^') {
        anchoredStart = true;
        this.i++;
      }
      const expr = this.parseSeq(true);
      let anchoredEnd = false;
      if (this.peek() === '$') {
        anchoredEnd = true;
        this.i++;
      }
      branches.push({ expr, anchoredStart, anchoredEnd });
      if (this.i >= this.s.length) break;
      if (this.peek() === '|') {
        this.i++;
        continue;
      }
      if (this.peek() === ')') this.fail('unmatched ")"');
      this.fail(`unexpected "${this.peek()}"`);
    }
    return branches;
  }

  private parseAlt(): Expr {
    const items = [this.parseSeq(false)];
    while (this.peek() === '|') {
      this.i++;
      items.push(this.parseSeq(false));
    }
    return E.alt(...items);
  }

  private parseSeq(top: boolean): Expr {
    const items: Expr[] = [];
    while (this.i < this.s.length) {
      const c = this.peek();
      if (c === '|' || c === ')') break;
      if (c === '$' && top) {
        // only valid as the end of a top-level branch
        const next = this.s[this.i + 1];
        if (next === undefined || next === '|') break;
      }
      const atom = this.parseAtom();
      items.push(this.parseQuantifier(atom));
    }
    return items.length === 1 ? items[0] : { k: 'seq', items };
  }

  private parseQuantifier(atom: Expr): Expr {
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      const at = this.i;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
        if (!m) return atom; // a literal '{' (Annex B)
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) this.fail('numbers out of order in {} quantifier', at);
        this.i += m[0].length - 1;
      } else return atom;
      this.i++;
      if (this.peek() === '?') this.i++; // lazy: same language
      atom = E.rep(atom, min, max);
      const n = this.peek();
      if (n === '*' || n === '+' || n === '?') this.fail('nothing to repeat');
    }
  }

  private parseAtom(): Expr {
    const at = this.i;
    const c = this.s[this.i++];
    switch (c) {
      case '(': {
        if (this.s.startsWith('?:', this.i)) this.i += 2;
        else if (this.s.startsWith('?=', this.i) || this.s.startsWith('?!', this.i) || this.s.startsWith('?<=', this.i) || this.s.startsWith('?<!', this.i)) this.fail('lookaround assertions are not supported', at);
        else if (this.s.startsWith('?<', this.i)) {
          const m = /^\?<([A-Za-z_$][\w$]*)>/.exec(this.s.slice(this.i));
          if (!m) this.fail('bad group name', at);
          this.i += m[0].length;
        } else if (this.peek() === '?') this.fail('unsupported group syntax', at);
        const e = this.parseAlt();
        if (this.peek() !== ')') this.fail('missing ")"', at);
        this.i++;
        return e;
      }
      case '[':
        return E.chars(this.parseClass(at));
      case '.':
        return E.chars(ANY_BUT_NEWLINE);
      case '\\':
        return E.chars(this.parseEscape(false, at));
      case '^':
      case '$':
        return this.fail(`anchor "${c}" is only supported at the start / end of the pattern`, at);
      case '*':
      case '+':
      case '?':
        return this.fail('nothing to repeat', at);
      case ')':
        return this.fail('unmatched ")"', at);
      default: {
        const cp = this.s.codePointAt(at)!;
        if (cp > 0xffff) this.i++;
        if (c === '{' && /^\{\d+(,\d*)?\}/.test(this.s.slice(at))) this.fail('nothing to repeat', at);
        return E.chars([cp, cp]);
      }
    }
  }

  /** After '[': returns the class's ranges (negation applied). */
  private parseClass(at: number): number[] {
    let negate = false;
    if (this.peek() === '^') {
      negate = true;
      this.i++;
    }
    const ranges: number[] = [];
    for (;;) {
      if (this.i >= this.s.length) this.fail('missing "]"', at);
      if (this.peek() === ']') {
        this.i++;
        break;
      }
      const lo = this.classAtom();
      if (this.peek() === '-' && this.s[this.i + 1] !== ']' && this.i + 1 < this.s.length) {
        this.i++;
        const hi = this.classAtom();
        if (lo.length !== 2 || lo[0] !== lo[1] || hi.length !== 2 || hi[0] !== hi[1]) this.fail('class escape in a range', at);
        if (hi[0] < lo[0]) this.fail('range out of order in character class', at);
        ranges.push(lo[0], hi[0]);
      } else ranges.push(...lo);
    }
    const r = normRanges(ranges);
    return negate ? negateRanges(r) : r;
  }

  private classAtom(): number[] {
    const at = this.i;
    const c = this.s[this.i++];
    if (c === '\\') return this.parseEscape(true, at);
    const cp = this.s.codePointAt(at)!;
    if (cp > 0xffff) this.i++;
    return [cp, cp];
  }

  /** After '\\': the ranges the escape stands for. */
  private parseEscape(inClass: boolean, at: number): number[] {
    const c = this.s[this.i++];
    if (c === undefined) this.fail('\\ at end of pattern', at);
    const one = (cp: number) => [cp, cp];
    switch (c) {
      case 'd':
        return DIGIT;
      case 'D':
        return negateRanges(DIGIT);
      case 'w':
        return WORD;
      case 'W':
        return negateRanges(WORD);
      case 's':
        return normRanges(SPACE);
      case 'S':
        return negateRanges(SPACE);
      case 'n':
        return one(10);
      case 'r':
        return one(13);
      case 't':
        return one(9);
      case 'f':
        return one(12);
      case 'v':
        return one(11);
      case 'b':
        if (inClass) return one(8);
        return this.fail('word boundary \\b is not supported', at);
      case 'B':
        return this.fail('word boundary \\B is not supported', at);
      case 'k':
        return this.fail('backreferences are not supported', at);
      case 'x': {
        const m = /^[0-9a-fA-F]{2}/.exec(this.s.slice(this.i));
        if (!m) return one(0x78);
        this.i += 2;
        return one(parseInt(m[0], 16));
      }
      case 'u': {
        let m = /^[0-9a-fA-F]{4}/.exec(this.s.slice(this.i));
        if (m) {
          this.i += 4;
          return one(parseInt(m[0], 16));
        }
        m = /^\{([0-9a-fA-F]{1,6})\}/.exec(this.s.slice(this.i));
        if (m && parseInt(m[1], 16) <= 0x10ffff) {
          this.i += m[0].length;
          return one(parseInt(m[1], 16));
        }
        return one(0x75);
      }
      case 'c': {
        const l = this.peek();
        if (/[A-Za-z]/.test(l)) {
          this.i++;
          return one(l.charCodeAt(0) % 32);
        }
        return this.fail('bad \\c escape', at);
      }
      case '0':
        if (/[0-9]/.test(this.peek())) return this.fail('octal escapes are not supported', at);
        return one(0);
      default:
        if (/[1-9]/.test(c)) {
          if (inClass) return this.fail('octal escapes are not supported', at);
          return this.fail('backreferences are not supported', at);
        }
        // identity escape
        {
          const cp = this.s.codePointAt(this.i - 1)!;
          if (cp > 0xffff) this.i++;
          return one(cp);
        }
    }
  }
}
