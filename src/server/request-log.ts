// One log line per HTTP request, for operators: request id, method, path, status, model, prompt and
// output tokens, time to first token, duration and finish reason; readable text by default, one JSON
// object per line with format 'json' (pino's keys: time, level, msg, and pino-http's levels: info,
// warn for 4xx, error for 5xx; so log tools that read fastify's logs read these too). Each response carries the id in `x-request-id`: the client's own
// if it sent a sane one (so a gateway's id follows the request through), else a new UUID.
//
// The generation routes report their numbers with noteGeneration(); every other request (health,
// tokenize, errors) gets a line with what is known. Successful /health and /metrics requests are
// not logged: probes and scrapes every few seconds would drown the lines that matter.
//
// A line is one JSON.stringify or one template string: no logger library is needed for that.

import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface RequestLogOptions {
  format?: LogFormat;
  /** Where each line goes (with its newline); default: stdout. */
  write?: (line: string) => void;
}

/** What a generation route knows about its request, reported when the request settles. */
export interface GenerationNote {
  model: string;
  promptTokens: number;
  outputTokens: number;
  /** performance.now() when the first token arrived, if one did. */
  firstTokenAt?: number;
  /** The first choice's finish reason, or 'abort' (client gone), 'error', 'rejected'. */
  finishReason: string;
}

/** One request's log record (the JSON line's fields, minus time/level/msg). */
export interface RequestRecord {
  request_id: string;
  method: string;
  path: string;
  status: number;
  model?: string;
  prompt_tokens?: number;
  output_tokens?: number;
  ttft_ms?: number;
  duration_ms: number;
  finish_reason?: string;
}

const notes = new WeakMap<ServerResponse, GenerationNote>();

/** Called by the generation routes once per request, when it settles. */
export function noteGeneration(res: ServerResponse, note: GenerationNote): void {
  notes.set(res, note);
}

// Printable ASCII without spaces, quotes or backslashes, up to 128 characters: what gateways
// (Envoy's UUIDs, nginx's $request_id, AWS trace ids) send, and safe to echo in a header and a log.
const SANE_ID = /^[A-Za-z0-9._:\/+=@-]{1,128}$/;

export function requestIdFrom(header: string | string[] | undefined): string {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && SANE_ID.test(v) ? v : randomUUID();
}

const QUIET = /^\/(health|metrics)$/;

/**
 * Sets `x-request-id` on every response and logs one line per request. Register it before other
 * onRequest hooks, so that requests they answer (401, 503) are logged and carry the id too.
 */
export function registerRequestLog(app: FastifyInstance, opts: RequestLogOptions = {}): void {
  const format = opts.format ?? 'text';
  const write = opts.write ?? ((line: string) => void process.stdout.write(line));
  app.addHook('onRequest', async (req, reply) => {
    const id = requestIdFrom(req.headers['x-request-id']);
    const start = performance.now();
    const res = reply.raw;
    // On the raw response, so that hijacked replies (SSE) send it too.
    res.setHeader('x-request-id', id);
    let logged = false;
    const done = (end: number) => {
      if (logged) return;
      logged = true;
      const path = req.url.split('?', 1)[0]!;
      // Not finished: the client went away before the answer (nginx's 499).
      const status = res.writableFinished ? res.statusCode : 499;
      if (QUIET.test(path) && status < 400) return;
      const note = notes.get(res);
      const bodyModel = (req.body as { model?: unknown } | undefined)?.model;
      const model = note?.model ?? (typeof bodyModel === 'string' ? bodyModel.slice(0, 200) : undefined);
      // Fields in the order the text line has them: what the request was, then its numbers.
      const rec: RequestRecord = {
        request_id: id,
        method: req.method,
        path,
        status,
        ...(model !== undefined && { model }),
        ...(note && { prompt_tokens: note.promptTokens, output_tokens: note.outputTokens }),
        ...(note?.firstTokenAt !== undefined && { ttft_ms: round(note.firstTokenAt - start) }),
        duration_ms: round(end - start),
        ...(note && { finish_reason: note.finishReason }),
      };
      try {
        write(format === 'json' ? jsonLine(rec) : textLine(rec));
      } catch {
        // a log sink that fails must not take the server down
      }
    };
    // After the current handlers: a generation route notes a client that went away in its own
    // 'close' listener, registered after this one.
    const later = () => {
      const end = performance.now();
      setImmediate(() => done(end));
    };
    res.once('finish', later);
    res.once('close', later);
  });
}

const round = (ms: number) => Math.round(ms * 10) / 10;

export function jsonLine(r: RequestRecord): string {
  return JSON.stringify({ time: new Date().toISOString(), level: r.status >= 500 ? 'error' : r.status >= 400 ? 'warn' : 'info', msg: 'request', ...r }) + '\n';
}

/** `2026-01-01T00:00:00.000Z 3f2a… POST /v1/chat/completions 200 model=m prompt_tokens=12 …` */
export function textLine(r: RequestRecord): string {
  const parts = [new Date().toISOString(), r.request_id, r.method, r.path, String(r.status)];
  if (r.model !== undefined) parts.push(`model=${word(r.model)}`);
  if (r.prompt_tokens !== undefined) parts.push(`prompt_tokens=${r.prompt_tokens}`);
  if (r.output_tokens !== undefined) parts.push(`output_tokens=${r.output_tokens}`);
  if (r.ttft_ms !== undefined) parts.push(`ttft_ms=${r.ttft_ms}`);
  parts.push(`duration_ms=${r.duration_ms}`);
  if (r.finish_reason !== undefined) parts.push(`finish_reason=${r.finish_reason}`);
  return parts.join(' ') + '\n';
}

/** A value as one word of the text line: as it is when plain, else JSON-quoted. */
function word(v: string): string {
  return /^[^\s"=\\]+$/.test(v) ? v : JSON.stringify(v);
}
