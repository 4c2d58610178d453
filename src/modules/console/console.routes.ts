import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { AppError } from '../../http/errors.js';
import { consoleSessionObject, responses, signedOutObject } from '../../http/objects.js';
import { renderSession } from './console-sessions.service.js';

export const SESSION_COOKIE = 'settle_session';
const tags = ['console'];

/**
 * Console sign-in and sign-out. Everything else the console does goes through the public API,
 * authenticated by the session cookie (see `buildApp`).
 */
export async function consoleRoutes(app: FastifyInstance, { consoleSessions }: Services): Promise<void> {
  app.post<{ Body: { key: string } }>('/v1/console/session', {
    config: { auth: 'none', signIn: true },
    schema: {
      tags, security: [], operationId: 'createConsoleSession', summary: 'Sign in to the console: exchange an API key for a session cookie',
      response: responses(201, consoleSessionObject, { only: true, errors: [400, 401, 413, 429, 500, 503] }),
      description: 'Takes a secret key (sk_…), a restricted key (rk_…) or the admin key. Sets the HttpOnly, SameSite=Strict `settle_session` cookie (Secure over https) and answers with the session, including the `csrf_token` to send as `X-CSRF-Token` on every write. The key is not stored.',
      body: {
        type: 'object', required: ['key'], additionalProperties: false,
        properties: { key: { type: 'string', minLength: 1, maxLength: 200 } },
      },
    },
  }, async (req, reply) => {
    const { token, session } = await consoleSessions.signIn(req.body.key);
    setSessionCookie(req, reply, token, session.expiresAt);
    return reply.code(201).send(renderSession(session));
  });

  app.get('/v1/console/session', {
    config: { auth: 'none' },
    schema: {
      tags, security: [], operationId: 'retrieveConsoleSession', summary: 'The console session of the cookie (401 when signed out or expired)',
      response: responses(200, consoleSessionObject, { only: true, errors: [401, 429, 500, 503] }),
    },
  }, async (req) => renderSession(await consoleSessions.resume(sessionToken(req) ?? '')));

  app.delete('/v1/console/session', {
    config: { auth: 'none' },
    schema: {
      tags, security: [], operationId: 'deleteConsoleSession', summary: 'Sign out of the console (needs X-CSRF-Token)',
      response: responses(200, signedOutObject, { only: true, errors: [403, 429, 500, 503] }),
    },
  }, async (req, reply) => {
    const token = sessionToken(req);
    if (token) {
      if (!consoleSessions.checkCsrf(token, header(req, 'x-csrf-token'))) throw csrfError();
      await consoleSessions.signOut(token);
    }
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { object: 'console_session', signed_out: true };
  });
}

export function sessionToken(req: FastifyRequest): string | undefined {
  const value = req.cookies?.[SESSION_COOKIE];
  return value && /^[A-Za-z0-9]{43}$/.test(value) ? value : undefined;
}

export function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

export const csrfError = () =>
  new AppError('csrf_token_invalid', 'Missing or wrong X-CSRF-Token: a console write must send the csrf_token of its session.');

function setSessionCookie(req: FastifyRequest, reply: FastifyReply, token: string, expiresAt: Date) {
  reply.setCookie(SESSION_COOKIE, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    secure: req.protocol === 'https',
    expires: expiresAt,
  });
}
