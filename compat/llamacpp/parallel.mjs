#!/usr/bin/env node
// llama.cpp's batched decoding (via node-llama-cpp) as the peer for `npm run bench:serve`:
// S sequences in one context, each with its own short prompt, each decoding N greedy tokens
// at the same time (node-llama-cpp batches the sequences' tokens into shared llama_decode calls).
//
//   node parallel.mjs MODEL.gguf [THREADS=2] [SEQUENCES=16] [TOKENS=64] [PROMPT=16] [--kv=f16|f32|q8_0]
// (--kv=q8_0 runs with flash attention, which llama.cpp needs for a quantized V cache)
//
// Prints one JSON object: total output tok/s over all sequences, and the single-stream rate
// measured the same way with one sequence, for reference.
import { existsSync } from "node:fs";
import { fail, checkInt, loadLlama, loadModel, vocabSize, llamaInfo, now, randomTokens } from "./common.mjs";

async function streams(model, nVocab, threads, S, N, P, kv) {
    const context = await model.createContext({
        contextSize: S * (P + N + 8),
        batchSize: Math.max(S * P, 512),
        sequences: S,
        threads: { ideal: threads, min: threads },
        ...(kv === "q8_0" ? { flashAttention: true } : {}),
        experimentalKvCacheKeyType: kv.toUpperCase(),
        experimentalKvCacheValueType: kv.toUpperCase(),
    });
    const seqs = Array.from({ length: S }, () => context.getSequence());
    const one = async (seq, i) => {
        let n = 0;
        for await (const _ of seq.evaluate(randomTokens(P, nVocab, 1000 + i), { temperature: 0, yieldEogToken: true }))
            if (++n === N) break;
        return n;
    };
    const t0 = now();
    const counts = await Promise.all(seqs.map(one));
    const seconds = now() - t0;
    await context.dispose();
    return { tokens: counts.reduce((a, b) => a + b, 0), seconds };
}

async function main() {
    const pos = process.argv.slice(2).filter((a) => !a.startsWith("--"));
    const kvArg = process.argv.find((a) => a.startsWith("--kv="));
    const kv = kvArg ? kvArg.slice(5) : "f32";
    if (kv !== "f16" && kv !== "f32" && kv !== "q8_0") throw new Error(`--kv must be f16, f32 or q8_0, got ${kv}`);
    const [model, threads = "2", S = "16", N = "64", P = "16"] = pos;
    if (!model || !existsSync(model)) throw new Error(`model file not found: ${model}`);
    const t = checkInt(Number(threads), "THREADS", 1, 1024), s = checkInt(Number(S), "SEQUENCES", 1, 256);
    const n = checkInt(Number(N), "TOKENS", 1), p = checkInt(Number(P), "PROMPT", 1);
    const llama = await loadLlama(t);
    const m = await loadModel(llama, model);
    const nVocab = vocabSize(m);
    await streams(m, nVocab, t, 1, 8, p, kv); // warm-up
    const single = await streams(m, nVocab, t, 1, n, p, kv);
    const multi = await streams(m, nVocab, t, s, n, p, kv);
    console.log(JSON.stringify({
        sequences: s, tokensPerSequence: n, promptTokens: p, threads: t, kvCacheType: kv,
        totalTokPerSec: multi.tokens / multi.seconds, totalSeconds: multi.seconds,
        singleStreamTokPerSec: single.tokens / single.seconds,
        llamaCpp: llamaInfo(llama),
    }));
}

main().catch((e) => fail(e.message));
