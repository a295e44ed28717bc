#!/usr/bin/env node
// Greedy decoding with llama.cpp (via node-llama-cpp), as the correctness peer for Slipstream.
//
//   node greedy.mjs request.json      or      node greedy.mjs < request.json
//
// Request: { "model": "/path/x.gguf", "prompts": [[1, 15, 27], ...], "nPredict": 64,
//            "threads": 2, "contextSize": 512, "flashAttention": false, "kvCacheType": "f32" }
// (only model and prompts are required; the values shown are the defaults)
// Output (stdout, one JSON object):
//   { "outputs": [[...nPredict token ids...], ...],
//     "logits":  [[...one number (or null) per vocabulary entry...], ...],
//     "logitsRelativeToMax": true, "info": {...} }
//
// Prompts are raw token ids: no BOS is added and nothing is tokenized. Decoding is argmax
// (ties go to the lowest id), no repetition penalty, EOS/EOG tokens are ordinary tokens and
// generation always runs exactly nPredict steps.
//
// About "logits": node-llama-cpp 3.21 does not hand out raw logits. What it does expose is
// the softmax of the raw logits over the whole vocabulary (float32, computed in its addon
// from llama_get_logits_ith with the greedy sampler, which leaves logits untouched). From it
// we recover logit[i] - max(logit) = log(p[i]) - log(p[max]) exactly up to float32 rounding
// (~1e-6 absolute). Compare against Slipstream's logits minus their own max. An entry is null
// where p[i] fell below FLT_MIN (logit more than ~87 below the log-sum-exp), where float32
// no longer carries the value.
import { readFileSync, existsSync } from "node:fs";
import { fail, checkInt, loadLlama, loadModel, vocabSize, llamaInfo, readStdin } from "./common.mjs";

const FLT_MIN = 1.1754943508222875e-38; // smallest normal float32

function parseRequest(text) {
    let req;
    try {
        req = JSON.parse(text);
    } catch (e) {
        throw new Error(`request is not valid JSON: ${e.message}`);
    }
    if (req === null || typeof req !== "object" || Array.isArray(req)) throw new Error("request must be a JSON object");
    if (typeof req.model !== "string" || req.model === "") throw new Error("request.model must be a path to a .gguf file");
    if (!existsSync(req.model)) throw new Error(`model file not found: ${req.model}`);
    if (!Array.isArray(req.prompts) || req.prompts.length === 0) throw new Error("request.prompts must be a non-empty array of token-id arrays");
    req.prompts.forEach((p, i) => {
        if (!Array.isArray(p) || p.length === 0) throw new Error(`prompts[${i}] must be a non-empty array of token ids`);
        p.forEach((t, j) => checkInt(t, `prompts[${i}][${j}]`, 0));
    });
    const nPredict = checkInt(req.nPredict ?? 64, "nPredict", 1);
    const threads = checkInt(req.threads ?? 2, "threads", 1, 1024);
    const contextSize = checkInt(req.contextSize ?? 512, "contextSize", 1);
    if (req.flashAttention !== undefined && typeof req.flashAttention !== "boolean")
        throw new Error("flashAttention must be a boolean");
    const kvCacheType = req.kvCacheType ?? "f32";
    if (kvCacheType !== "f32" && kvCacheType !== "f16") throw new Error(`kvCacheType must be "f32" or "f16", got ${JSON.stringify(kvCacheType)}`);
    const longest = Math.max(...req.prompts.map((p) => p.length));
    // Past the context llama.cpp would shift (drop early tokens) silently and change results.
    if (longest + nPredict > contextSize)
        throw new Error(`longest prompt (${longest}) + nPredict (${nPredict}) exceeds contextSize (${contextSize})`);
    return { model: req.model, prompts: req.prompts, nPredict, threads, contextSize, flashAttention: req.flashAttention ?? false, kvCacheType, longest };
}

/** Dense vector of logit - max(logit) from node-llama-cpp's full softmax map. */
function relativeLogits(probabilities, nVocab) {
    if (probabilities.size !== nVocab)
        throw new Error(`expected probabilities for all ${nVocab} tokens, got ${probabilities.size}`);
    let pMax = 0;
    for (const p of probabilities.values()) if (p > pMax) pMax = p;
    const logPMax = Math.log(pMax);
    const out = new Array(nVocab).fill(null);
    for (const [token, p] of probabilities) out[token] = p >= FLT_MIN ? Math.log(p) - logPMax : null;
    return out;
}

async function main() {
    const text = process.argv[2] !== undefined ? readFileSync(process.argv[2], "utf8") : await readStdin();
    const req = parseRequest(text);

    const llama = await loadLlama(req.threads);
    const model = await loadModel(llama, req.model);
    const nVocab = vocabSize(model);
    req.prompts.forEach((p, i) => p.forEach((t, j) => checkInt(t, `prompts[${i}][${j}]`, 0, nVocab - 1)));

    const context = await model.createContext({
        contextSize: req.contextSize,
        batchSize: req.longest, // whole prompt in one llama_decode
        sequences: 1,
        threads: { ideal: req.threads, min: req.threads },
        flashAttention: req.flashAttention,
        // llama.cpp defaults to an f16 KV cache, which alone moves logits by ~1e-2 on a toy
        // model; f32 (the default here) agrees with a float64 reference to ~1e-5.
        experimentalKvCacheKeyType: req.kvCacheType.toUpperCase(),
        experimentalKvCacheValueType: req.kvCacheType.toUpperCase(),
    });
    const sequence = context.getSequence();
    const greedy = { temperature: 0 }; // temperature 0 => llama.cpp's greedy sampler alone

    const outputs = [];
    const logits = [];
    for (const prompt of req.prompts) {
        await sequence.clearHistory();
        // Prefill: evaluate the prompt, sample the first token and get the full distribution.
        const input = prompt.slice(0, -1);
        input.push([prompt[prompt.length - 1], { generateNext: { token: true, probabilities: true, options: greedy } }]);
        const res = await sequence.controlledEvaluate(input);
        const first = res[prompt.length - 1]?.next;
        if (first?.token == null || first.probabilities == null) throw new Error("llama.cpp returned no token for the prompt");
        logits.push(relativeLogits(first.probabilities, nVocab));

        // Decode: feed each token back; yieldEogToken keeps going through EOS.
        const tokens = [first.token];
        if (req.nPredict > 1) {
            for await (const t of sequence.evaluate([first.token], { ...greedy, yieldEogToken: true })) {
                tokens.push(t);
                if (tokens.length === req.nPredict) break;
            }
        }
        if (tokens.length !== req.nPredict) throw new Error(`generation stopped after ${tokens.length} of ${req.nPredict} tokens`);
        outputs.push(tokens);
    }

    const info = {
        ...llamaInfo(llama),
        nVocab,
        threads: context.currentThreads,
        contextSize: context.contextSize,
        batchSize: context.batchSize,
        flashAttention: req.flashAttention,
        kvCacheType: req.kvCacheType,
    };
    await context.dispose();
    await model.dispose();
    await llama.dispose();
    process.stdout.write(JSON.stringify({ outputs, logits, logitsRelativeToMax: true, info }) + "\n");
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
