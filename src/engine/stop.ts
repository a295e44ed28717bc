// Stop strings across token boundaries. Text arrives in pieces (one per token, from the
// incremental detokenizer); a stop string may be split over several of them ("<|e" + "nd|>").
// The matcher emits text as soon as it cannot be the start of a stop string, holds back the
// longest tail that still could be, and on a match emits the text before it and stops: the stop
// string itself and anything after it are never emitted (OpenAI semantics).

export class StopMatcher {
  private readonly stops: string[];
  private held = '';
  private done = false;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }


  /** Adds text; returns what can be shown now, and whether a stop string was found. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.done) return { text: '', stopped: true };
    if (this.stops.length === 0) return { text, stopped: false };
    const buf = this.held + text;
    // The earliest occurrence of any stop string wins.
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, at), stopped: true };
    }
    const keep = this.partialTail(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The held-back text, once no more text will come (it was not a stop string after all). */
  flush(): string {
    const t = this.done ? '' : this.held;
    this.held = '';
    return t;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private partialTail(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
