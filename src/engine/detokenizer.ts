// Incremental detokenizer: token ids in, text out, one token at a time, for streaming.
//
// Decoding tokens one by one and concatenating is wrong in two ways: a character may be spread
// over several byte tokens (<0xE4><0xB8><0xAD> is one CJK character; byte-level BPE splits
// emoji the same way), and SentencePiece decoders strip the space in front of the first token
// of whatever they decode, so "▁world" alone decodes to "world". As vLLM and TGI do, we decode a
// small window of recent tokens twice: the part already shown [prefixOffset, readOffset) and
// the whole window [prefixOffset, end), and emit the difference. Both decodes start at the same
// token, so they strip (or keep) the same leading space, and the difference is exactly the text
// the new tokens add. While the window's text ends in U+FFFD the last character is still
// incomplete, so nothing is emitted until the next token completes it (flush() emits whatever is
// left at the end).

import type { Tokenizer } from '../formats/tokenizer.ts';

export interface DetokenizerOptions {
  /** Leave special tokens (bos/eos/control tokens) out of the text (default true, as servers do). */
  skipSpecialTokens?: boolean;
}

// How many prompt tokens to keep in the first window, so the first generated token decodes in
// context (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET).
const PROMPT_CONTEXT = 5;

export class IncrementalDetokenizer {
  private readonly tok: Tokenizer;
  private readonly skipSpecial: boolean;
  /** Token ids seen so far (without skipped special tokens); only the window is decoded. */
  private readonly ids: number[];
  private prefixOffset: number;
  private readOffset: number;

  /**
   * @param promptIds the prompt's ids, if any: they give the first generated tokens their context
   *   (a leading space, the rest of a character) and are never emitted themselves.
   */
  constructor(tok: Tokenizer, promptIds: readonly number[] = [], opts: DetokenizerOptions = {}) {
    this.tok = tok;
    this.skipSpecial = opts.skipSpecialTokens ?? true;
    this.ids = promptIds.filter((id) => this.keeps(id));
    this.readOffset = this.ids.length;
    this.prefixOffset = Math.max(this.ids.length - PROMPT_CONTEXT, 0);
  }

  /** Add one generated token; returns the text it completes (often '', never half a character). */
  push(id: number): string {
    if (!Number.isInteger(id) || id < 0) throw new Error(`IncrementalDetokenizer.push: bad token id ${id}`);
    if (!this.keeps(id)) return '';
    this.ids.push(id);
    return this.emit(false);
  }

  /** Text still held back (an incomplete character at the end); call once the sequence is done. */
  flush(): string {
    return this.emit(true);
  }

  private keeps(id: number): boolean {
    return !(this.skipSpecial && this.tok.isSpecial(id));
  }

  private emit(final: boolean): string {
    if (this.readOffset >= this.ids.length) return '';
    const prefixText = this.tok.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.tok.decode(this.ids.slice(this.prefixOffset));
    // Nothing new yet (a token that decodes to nothing), or an incomplete character at the end.
    if (newText.length <= prefixText.length || (!final && newText.endsWith('\uFFFD'))) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return newText.slice(prefixText.length);
  }
}
