import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from './errors.js';

/**
 * The API reference at /docs: Redoc's standalone bundle rendering /openapi.json. `npm run build`
 * copies the bundle from the `redoc` package (2.x: 3.x sends traces to its vendor) next to the
 * compiled gateway, so the page loads nothing but the gateway's own files (docs/openapi.md).
 */
export const REFERENCE_DIR = fileURLToPath(new URL('../../reference/', import.meta.url));
export const REDOC_BUNDLE = 'redoc.standalone.js';

/**
 * Own scripts and the document only. Redoc styles its components with inline style elements, and
 * its search index runs in a worker made from a blob; fonts are the reader's own (no web fonts).
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Settle API reference</title>
<link rel="icon" href="data:,">
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<noscript>The API reference needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="reference"></div>
<script src="/docs/${REDOC_BUNDLE}"></script>
<script src="/docs/reference.js"></script>
</body>
</html>
`;

const FONTS = {
  text: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  code: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
};

/** Redoc's options (https://redocly.com/docs/redoc/config): system fonts, required fields first. */
const OPTIONS = {
  requiredPropsFirst: true,
  expandResponses: '200,201',
  jsonSampleExpandLevel: 3,
  hideHostname: false,
  theme: {
    colors: { primary: { main: '#1f4fd6' } },
    typography: {
      fontFamily: FONTS.text,
      headings: { fontFamily: FONTS.text },
      code: { fontFamily: FONTS.code },
    },
  },
};

/** Starts Redoc on the page; `data-reference="ready"` on <body> once the document is rendered. */
const INIT = `'use strict';
Redoc.init('/openapi.json', ${JSON.stringify(OPTIONS)}, document.getElementById('reference'), function (error) {
  document.body.setAttribute('data-reference', error ? 'failed' : 'ready');
});
`;

function secured(reply: FastifyReply, type: string, cache: string): FastifyReply {
  return reply
    .type(type)
    .header('Content-Security-Policy', CSP)
    .header('X-Content-Type-Options', 'nosniff')
    .header('Referrer-Policy', 'no-referrer')
    .header('Cache-Control', cache);
}

/** Serves the reference at /docs (the page, Redoc's bundle and the script that starts it). */
export async function registerReference(app: FastifyInstance): Promise<void> {
  const route = { config: { auth: 'none' as const }, schema: { hide: true } };
  const bundlePath = join(REFERENCE_DIR, REDOC_BUNDLE);
  if (!existsSync(bundlePath)) {
    // a gateway run from sources without `npm run build`: say so instead of a blank page
    const notBuilt = async () => {
      throw new AppError('not_found', 'The API reference is not built: run `npm run build` (the document itself is at /openapi.json).');
    };
    app.get('/docs', route, notBuilt);
    app.get('/docs/*', route, notBuilt);
    return;
  }
  let bundle: Promise<Buffer> | undefined; // read on first use: a process nobody reads the reference on never holds it
  app.get('/docs', route, async (_req, reply) => secured(reply, 'text/html; charset=utf-8', 'no-cache').send(PAGE));
  app.get('/docs/reference.js', route, async (_req, reply) => secured(reply, 'text/javascript; charset=utf-8', 'no-cache').send(INIT));
  app.get(`/docs/${REDOC_BUNDLE}`, route, async (_req, reply) => secured(reply, 'text/javascript; charset=utf-8', 'public, max-age=3600').send(await (bundle ??= readFile(bundlePath))));
}
