// Shared plumbing for greedy.mjs and bench.mjs: load llama.cpp (CPU only, prebuilt binary
// only, never a download or a source build) through node-llama-cpp, and small helpers.
import { readFileSync } from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

/** Exit with a one-line message on stderr; stdout stays reserved for the JSON result. */
export function fail(message) {
    process.stderr.write(`${process.argv[1]?.split("/").pop() ?? "llamacpp"}: ${message}\n`);
    process.exit(1);
}

/** Throws unless `v` is an integer in [min, max]; `what` names the field in the message. */
export function checkInt(v, what, min, max = Number.MAX_SAFE_INTEGER) {
    if (!Number.isInteger(v) || v < min || v > max)
        throw new Error(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return v;
}

/**
 * getLlama pinned to the CPU prebuilt. `build: "never"` + `skipDownload` make a missing or
 * unloadable binary an error instead of a silent `git clone` + cmake build (CI has no network).
 * llama.cpp's own log goes to stderr so stdout carries only JSON.
 */
export async function loadLlama(threads) {
    return await getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        maxThreads: threads,
        logLevel: LlamaLogLevel.warn,
        logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`),
    });
}

/** Load a GGUF fully on the CPU (no GPU layers); mmap like llama.cpp's CLI tools do by default. */
export async function loadModel(llama, modelPath) {
    return await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
}

/** Vocabulary size as llama.cpp sees it: the length of tokenizer.ggml.tokens. */
export function vocabSize(model) {
    const n = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
    if (!Number.isInteger(n) || n <= 0) throw new Error("model has no tokenizer.ggml.tokens array");
    return n;
}

/** Which llama.cpp this is: release tag, build kind and the CPU features ggml detected. */
export function llamaInfo(llama) {
    return {
        nodeLlamaCpp: JSON.parse(readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url), "utf8")).version,
        llamaCppRepo: llama.llamaCppRelease.repo,
        llamaCppRelease: llama.llamaCppRelease.release,
        buildType: llama.buildType,
        gpu: llama.gpu,
        systemInfo: llama.systemInfo,
    };
}

/** Read all of stdin as a string (for `node greedy.mjs < request.json`). */
export async function readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString("utf8");
}

/** Seconds on a monotonic clock. */
export const now = () => performance.now() / 1000;

/** Deterministic ids in [0, nVocab): mulberry32, so every run and machine sees the same prompt. */
export function randomTokens(n, nVocab, seed = 0x5eed) {
    let a = seed >>> 0;
    const out = [];
    for (let i = 0; i < n; i++) {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        out.push((((t ^ (t >>> 14)) >>> 0) % nVocab));
    }
    return out;
}
