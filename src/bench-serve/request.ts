// The HTTP side of the benchmark: one streaming request to an OpenAI-compatible server, timed
// chunk by chunk. node:http rather than fetch: no default body/headers timeouts that a long
// queued request would trip, one keep-alive agent with no socket cap (the benchmark, not the
// agent, decides concurrency), and a timestamp taken as each network read arrives.

import http from 'node:http';
import https from 'node:https';
import { UsageError } from '../errors.ts';

export interface HttpTarget {
  /** Server root, without a trailing /v1. */
  base: URL;
  apiKey?: string;
  agent: http.Agent;
}

export function makeTarget(baseUrl: string, apiKey?: string): HttpTarget {
  let base: URL;
  try {
    base = new URL(baseUrl);
  } catch {
    throw new UsageError(`--base-url must be a URL like http://127.0.0.1:8000, got '${baseUrl}'`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--base-url must be http:// or https://, got '${baseUrl}'`);
  // Accept both http://host:port and http://host:port/v1.
  base.pathname = base.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  const Agent = base.protocol === 'https:' ? https.Agent : http.Agent;
  return { base, apiKey, agent: new Agent({ keepAlive: true, maxSockets: Infinity }) };
}

export function closeTarget(t: HttpTarget): void {
  t.agent.destroy();
}

function send(t: HttpTarget, method: string, path: string, body: unknown, onResponse: (res: http.IncomingMessage) => void, onError: (e: Error) => void): http.ClientRequest {
  const url = new URL(t.base.pathname.replace(/\/+$/, '') + path, t.base);
  const headers: http.OutgoingHttpHeaders = { accept: 'application/json, text/event-stream' };
  let payload: Buffer | undefined;
  if (body !== undefined) {
    payload = Buffer.from(JSON.stringify(body));
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  if (t.apiKey) headers.authorization = `Bearer ${t.apiKey}`;
  const mod = url.protocol === 'https:' ? https : http;
  const req = mod.request(url, { method, headers, agent: t.agent }, onResponse);
  req.on('error', onError);
  req.end(payload);
  return req;
}

/** A plain JSON request (GET /v1/models, POST /tokenize). Never throws for HTTP errors: returns the status. */
export function requestJson(t: HttpTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  return new Promise((resolve, reject) => {
    send(
      t,
      method,
      path,
      body,
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      },
      reject,
    );
  });
}

export interface StreamOutcome {
  success: boolean;
  error?: string;
  /** performance.now() when the request was sent. */
  sentAt: number;
  ttftMs: number;
  itlMs: number[];
  e2elMs: number;
  /** Text chunks received (the output token count when the server gives no usage). */
  chunks: number;
  usageCompletionTokens?: number;
  usagePromptTokens?: number;
  outputChars: number;
}

/** The text a streamed chunk carries: `choices[0].text` (completions) or `choices[0].delta.content` (chat). */
function chunkText(data: Record<string, unknown>): string | undefined {
  const choices = data.choices;
  if (!Array.isArray(choices) || choices.length === 0) return undefined;
  const c = choices[0] as { text?: unknown; delta?: { content?: unknown; reasoning_content?: unknown } };
  if (typeof c.text === 'string') return c.text;
  const d = c.delta;
  if (d && typeof d.content === 'string' && d.content !== '') return d.content;
  if (d && typeof d.reasoning_content === 'string') return d.reasoning_content;
  return undefined;
}

function errorText(e: unknown): string {
  if (e && typeof e === 'object') {
    const m = (e as { message?: unknown }).message;
    if (typeof m === 'string') return m;
  }
  return JSON.stringify(e);
}

/**
 * POSTs a streaming request and times it: TTFT at the first chunk with non-empty text, one ITL
 * per later text chunk, E2EL at the last text chunk (vLLM's backend_request_func). A request
 * fails on a non-2xx status (error: status and body), a broken connection, an error event in
 * the stream, or a stream that carried no text at all.
 */
export function streamRequest(t: HttpTarget, path: string, body: unknown): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const o: StreamOutcome = { success: false, sentAt: performance.now(), ttftMs: 0, itlMs: [], e2elMs: 0, chunks: 0, outputChars: 0 };
    let last = 0;
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      if (error === undefined && o.chunks === 0) error = 'the stream carried no text chunk (cannot measure TTFT)';
      o.success = error === undefined;
      if (error !== undefined) o.error = error;
      o.e2elMs = o.chunks > 0 ? last - o.sentAt : 0;
      resolve(o);
    };
    send(
      t,
      'POST',
      path,
      body,
      (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const parts: Buffer[] = [];
          res.on('data', (b: Buffer) => parts.push(b));
          res.on('end', () => finish(`HTTP ${status}: ${Buffer.concat(parts).toString('utf8').slice(0, 500)}`));
          res.on('error', (e) => finish(`HTTP ${status}: ${e.message}`));
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
        let done = false;
        res.on('data', (s: string) => {
          const now = performance.now();
          buf += s;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).replace(/\r$/, '');
            buf = buf.slice(nl + 1);
            if (!line.startsWith('data:')) continue; // blank separators, comments, event: lines
            const payload = line.slice(5).trim();
            if (payload === '[DONE]') {
              done = true;
              continue;
            }
            let data: Record<string, unknown>;
            try {
              data = JSON.parse(payload) as Record<string, unknown>;
            } catch {
              res.destroy();
              return finish(`malformed stream event: ${payload.slice(0, 200)}`);
            }
            if (data.error !== undefined) {
              res.destroy();
              return finish(`error event in the stream: ${errorText(data.error)}`);
            }
            const text = chunkText(data);
            if (text) {
              if (o.chunks === 0) o.ttftMs = now - o.sentAt;
              else o.itlMs.push(now - last);
              last = now;
              o.chunks++;
              o.outputChars += text.length;
            }
            const usage = data.usage as { completion_tokens?: unknown; prompt_tokens?: unknown } | null | undefined;
            if (usage && typeof usage.completion_tokens === 'number') o.usageCompletionTokens = usage.completion_tokens;
            if (usage && typeof usage.prompt_tokens === 'number') o.usagePromptTokens = usage.prompt_tokens;
          }
        });
        res.on('end', () => finish(res.complete || done ? undefined : 'the connection closed mid-stream'));
        res.on('aborted', () => finish('the connection closed mid-stream'));
        res.on('error', (e) => finish(done ? undefined : `stream error: ${e.message}`));
      },
      (e) => finish(`request error: ${e.message}`),
    );
  });
}
