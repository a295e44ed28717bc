// Errors in OpenAI's format: {error: {message, type, param, code}}. Every failure the server can
// meet (bad body, engine refusal, bug) becomes one of these with the right HTTP status, so a
// client library sees the same shapes it sees from OpenAI and the process never crashes.

import { EngineError } from '../engine/api.ts';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = typeForStatus(status),
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function typeForStatus(status: number): string {
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** 400 naming the offending request field. */
export function badRequest(message: string, param: string | null, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, param, code);
}

export function errorBody(e: ApiError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** Seconds a client should wait before retrying when the waiting queue is full. */
export const RETRY_AFTER_S = 1;

/**
 * Maps anything thrown while serving a request to an ApiError. `promptParam` names the field that
 * carried the prompt ('prompt' or 'messages'), for engine errors about it.
 */
export function toApiError(err: unknown, promptParam: string | null = null): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof EngineError) {
    switch (err.code) {
      case 'queue_full':
        return new ApiError(429, err.message || 'the waiting queue is full; retry later', null, 'queue_full', undefined, {
          'retry-after': String(RETRY_AFTER_S),
        });
      case 'shutting_down':
        return new ApiError(503, err.message || 'the server is shutting down', null, 'shutting_down');
      case 'context_length':
        return new ApiError(400, err.message, promptParam, 'context_length_exceeded');
      case 'bad_request':
        return new ApiError(400, err.message, promptParam, 'invalid_value');
      default:
        return new ApiError(500, err.message || 'internal engine error', null, 'internal_error');
    }
  }
  // Fastify's own errors (body too large, unsupported media type...) carry a 4xx statusCode.
  const e = err as { statusCode?: unknown; message?: unknown; code?: unknown };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new ApiError(e.statusCode, String(e.message ?? 'bad request'), null, typeof e.code === 'string' ? e.code : null);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `internal server error: ${msg}`, null, 'internal_error');
}
