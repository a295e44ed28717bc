// Server-sent events on a raw response: `data: {json}\n\n` per chunk, `data: [DONE]` at the end
// (OpenAI's streaming framing). Headers go out lazily so that a request the engine refuses
// before its first token can still get a proper HTTP error status.

import type { ServerResponse } from 'node:http';
import { errorBody, type ApiError } from './errors.ts';

export class SseStream {
  private opened = false;

  constructor(private readonly res: ServerResponse) {}

  get isOpen(): boolean {
    return this.opened;
  }

  /** False once the client has gone or the stream was ended. */
  get writable(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  open(): void {
    if (this.opened || !this.writable) return;
    this.opened = true;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // proxies must not buffer the stream
    });
  }

  send(obj: unknown): void {
    this.open();
    if (this.writable) this.res.write(`data: ${JSON.stringify(obj)}\n\n`);
  }

  done(): void {
    this.open();
    if (this.writable) this.res.end('data: [DONE]\n\n');
  }

  /** Before the stream opened: a plain JSON error response; after: an error event, then [DONE]. */
  fail(e: ApiError): void {
    if (!this.writable) return;
    if (!this.opened) {
      this.opened = true;
      this.res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8', ...e.headers });
      this.res.end(JSON.stringify(errorBody(e)));
      return;
    }
    this.res.write(`data: ${JSON.stringify(errorBody(e))}\n\n`);
    this.res.end('data: [DONE]\n\n');
  }
}
