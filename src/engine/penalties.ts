// Repetition, presence and frequency penalties, applied to a copy of a sequence's logits row
// before sampling (the model's logits are shared scratch memory and are never modified).
//
// - repetition (HF transformers / vLLM): every token seen in the prompt or the output has its
//   logit divided by the penalty when positive, multiplied when negative;
// - presence and frequency (OpenAI): over the output only,
//   logit -= presence * [count > 0] + frequency * count.

export interface PenaltyParams {
  repetitionPenalty: number; // 1: off
  presencePenalty: number; //   0: off
  frequencyPenalty: number; //  0: off
}

export function hasPenalties(p: PenaltyParams): boolean {
  return p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0;
}

/**
 * Applies the penalties to logits in place.
 * @param promptSeen the distinct prompt token ids (used by the repetition penalty only)
 * @param outputCounts how often each token id occurs in the output so far
 */
export function applyPenalties(logits: Float32Array, p: PenaltyParams, promptSeen: ReadonlySet<number>, outputCounts: ReadonlyMap<number, number>): void {
  const V = logits.length;
  if (p.repetitionPenalty !== 1) {
    const r = p.repetitionPenalty;
    const apply = (id: number) => {
      if (id < 0 || id >= V) return;
      const x = logits[id]!;
      logits[id] = x > 0 ? x / r : x * r;
    };
    for (const id of promptSeen) apply(id);
    for (const id of outputCounts.keys()) if (!promptSeen.has(id)) apply(id);
  }
  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
    for (const [id, count] of outputCounts) {
      if (id < 0 || id >= V || count <= 0) continue;
      logits[id] = logits[id]! - p.presencePenalty - p.frequencyPenalty * count;
    }
  }
}

/** log(sum(exp(logits))) in float64: log p(id) = logits[id] - this. */
export function logSoftmaxNormalizer(logits: Float32Array): number {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > mx) mx = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - mx);
  return mx + Math.log(sum);
}

/** The k largest entries' ids, best first (ties: lower id first). */
export function topKIds(logits: Float32Array, k: number): number[] {
  if (k <= 0) return [];
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i]!;
    if (ids.length === k && x <= logits[ids[k - 1]!]!) continue;
    // insertion into the small sorted list
    let j = ids.length < k ? ids.length : k - 1;
    if (ids.length < k) ids.push(i);
    while (j > 0 && logits[ids[j - 1]!]! < x) {
      ids[j] = ids[j - 1]!;
      j--;
    }
    ids[j] = i;
  }
  return ids;
}
