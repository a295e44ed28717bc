// The OpenAI-compatible HTTP server (fastify). It owns HTTP concerns only: parsing, validation,
// auth, response shapes, SSE and metrics; the engine behind EngineClient (src/engine/api.ts) does
// the rest, so tests drive this server with a fake engine and `serve` with the real one.

import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { EngineClient } from '../engine/api.ts';
import type { ImageClient } from '../diffusion/service.ts';
import { registerImageRoutes } from './images-route.ts';
import { ApiError, badRequest, errorBody, toApiError } from './errors.ts';
import { handleGenerate, type GenerateContext } from './generate-route.ts';
import { ServerMetrics } from './metrics.ts';
import { registerPlayground } from './playground.ts';
import { registerRequestLog, type RequestLogOptions } from './request-log.ts';
import { servedFor, servedModels } from './models-router.ts';
import { messagesForTemplate, parseTools } from './tools.ts';
import { engineCall, isObject, optBool, parseMessages, tokenList, type Body } from './validate.ts';

export interface ServerOptions {
  /** When set, /v1/*, /tokenize and /detokenize need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The name clients use in `model` (default: the engine's). */
  modelName?: string;
  /** Fastify's request logging (off by default). */
  logger?: boolean;
  /** Largest request body in bytes (default 8 MiB). */
  bodyLimit?: number;
  /** One log line per request (src/server/request-log.ts); off when not given. */
  requestLog?: RequestLogOptions;
  /** An image model: /v1/images/generations and /v1/images/edits (src/server/images-route.ts). */
  images?: ImageClient;
}

interface ServerState {
  draining: boolean;
  metrics: ServerMetrics;
}

const states = new WeakMap<FastifyInstance, ServerState>();

/**
 * Stops accepting work: new requests get 503 with Retry-After and `Connection: close` (health too,
 * so load balancers move on) while the listener stays open until in-flight requests finish.
 */
export function startDraining(app: FastifyInstance): void {
  const s = states.get(app);
  if (s) s.draining = true;
}

/** Seconds a client should wait before retrying while the server drains (a replica may be back by then). */
const DRAIN_RETRY_AFTER_S = 5;

const PROTECTED = /^\/(v1(\/|$)|tokenize$|detokenize$)/;
const OPEN = /^\/(health|metrics)$/;
/** application/json, or a structured-syntax JSON type (application/vnd.x+json), any parameters. */
const JSON_TYPE = /^\s*application\/([\w.-]+\+)?json\s*(;|$)/i;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function buildServer(engine: EngineClient, opts: ServerOptions = {}): FastifyInstance {
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: opts.bodyLimit ?? 8 * 1024 * 1024 });
  const modelName = opts.modelName ?? engine.modelName;
  const state: ServerState = { draining: false, metrics: new ServerMetrics() };
  states.set(app, state);
  if (opts.requestLog) registerRequestLog(app, opts.requestLog); // first: it logs the requests later hooks refuse
  const ctx: GenerateContext = { engine, metrics: state.metrics, modelName };
  const keyBytes = opts.apiKey ? Buffer.from(`Bearer ${opts.apiKey}`) : undefined;

  // Bodies must be JSON sent as JSON, as OpenAI's API requires: another content type (curl -d
  // sends form-urlencoded, a text/plain body) or none is a 400 naming the header; invalid UTF-8
  // and malformed JSON are the client's fault too: 400, never 500.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, raw, done) => {
    const buf = raw as Buffer;
    const ct = req.headers['content-type'];
    if (ct === undefined || !JSON_TYPE.test(ct)) {
      const got = ct === undefined ? 'no Content-Type header' : `Content-Type '${ct}'`;
      return done(badRequest(`the request body must be JSON sent with 'Content-Type: application/json'; got ${got}`, null, 'invalid_content_type'));
    }
    let text: string;
    try {
      text = strictUtf8.decode(buf);
    } catch {
      return done(badRequest('the request body is not valid UTF-8', null, 'invalid_encoding'));
    }
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(badRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'));
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?', 1)[0]!;
    if (state.draining && !OPEN.test(path)) {
      reply.header('connection', 'close');
      return sendError(reply, new ApiError(503, 'the server is shutting down; retry on another replica or later', null, 'shutting_down', undefined, { 'retry-after': String(DRAIN_RETRY_AFTER_S) }));
    }
    if (keyBytes && PROTECTED.test(path)) {
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== keyBytes.length || !timingSafeEqual(got, keyBytes)) {
        return sendError(reply, new ApiError(401, 'invalid or missing API key (send Authorization: Bearer <key>)', null, 'invalid_api_key'));
      }
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) app.log.error(err);
    return sendError(reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new ApiError(404, `no route for ${req.method} ${req.url.split('?', 1)[0]}`, null, 'not_found')));

  const body = (req: FastifyRequest): Body => {
    if (!isObject(req.body)) throw badRequest('the request body must be a JSON object', null, 'invalid_type');
    return req.body;
  };
  const generateRoute = (kind: 'completion' | 'chat') => async (req: FastifyRequest, reply: FastifyReply) => {
    const b = body(req);
    return handleGenerate(kind, b, reply, { ...ctx, ...servedFor(engine, modelName, b) });
  };
  app.post('/v1/completions', generateRoute('completion'));
  if (opts.images) registerImageRoutes(app, opts.images);
  app.post('/v1/chat/completions', generateRoute('chat'));

  const modelCard = (m: { name: string; maxContext: number }) => ({ id: m.name, object: 'model', created: startedAt, owned_by: 'slipstream', root: m.name, max_model_len: m.maxContext });
  const startedAt = Math.floor(Date.now() / 1000);
  const imageCard = (m: ImageClient) => ({ id: m.modelName, object: 'model', created: startedAt, owned_by: 'slipstream', root: m.modelName, kind: 'image', native_size: `${m.nativeSize}x${m.nativeSize}` });
  app.get('/v1/models', async () => ({ object: 'list', data: [...servedModels(engine, modelName).map(modelCard), ...(opts.images ? [imageCard(opts.images)] : [])] }));
  app.get('/v1/models/:model', async (req) => {
    const m = (req.params as { model: string }).model;
    if (opts.images && m === opts.images.modelName) return imageCard(opts.images);
    const served = servedFor(engine, modelName, { model: m });
    return modelCard({ name: served.modelName, maxContext: served.engine.maxContext });
  });

  app.post('/tokenize', async (req) => {
    const b = body(req);
    const served = servedFor(ctx.engine, modelName, b);
    const { engine } = served;
    let tokens: number[];
    if (b.messages !== undefined) {
      const messages = parseMessages(b.messages);
      const agp = optBool(b, 'add_generation_prompt') ?? true;
      // the prompt a chat request with these tools would get (as vLLM's /tokenize does)
      const support = engine.toolSupport?.() ?? { tools: false, format: null };
      const tools = parseTools(b, support, served.modelName);
      const turns = messagesForTemplate(messages, tools?.format ?? support.format);
      const text = engineCall('messages', () => engine.applyChatTemplate(turns, agp, tools?.templateTools ? { tools: tools.templateTools } : undefined));
      tokens = engineCall('messages', () => engine.encode(text, false));
    } else if (typeof b.prompt === 'string') {
      const special = optBool(b, 'add_special_tokens') ?? true;
      tokens = engineCall('prompt', () => engine.encode(b.prompt as string, special));
    } else {
      throw badRequest(`send 'prompt' (a string) or 'messages'`, 'prompt', b.prompt === undefined ? 'missing' : 'invalid_type');
    }
    return { tokens, count: tokens.length, max_model_len: engine.maxContext };
  });

  app.post('/detokenize', async (req) => {
    const b = body(req);
    const { engine } = servedFor(ctx.engine, modelName, b);
    const tokens = tokenList(b.tokens, 'tokens');
    return { prompt: engineCall('tokens', () => engine.decode(tokens)) };
  });

  app.get('/health', async (_req, reply) => {
    if (state.draining) return reply.code(503).headers({ 'retry-after': String(DRAIN_RETRY_AFTER_S), connection: 'close' }).send({ status: 'shutting_down' });
    return { status: 'ok' };
  });

  app.get('/metrics', async (_req, reply) => {
    const text = await state.metrics.render(engine, opts.images);
    return reply.type(state.metrics.contentType).send(text);
  });

  // GET / and its assets: open like /health (not under PROTECTED); the page asks for the key.
  registerPlayground(app);

  return app;
}

function sendError(reply: FastifyReply, e: ApiError): FastifyReply {
  return reply.code(e.status).headers(e.headers).type('application/json; charset=utf-8').send(errorBody(e));
}
