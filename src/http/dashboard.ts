import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { AppError } from './errors.js';

/** Where `npm run build` puts the console (dashboard/ built by Vite), next to the compiled gateway. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

/**
 * The console's content security policy: its own scripts and the gateway's API only. Inline
 * styles are allowed because the chart library sizes its canvas with them.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

/** Serves the operations console at /dashboard/ (a static single-page app over the public API). */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  if (!existsSync(join(DASHBOARD_DIR, 'index.html'))) {
    // a gateway run from sources without `npm run build`: say so instead of a bare 404
    const notBuilt = async () => {
      throw new AppError('not_found', 'The console is not built: run `npm run build`.');
    };
    app.get('/dashboard', { config: { auth: 'none' }, schema: { hide: true } }, notBuilt);
    app.get('/dashboard/*', { config: { auth: 'none' }, schema: { hide: true } }, notBuilt);
    return;
  }
  await app.register(fastifyStatic, {
    root: DASHBOARD_DIR,
    prefix: '/dashboard/',
    index: 'index.html',
    wildcard: true,
    setHeaders(res, path) {
      res.header('Content-Security-Policy', CSP);
      res.header('X-Content-Type-Options', 'nosniff');
      res.header('Referrer-Policy', 'no-referrer');
      // file names under assets/ carry their content hash; the page itself must be asked for again
      res.header('Cache-Control', path.includes(`${join('dashboard', 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  // the console's address itself (the router ignores the trailing slash): its page
  app.get('/dashboard', { config: { auth: 'none' }, schema: { hide: true } }, (_req, reply) => reply.sendFile('index.html'));
}
