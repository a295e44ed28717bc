#!/usr/bin/env node
// Speed of llama.cpp (via node-llama-cpp) on the CPU, as the peer for Slipstream's benchmarks.
//
//   node bench.mjs MODEL.gguf [THREADS=2] [PROMPT_TOKENS=512] [DECODE_TOKENS=128]
//                  [--reps=3] [--kv=f16|f32|q8_0] [--flash-attention]
// (llama.cpp runs a quantized V cache only with flash attention, so --kv=q8_0 turns it on.)
//
// Measures: model load (getLlama's binary load is reported apart), prefill of PROMPT_TOKENS
// random-but-valid token ids in one llama_decode (batch size = prompt length), then
// DECODE_TOKENS greedy tokens one at a time after that prompt. Every rate is the median of
// --reps runs that follow one untimed warm-up run (which also faults in the mmapped weights).
// Prints one JSON object on stdout; llama.cpp's log goes to stderr.
import { existsSync } from "node:fs";
import { fail, checkInt, loadLlama, loadModel, vocabSize, llamaInfo, now, randomTokens } from "./common.mjs";

function parseArgs(argv) {
    const pos = [];
    const opt = { reps: 3, kv: "f16", flashAttention: false };
    for (const a of argv) {
        if (a === "--flash-attention") opt.flashAttention = true;
        else if (a.startsWith("--reps=")) opt.reps = checkInt(Number(a.slice(7)), "--reps", 1, 100);
        else if (a.startsWith("--kv=")) {
            opt.kv = a.slice(5);
            if (opt.kv !== "f16" && opt.kv !== "f32" && opt.kv !== "q8_0") throw new Error(`--kv must be f16, f32 or q8_0, got ${opt.kv}`);
        } else if (a.startsWith("--")) throw new Error(`unknown option ${a}`);
        else pos.push(a);
    }
    if (pos.length < 1 || pos.length > 4)
        throw new Error("usage: bench.mjs MODEL.gguf [THREADS=2] [PROMPT_TOKENS=512] [DECODE_TOKENS=128] [--reps=3] [--kv=f16|f32|q8_0] [--flash-attention]");
    if (opt.kv === "q8_0") opt.flashAttention = true;
    const [model, threads = "2", promptTokens = "512", decodeTokens = "128"] = pos;
    if (!existsSync(model)) throw new Error(`model file not found: ${model}`);
    return {
        model,
        threads: checkInt(Number(threads), "THREADS", 1, 1024),
        promptTokens: checkInt(Number(promptTokens), "PROMPT_TOKENS", 1),
        decodeTokens: checkInt(Number(decodeTokens), "DECODE_TOKENS", 1),
        ...opt,
    };
}

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, digits = 4) => Number(x.toPrecision(digits));


/** One prefill + decode pass on a cleared sequence; returns both durations in seconds. */
async function run(sequence, prompt, decodeTokens) {
    const greedy = { temperature: 0 };
    await sequence.clearHistory();
    const input = prompt.slice(0, -1);
    input.push([prompt[prompt.length - 1], { generateNext: { token: true, options: greedy } }]);
    let t0 = now();
    const res = await sequence.controlledEvaluate(input);
    const prefill = now() - t0;
    const first = res[prompt.length - 1]?.next?.token;
    if (first == null) throw new Error("llama.cpp returned no token after the prompt");

    // Each generator step decodes the previous token (one llama_decode of 1 token) and
    // samples the next; yieldEogToken keeps EOS from ending the run early.
    let n = 0;
    t0 = now();
    for await (const _ of sequence.evaluate([first], { ...greedy, yieldEogToken: true }))
        if (++n === decodeTokens) break;
    const decode = now() - t0;
    if (n !== decodeTokens) throw new Error(`decode stopped after ${n} of ${decodeTokens} tokens`);
    return { prefill, decode };
}

async function main() {
    const args = parseArgs(process.argv.slice(2));

    let t0 = now();
    const llama = await loadLlama(args.threads);
    const backendInitSeconds = now() - t0;

    // Load time: median over reps loads; the model kept is the last one.
    const loads = [];
    let model;
    for (let i = 0; i < args.reps; i++) {
        if (model) await model.dispose();
        t0 = now();
        model = await loadModel(llama, args.model);
        loads.push(now() - t0);
    }
    const nVocab = vocabSize(model);

    const context = await model.createContext({
        contextSize: args.promptTokens + args.decodeTokens + 1,
        batchSize: args.promptTokens, // the whole prompt in one llama_decode
        sequences: 1,
        threads: { ideal: args.threads, min: args.threads },
        flashAttention: args.flashAttention,
        experimentalKvCacheKeyType: args.kv.toUpperCase(),
        experimentalKvCacheValueType: args.kv.toUpperCase(),
    });
    const sequence = context.getSequence();
    const prompt = randomTokens(args.promptTokens, nVocab);

    // Warm-up: faults in the mmapped weights and spins up ggml's thread pool.
    await run(sequence, prompt, Math.min(args.decodeTokens, 8));
    const runs = [];
    for (let i = 0; i < args.reps; i++) runs.push(await run(sequence, prompt, args.decodeTokens));

    const prefillSeconds = median(runs.map((r) => r.prefill));
    const decodeSeconds = median(runs.map((r) => r.decode));
    const result = {
        loadSeconds: round(median(loads)),
        promptTokens: args.promptTokens,
        prefillTokPerSec: round(args.promptTokens / prefillSeconds),
        decodeTokens: args.decodeTokens,
        decodeTokPerSec: round(args.decodeTokens / decodeSeconds),
        threads: context.currentThreads,
        reps: args.reps,
        backendInitSeconds: round(backendInitSeconds),
        loadSecondsAll: loads.map((x) => round(x)),
        prefillSecondsAll: runs.map((r) => round(r.prefill)),
        decodeSecondsAll: runs.map((r) => round(r.decode)),
        kvCacheType: args.kv,
        flashAttention: args.flashAttention,
        contextSize: context.contextSize,
        batchSize: context.batchSize,
        nVocab,
        modelBytes: model.size,
        llamaCpp: llamaInfo(llama),
    };
    await context.dispose();
    await model.dispose();
    await llama.dispose();
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
