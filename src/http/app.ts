import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config.js';
import { isDatabaseUnavailable, type Db } from '../db/db.js';
import { migrationsApplied } from '../db/migrate.js';
import { FailureWindow } from '../lib/failure-window.js';
import { newId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { requestHash, validateKey, type IdempotencyScope, type TransactionalKey } from '../modules/idempotency/idempotency.service.js';
import type { AuthContext } from '../modules/merchants/merchants.service.js';
import type { Services } from '../services.js';
import { AppError, asAppError, DATABASE_RETRY_AFTER_S, databaseUnavailable, errorBody, invalidParam, isStorableStatus } from './errors.js';
import { registerDashboard } from './dashboard.js';
import { registerReference } from './reference.js';
import { sendReplay } from './idempotent.js';
import { openapiOptions } from './openapi.js';
import { grants, permissionFor } from './permissions.js';
import { csrfError, header, sessionToken } from '../modules/console/console.routes.js';
import { registerRoutes } from './routes.js';
import { findUnstorableText, validatorCompiler } from './validation.js';
import { jsonDepthExceeds } from '../lib/json-depth.js';

/** Deeper bodies are refused before parsing: no request or PSP event of the contract nests past a dozen. */
const MAX_JSON_DEPTH = 64;

/** A registered route, as the permission test walks them. */
export interface RouteSummary {
  method: string;
  url: string;
  auth: 'merchant' | 'admin' | 'none';
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered, in order (HEAD twins of GET routes left out). */
    routeList: RouteSummary[];
  }
  interface FastifyRequest {
    auth?: AuthContext;
    /** The request carried the admin key. */
    admin?: boolean;
    idem?: IdempotencyScope;
    /** The Idempotency-Key, on a `keyInTransaction` route: claimed by the route's own transaction. */
    txKey?: TransactionalKey;
    /** The body exactly as received (inbound webhook signatures are computed over it). */
    rawBody?: string;
    startedAt: bigint;
    /** Seconds the client's address must wait before another invalid key is looked at (0: not blocked). */
    authBlockedFor: number;
  }
  interface FastifyContextConfig {
    /** Who may call the route. Default `merchant`. */
    auth?: 'merchant' | 'admin' | 'none';
    /** Console sign-in: takes a key in its body, so it counts towards the invalid-key limit. */
    signIn?: boolean;
    /** Feature switch checked right after authentication (403 feature_disabled when off). */
    feature?: string;
    /** The response shows a secret once: its stored copy for idempotent replays is sealed. */
    showsSecret?: boolean;
    /**
     * The route's service claims the Idempotency-Key in its first transaction and stores the
     * response in its last (`TransactionalKey`, answered with `sendCreated`), instead of in
     * statements of their own before and after it.
     */
    keyInTransaction?: boolean;
  }
}

export interface AppDeps {
  config: Config;
  db: Db;
  logger: Logger;
  services: Services;
  adminKey: string;
  /** Shared rate-limit store across processes, when configured. */
  redis?: Redis;
  /** Serve the API (`/v1/*`, `/docs`, `/openapi.json`), or only the operations endpoints
   *  (`/healthz`, `/readyz`, `/metrics`) of a worker process. Default true. */
  api?: boolean;
  /** Set `draining` when the process is shutting down: /readyz answers 503 from then on. */
  lifecycle?: { draining: boolean };
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, services, logger } = deps;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // one line per request is written by our onResponse hook, with the route and status
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: () => newId('req'),
    requestIdHeader: false,
    bodyLimit: config.bodyLimit,
    trustProxy: trustProxyOption(config.trustProxy),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    return503OnClosing: true,
    // malformed percent-encoding, over-long path parameters: same envelope and Request-Id as every error
    frameworkErrors: (err, req, reply) => {
      reply.header('Request-Id', req.id);
      return sendError(err, req, reply);
    },
  }) as unknown as FastifyInstance;
  app.setValidatorCompiler(validatorCompiler);
  await app.register(cookie);
  const routeList: RouteSummary[] = [];
  app.decorate('routeList', routeList);
  app.addHook('onRoute', (route) => {
    // A query parameter the route does not document is refused (400 naming it), as an unknown
    // body field is, also on routes that take none: `?expand=…` is never silently ignored.
    if (/^\/(v1|compat)\//.test(route.url) && route.config?.auth !== 'none' && !(route.schema as { hide?: boolean } | undefined)?.hide) {
      route.schema ??= {};
      route.schema.querystring ??= { type: 'object', additionalProperties: false, properties: {} };
    }
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routeList.push({ method, url: route.url, auth: route.config?.auth ?? (route.url.startsWith('/v1/') ? 'merchant' : 'none') });
    }
  });
  app.decorateRequest('auth', undefined);
  app.decorateRequest('idem', undefined);
  app.decorateRequest('txKey', undefined);
  app.decorateRequest('rawBody', undefined);
  app.decorateRequest('startedAt', 0n);
  app.decorateRequest('authBlockedFor', 0);

  // ---- body parsing: JSON only; an empty body (or none) is no body; no Content-Type is JSON
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    req.rawBody = text;
    if (text.trim() === '') return done(null, undefined);
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
      return done(new AppError('invalid_json', `The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`) as unknown as Error, undefined);
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new AppError('invalid_json', 'The request body is not valid JSON.') as unknown as Error, undefined);
    }
  });

  // ---- metrics
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: 'settle_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'settle_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  services.metrics.register(registry);

  // Guessing keys: an address that sent too many invalid keys in the last minute has every
  // further invalid key refused with 429 (keys are ~190 bits, so this is about load, not odds).
  // A request that carries a valid key is never refused for its address: the attacker may share
  // the address (NAT, a proxy) with the merchant's own servers. While an address is blocked its
  // keys are still checked, which costs little: a malformed key is refused without a lookup, and
  // a well-formed one is one point lookup by prefix, cached for a second (see `authenticate`).
  const authFailures = new FailureWindow(config.authFailuresPerMinute);
  app.addHook('onRequest', async (req, reply) => {
    req.startedAt = process.hrtime.bigint();
    reply.header('Request-Id', req.id);
    const mode = req.routeOptions.config?.auth ?? (req.routeOptions.url?.startsWith('/v1/') ? 'merchant' : 'none');
    if (mode === 'none' && !req.routeOptions.config?.signIn) return;
    req.authBlockedFor = authFailures.blockedFor(req.ip);
    if (mode === 'none') return;
    const key = bearer(req);
    const session = key === undefined ? sessionToken(req) : undefined;
    if (session !== undefined) return authenticateSession(req, session, mode);
    try {
      if (mode === 'merchant') {
        req.auth = await services.merchants.authenticate(key);
        if (req.auth.permissions) requirePermission(req, req.auth.permissions);
      } else {
        if (!services.admin.check(key)) throw new AppError('invalid_api_key', 'Invalid admin key.');
        req.admin = true;
      }
    } catch (err) {
      if (err instanceof AppError && err.code === 'invalid_api_key') authFailures.record(req.ip);
      throw err;
    }
  });

  /**
   * The console's session cookie stands in for the key it was exchanged for: the same merchant,
   * mode and permissions, or the admin. Writes must carry the session's CSRF token (the cookie is
   * SameSite=Strict too; the token also covers browsers and proxies that ignore that).
   */
  async function authenticateSession(req: FastifyRequest, token: string, mode: 'merchant' | 'admin'): Promise<void> {
    const { identity } = await services.consoleSessions.resume(token);
    if (!['GET', 'HEAD', 'OPTIONS'].includes(req.method) && !services.consoleSessions.checkCsrf(token, header(req, 'x-csrf-token'))) {
      throw csrfError();
    }
    if (mode === 'admin') {
      if (!identity.admin) throw new AppError('invalid_api_key', 'This console session is not the platform admin\'s.');
      req.admin = true;
      return;
    }
    if (identity.admin) throw new AppError('invalid_api_key', 'The platform admin\'s console session has no merchant: sign in with a merchant key.');
    req.auth = identity.auth;
    if (identity.auth.permissions) requirePermission(req, identity.auth.permissions);
  }

  // a console sign-in with a wrong key counts like any request with an invalid key
  app.addHook('onResponse', async (req, reply) => {
    if (req.routeOptions.config?.signIn && reply.statusCode === 401) authFailures.record(req.ip);
  });

  if (config.rateLimitPerSecond > 0) {
    await app.register(rateLimit, {
      global: true,
      hook: 'preParsing',
      max: config.rateLimitPerSecond,
      timeWindow: 1000,
      redis: deps.redis,
      nameSpace: 'settle-rl:',
      skipOnError: true,
      allowList: (req) => req.auth === undefined,
      keyGenerator: (req) => req.auth?.keyPrefix ?? req.ip,
      errorResponseBuilder: (_req, ctx) =>
        new AppError('rate_limited', `Too many requests: at most ${ctx.max} per second per API key.`, {
          headers: { 'Retry-After': String(Math.max(1, Math.ceil(ctx.ttl / 1000))) },
        }),
    });
  }

  // kill switch: right after authentication, before the body is even validated
  app.addHook('preValidation', async (req) => {
    const feature = req.routeOptions.config?.feature;
    if (feature && req.auth && !(await services.features.isEnabled(feature, req.auth.merchantId))) {
      throw new AppError('feature_disabled', `The ${feature} feature is disabled for this account.`);
    }
  });

  // PostgreSQL cannot store U+0000 (text, jsonb) nor an unpaired surrogate (jsonb): refuse them
  // here, naming the parameter, rather than fail inside SQL with a 500
  app.addHook('preValidation', async (req) => {
    for (const [part, value] of [['params', req.params], ['query', req.query], ['body', req.body]] as const) {
      const param = findUnstorableText(value);
      if (param !== undefined) {
        throw invalidParam(param || part, `Invalid ${param || part}: text must not contain U+0000 or unpaired surrogates.`);
      }
    }
  });

  // ---- idempotency: claimed after authentication and validation, stored when the response is sent
  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST' || !(req.auth || req.admin)) return;
    const key =
      validateKey(req.headers['idempotency-key'], 'Idempotency-Key') ??
      validateKey(req.headers['x-idempotency-key'], 'X-Idempotency-Key');
    if (key === undefined) return;
    const path = req.url.split('?')[0];
    // admin requests have a scope of their own (merchant ids are mer_…, never this)
    const scope = req.auth ? { merchantId: req.auth.merchantId, testMode: req.auth.testMode, key } : { merchantId: 'admin', testMode: false, key };
    const hash = requestHash(req.method, req.url, req.body);
    if (req.routeOptions.config.keyInTransaction && req.auth && !req.routeOptions.config.showsSecret) {
      req.txKey = services.idempotency.transactionalKey(scope, req.method, path, hash);
      return;
    }
    const begun = await services.idempotency.begin(scope, req.method, path, hash);
    if (begun.kind === 'replay') return sendReplay(reply, begun.response);
    req.idem = begun.scope;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const scope = req.idem;
    if (!scope) return payload;
    req.idem = undefined;
    if (isStorableStatus(reply.statusCode) && typeof payload === 'string') {
      try {
        await services.idempotency.complete(scope, { status: reply.statusCode, body: payload, headers: {} }, req.routeOptions.config.showsSecret === true);
      } catch (err) {
        // An answer its key cannot replay must not look final: a retry would re-run the request
        // and could answer differently. The client gets a 500 and retries with the same key once
        // the lease ends; the work resumes where it stopped (a refund is found by its key).
        req.log.error({ err, request_id: req.id }, 'could not store the idempotent response');
        const failure = isDatabaseUnavailable(err) ? databaseUnavailable() : new AppError('internal_error',
          'An unexpected error occurred. It has been logged; quote the request_id when reporting it.');
        for (const [h, v] of Object.entries(failure.headers ?? {})) reply.header(h, v);
        reply.code(failure.status).type('application/json; charset=utf-8');
        return JSON.stringify(errorBody(failure, req.id));
      }
    } else {
      // a key not released stays in flight until its lease ends; a retry then takes it over
      await services.idempotency.release(scope).catch((err) => req.log.error({ err, request_id: req.id }, 'could not release the idempotency key'));
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const seconds = Number(process.hrtime.bigint() - req.startedAt) / 1e9;
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, seconds);
    if (reply.statusCode >= 500) {
      req.log.warn({ request_id: req.id, method: req.method, route, status: reply.statusCode }, 'request failed');
    } else {
      req.log.debug({ request_id: req.id, method: req.method, route, status: reply.statusCode, ms: seconds * 1000 }, 'request');
    }
  });

  // ---- errors: one envelope for everything
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) =>
    sendError(new AppError('not_found', `Unrecognized request URL (${req.method} ${req.url.split('?')[0]}).`), req, reply),
  );

  // ---- OpenAPI generated from the route schemas
  await app.register(swagger, openapiOptions());
  const api = deps.api ?? true;

  // ---- operations
  app.get('/healthz', { config: { auth: 'none' }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { auth: 'none' }, schema: { hide: true } }, async (_req, reply) => {
    if (deps.lifecycle?.draining) return reply.code(503).send({ status: 'shutting_down' });
    try {
      await deps.db.query('SELECT 1');
      if (!(await migrationsApplied(deps.db))) return reply.code(503).send({ status: 'migrations_pending' });
      return { status: 'ready', database: deps.db.kind };
    } catch {
      return reply.code(503).header('Retry-After', String(DATABASE_RETRY_AFTER_S)).send({ status: 'database_unreachable' });
    }
  });
  app.get('/metrics', { config: { auth: 'none' }, schema: { hide: true } }, async (_req, reply) => {
    await services.metrics.refresh();
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  if (!api) return app;
  await registerDashboard(app);
  await registerReference(app);
  app.get('/openapi.json', { config: { auth: 'none' }, schema: { hide: true } }, async () => app.swagger());
  await registerRoutes(app, services, { inboundBodyLimit: config.inboundBodyLimit });
  return app;
}

/** A restricted key calls a route only with the permission the route table gives it. */
function requirePermission(req: FastifyRequest, granted: readonly string[]): void {
  const route = req.routeOptions.url ?? '';
  const needed = permissionFor(req.method, route);
  if (!needed) {
    throw new AppError('insufficient_permissions', `Restricted API keys cannot call ${req.method} ${route}.`);
  }
  if (!grants(granted, needed)) {
    throw new AppError('insufficient_permissions', `This API key lacks the ${needed} permission that ${req.method} ${route} requires.`, { extra: { permission: needed } });
  }
}

function invalidKeysLimited(wait: number): AppError {
  return new AppError('rate_limited', `Too many requests with invalid API keys from this address; retry in ${wait} s.`, {
    headers: { 'Retry-After': String(wait) },
  });
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : undefined;
}

function sendError(raw: Error & { statusCode?: number; code?: string }, req: FastifyRequest, reply: FastifyReply) {
  let err = asAppError(raw, req);
  // an invalid key (or console sign-in) from an address over the limit: 429, never 401
  if (err.code === 'invalid_api_key' && req.authBlockedFor > 0) err = invalidKeysLimited(req.authBlockedFor);
  if (err.headers) for (const [h, v] of Object.entries(err.headers)) reply.header(h, v);
  return reply.code(err.status).type('application/json; charset=utf-8').send(errorBody(err, req.id));
}


/** Fastify's trustProxy takes no hop count in its types: a count becomes proxy-addr's function form. */
function trustProxyOption(trust: Config['trustProxy']) {
  if (typeof trust !== 'number') return trust;
  return (_address: string, hop: number) => hop < trust;
}
