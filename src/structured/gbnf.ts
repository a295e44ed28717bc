// GBNF (llama.cpp's grammar dialect) to grammar expressions.
//
//   root   ::= item ("," ws item)*        # comment
//   item   ::= "lit\n" | [a-z0-9_]+ | [^"\\] | . | (a | b)? | x{2,5} | rule-name
//
// As in llama.cpp: a rule ends at the end of its line, except that newlines are allowed after
// '::=', after '|' and anywhere inside parentheses; '#' starts a comment; literals and classes
// take \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH escapes; '.' is any character. Rule names
// are letters, digits, '-' and '_'. The start rule is `root`. Errors name line:column.

import { E, GrammarError, MAX_CODE_POINT, negateRanges, normRanges, type Expr } from './grammar.ts';

export interface GbnfGrammar {
  rules: Map<string, Expr>;
  root: string;
}

export function parseGbnf(src: string): GbnfGrammar {
  return new GbnfParser(src).parse();
}

const isWord = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_-]/.test(c);

class GbnfParser {
  private i = 0;
  private rules = new Map<string, Expr>();
  private refs: { name: string; at: number }[] = [];
  constructor(private readonly s: string) {}

  private where(at: number): string {
    const before = this.s.slice(0, at);
    const line = before.split('\n').length;
    const col = at - (before.lastIndexOf('\n') + 1) + 1;
    return `${line}:${col}`;
  }
  private fail(msg: string, at = this.i): never {
    throw new GrammarError(`GBNF ${this.where(at)}: ${msg}`);
  }

  /** Skip blanks and comments; newlines too when `newlines`. */
  private space(newlines: boolean): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === ' ' || c === '\t' || (newlines && (c === '\n' || c === '\r'))) this.i++;
      else if (c === '#') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      } else return;
    }
  }

  parse(): GbnfGrammar {
    this.space(true);
    while (this.i < this.s.length) {
      this.parseRule();
      this.space(true);
    }
    for (const r of this.refs) if (!this.rules.has(r.name)) this.fail(`undefined rule "${r.name}"`, r.at);
    if (!this.rules.has('root')) this.fail('no "root" rule', 0);
    return { rules: this.rules, root: 'root' };
  }

  private name(): string {
    const start = this.i;
    while (isWord(this.s[this.i])) this.i++;
    if (this.i === start) this.fail(`expected a rule name, found ${this.describe()}`);
    return this.s.slice(start, this.i);
  }
  private describe(): string {
    const c = this.s[this.i];
    return c === undefined ? 'end of input' : c === '\n' ? 'end of line' : `"${c}"`;
  }

  private parseRule(): void {
    const at = this.i;
    const name = this.name();
    this.space(false);
    if (!this.s.startsWith('::=', this.i)) this.fail(`expected "::=" after rule name "${name}", found ${this.describe()}`);
    this.i += 3;
    this.space(true);
    const body = this.parseAlternates(false);
    if (this.rules.has(name)) this.fail(`rule "${name}" is defined twice`, at);
    this.rules.set(name, body);
    const c = this.s[this.i];
    if (c === '\r') this.i++;
    if (this.i < this.s.length && this.s[this.i] !== '\n') this.fail(`expected end of line, found ${this.describe()}`);
  }

  private parseAlternates(nested: boolean): Expr {
    const items = [this.parseSequence(nested)];
    while (this.s[this.i] === '|') {
      this.i++;
      this.space(true);
      items.push(this.parseSequence(nested));
    }
    return E.alt(...items);
  }

  private parseSequence(nested: boolean): Expr {
    const items: Expr[] = [];
    for (;;) {
      const c = this.s[this.i];
      let atom: Expr;
      const at = this.i;
      if (c === '"') atom = this.parseLiteral();
      else if (c === '[') atom = this.parseClass();
      else if (c === '.') {
        this.i++;
        atom = E.chars([0, MAX_CODE_POINT]);
      } else if (c === '(') {
        this.i++;
        this.space(true);
        atom = this.parseAlternates(true);
        this.space(true);
        if (this.s[this.i] !== ')') this.fail(`expected ")", found ${this.describe()}`);
        this.i++;
      } else if (isWord(c)) {
        const name = this.name();
        this.refs.push({ name, at });
        atom = E.ref(name);
      } else break;
      this.space(nested);
      atom = this.parseRepeat(atom, nested);
      items.push(atom);
    }
    return items.length === 1 ? items[0] : { k: 'seq', items };
  }

  private parseRepeat(atom: Expr, nested: boolean): Expr {
    for (;;) {
      const c = this.s[this.i];
      const at = this.i;
      if (c === '*' || c === '+' || c === '?') {
        this.i++;
        atom = c === '*' ? E.star(atom) : c === '+' ? E.plus(atom) : E.opt(atom);
      } else if (c === '{') {
        const m = /^\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/.exec(this.s.slice(this.i));
        if (!m) this.fail('expected {m}, {m,} or {m,n}');
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) this.fail(`repetition {${min},${max}} has max < min`, at);
        this.i += m[0].length;
        atom = E.rep(atom, min, max);
      } else return atom;
      this.space(nested);
    }
  }

  private parseLiteral(): Expr {
    const at = this.i;
    this.i++;
    let out = '';
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined || c === '\n') this.fail('unterminated string literal', at);
      if (c === '"') {
        this.i++;
        break;
      }
      out += String.fromCodePoint(this.char());
    }
    return E.lit(out);
  }

  private parseClass(): Expr {
    const at = this.i;
    this.i++;
    let negate = false;
    if (this.s[this.i] === '^') {
      negate = true;
      this.i++;
    }
    const ranges: number[] = [];
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined || c === '\n') this.fail('unterminated character class', at);
      if (c === ']') {
        this.i++;
        break;
      }
      const lo = this.char();
      if (this.s[this.i] === '-' && this.s[this.i + 1] !== ']' && this.s[this.i + 1] !== undefined) {
        this.i++;
        const rAt = this.i;
        const hi = this.char();
        if (hi < lo) this.fail('character range out of order', rAt);
        ranges.push(lo, hi);
      } else ranges.push(lo, lo);
    }
    const r = normRanges(ranges);
    return E.chars(negate ? negateRanges(r) : r);
  }

  /** One (possibly escaped) character of a literal or class; returns its code point. */
  private char(): number {
    const at = this.i;
    const c = this.s[this.i];
    if (c !== '\\') {
      const cp = this.s.codePointAt(this.i)!;
      this.i += cp > 0xffff ? 2 : 1;
      return cp;
    }
    const e = this.s[this.i + 1];
    this.i += 2;
    const hex = (n: number) => {
      const h = this.s.slice(this.i, this.i + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) this.fail(`expected ${n} hex digits`, this.i);
      this.i += n;
      const v = parseInt(h, 16);
      if (v > MAX_CODE_POINT) this.fail('code point out of range', at);
      return v;
    };
    switch (e) {
      case 'n':
        return 10;
      case 'r':
        return 13;
      case 't':
        return 9;
      case '\\':
      case '"':
      case '[':
      case ']':
      case '-':
      case '^':
        return e.charCodeAt(0);
      case 'x':
        return hex(2);
      case 'u':
        return hex(4);
      case 'U':
        return hex(8);
      default:
        return this.fail(`unknown escape "\\${e ?? ''}"`, at);
    }
  }
}
