// The web playground: a static page (plain HTML/CSS/JS, no build step) served at GET / that talks
// to this server's own /v1 API from the browser. The files ship in the package next to this
// module and are read once at startup, so a missing asset fails `serve` at once, not a visitor.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';

const DIR = join(import.meta.dirname, 'playground');

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/playground/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/playground/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** Serves the playground page and its assets. The routes are open: the page asks for the API key itself. */
export function registerPlayground(app: FastifyInstance): void {
  for (const [route, { file, type }] of Object.entries(ASSETS)) {
    const body = readFileSync(join(DIR, file));
    app.get(route, async (_req, reply) =>
      reply
        .type(type)
        // The page is tiny; always revalidating keeps it in step with the server after upgrades.
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        // Same-origin only: the page needs nothing but its own files and this server's API.
        .header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        .send(body),
    );
  }
}
