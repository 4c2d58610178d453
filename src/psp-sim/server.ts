/**
 * psp-sim: the simulated PSP (one model, `psp-model.ts`) behind a real HTTP server, with fault
 * injection, so the gateway can be tested against timeouts, 5xx, lost responses and late/
 * duplicated/reordered webhooks over a real network. The HTTP API is documented in docs/psp-sim.md.
 *
 * Each wire (`wires/<name>/`) serves the model in one PSP's dialect: the sandbox wire (`/v1/*`) is
 * what the gateway's sandbox connector calls. The operator API (`/_sim/*`) is what tests and humans
 * use to play the merchant's dashboard, the bank, and the network. Faults apply only to the wires.
 */
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { createLogger } from '../lib/logger.js';
import { SandboxPsp, SandboxPspError } from './psp-model.js';
import { SimFaultState, simFaultsSchema, type SimFaultsInput, type SimOp } from './faults.js';
import { errorReply, INJECTED_ERROR, send, type SimReply } from './replies.js';
import { adyenRetrySchedule, SimWebhookDispatcher } from './webhook-dispatcher.js';
import { registerSandboxWire } from './wires/sandbox/sandbox.wire.js';
import { modelPaymentRef, modelRefundRef } from './wires/stripe/stripe-objects.js';
import { createStripeWire } from './wires/stripe/stripe.wire.js';
import { createAdyenWire } from './wires/adyen/adyen.wire.js';

const amountSchema = { type: 'integer', minimum: 1, maximum: 999_999_999_999 } as const;
const refParams = { type: 'object', required: ['ref'], properties: { ref: { type: 'string', minLength: 1 } } } as const;

export interface PspSimOptions {
  /** The PSP state the server exposes. Default a new `SandboxPsp`. */
  psp?: SandboxPsp;
  /** A logger instance, or true for Fastify's default logger. Default false (silent). */
  logger?: FastifyBaseLogger | boolean;
  /** HTTP client for webhooks. Default the global `fetch`. */
  fetch?: typeof fetch;
  /** Which PSP's API the server speaks (docs/psp-sim.md). Default `sandbox`. */
  wire?: PspSimWire;
  /** The Adyen wire retries an unacknowledged notification on Adyen's schedule (for 30 days);
   *  this multiplies its waits, so a test can live through them (e.g. 0.0002). Default 1. */
  retryTimeScale?: number;
}

export const PSP_SIM_WIRES = ['sandbox', 'stripe', 'adyen'] as const;
export type PspSimWire = (typeof PSP_SIM_WIRES)[number];


export interface PspSimHandle {
  /** `http://host:port`, without a trailing slash. */
  url: string;
  app: FastifyInstance;
  psp: SandboxPsp;
  close(): Promise<void>;
}

/** Default port of `settle psp-sim`. */
export const DEFAULT_PSP_SIM_PORT = 4100;
export const DEFAULT_PSP_SIM_HOST = '127.0.0.1';

export function buildPspSim(opts: PspSimOptions = {}): FastifyInstance {
  const psp = opts.psp ?? new SandboxPsp();
  const app = Fastify({
    ...(typeof opts.logger === 'object' ? { loggerInstance: opts.logger } : { logger: opts.logger ?? false }),
    // Held ("timeout") connections are not idle, so close must destroy every socket itself.
    forceCloseConnections: true,
    // Strict bodies: an unknown field is an error, and nothing is silently coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });

  const faults = new SimFaultState();
  const stripeWire = opts.wire === 'stripe' ? createStripeWire(psp) : undefined;
  const adyenWire = opts.wire === 'adyen' ? createAdyenWire(psp) : undefined;
  const webhooks = new SimWebhookDispatcher({
    faults: () => faults.current.webhook,
    logger: app.log,
    fetch: opts.fetch,
    encoder: stripeWire?.encoder ?? adyenWire?.encoder,
    // Adyen retries a notification for a long time; the others give up quickly (a test tool's choice)
    ...(adyenWire ? { retrySchedule: adyenRetrySchedule(opts.retryTimeScale ?? 1) } : {}),
  });
  // The Adyen wire turns the model's events into its own notifications (one per modification).
  const unsubscribe = adyenWire
    ? adyenWire.attach((accountId, event, rawBody) => webhooks.dispatchBody(accountId, event, rawBody))
    : psp.onEvent((event, accountId) => webhooks.dispatch(accountId, event));
  /** The operator API takes the model's refs or a wire's ids (`pi_…`, `ch_…`, `re_…`, Adyen psp references). */
  const modelRef = (ref: string): string => adyenWire?.modelRef(ref) ?? modelPaymentRef(ref) ?? modelRefundRef(ref) ?? ref;
  const closing = new AbortController();
  const heldSockets = new Set<Socket>();

  app.addHook('preClose', async () => {
    closing.abort();
    webhooks.close();
    unsubscribe();
    for (const socket of heldSockets) socket.destroy();
  });

  // An empty body with `Content-Type: application/json` is "no body", not a 400 (e.g. cancel).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Object.assign(new Error('body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  app.setErrorHandler((err: FastifyError, _request, reply) => {
    if (err instanceof SandboxPspError) return send(reply, errorReply(err.code, err.message));
    if (err.validation || (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)) {
      return reply.code(err.statusCode ?? 400).send({ error: { code: 'invalid_request', message: err.message } });
    }
    if (closing.signal.aborted) return reply.code(503).send({ error: { code: 'shutting_down', message: 'psp-sim is closing' } });
    app.log.error({ err }, 'psp-sim internal error');
    return reply.code(500).send({ error: { code: 'internal_error', message: 'Internal error in psp-sim.' } });
  });
  app.setNotFoundHandler((request, reply) =>
    send(
      reply,
      adyenWire && !request.url.startsWith('/_sim/')
        ? adyenWire.notFound(request.method, request.url)
        : errorReply('route_not_found', `No route ${request.method} ${request.url.split('?')[0]}.`),
    ),
  );

  /**
   * Runs one PSP API operation under the fault configuration: latency, then maybe never answer,
   * answer 500 without applying, or apply and drop the response.
   */
  async function faulted(op: SimOp, request: FastifyRequest, reply: FastifyReply, apply: () => SimReply, injectedError = INJECTED_ERROR): Promise<unknown> {
    const decision = faults.decide(op);
    const latency = faults.latency(op);
    if (latency > 0) await sleep(latency, undefined, { signal: closing.signal });

    if (decision === 'timeout') {
      // Never answer; the socket is released when the client gives up or the server closes.
      reply.hijack();
      const socket = request.raw.socket;
      heldSockets.add(socket);
      socket.once('close', () => heldSockets.delete(socket));
      return undefined;
    }
    if (decision === 'error') return send(reply, injectedError);

    const result = apply();
    if (decision === 'drop') {
      // Applied, then the answer is lost: the client sees a reset connection and cannot know.
      reply.hijack();
      request.raw.socket.destroy();
      return undefined;
    }
    return send(reply, result);
  }

  // ------------------------------------------------------------------------------ PSP wires

  if (stripeWire) stripeWire.register(app, { psp, faults, faulted });
  else if (adyenWire) adyenWire.register(app, { psp, faults, faulted });
  else registerSandboxWire(app, { psp, faults, faulted });

  // ------------------------------------------------------------------------- operator API (/_sim)

  // The Adyen wire's operator answers name payments and refunds by their psp references.
  if (adyenWire) {
    app.addHook('preSerialization', async (request, _reply, payload) =>
      request.url.startsWith('/_sim/') ? adyenWire.present(payload) : payload,
    );
  }

  app.get('/_sim/healthz', async () => ({ ok: true }));

  app.put<{ Params: { accountId: string }; Body: { url: string; secret: string } }>(
    '/_sim/accounts/:accountId/webhook',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['url', 'secret'],
          properties: { url: { type: 'string', pattern: '^https?://' }, secret: { type: 'string', minLength: 1 } },
        },
      },
    },
    async (request) => {
      const { url, secret } = request.body;
      try {
        new URL(url);
      } catch {
        throw new SandboxPspError('invalid_request', `Not a URL: ${url}.`);
      }
      webhooks.setTarget(request.params.accountId, { url, secret });
      return { account_id: request.params.accountId, url };
    },
  );

  app.delete<{ Params: { accountId: string } }>('/_sim/accounts/:accountId/webhook', async (request) => ({
    account_id: request.params.accountId,
    deleted: webhooks.deleteTarget(request.params.accountId),
  }));

  app.get('/_sim/faults', async () => faults.current);
  app.put<{ Body: SimFaultsInput }>('/_sim/faults', { schema: { body: simFaultsSchema } }, async (request) =>
    faults.set(request.body ?? {}),
  );
  app.delete('/_sim/faults', async () => faults.reset());

  app.post<{ Params: { ref: string }; Body: { amount?: number } | undefined }>(
    '/_sim/payments/:ref/refunds',
    {
      schema: {
        params: refParams,
        body: { type: ['object', 'null'], additionalProperties: false, properties: { amount: amountSchema } },
      },
    },
    async (request, reply) => {
      const refund = psp.dashboardRefund(modelRef(request.params.ref), request.body?.amount, {
        pendingDelayMs: faults.current.pending_delay_ms ?? undefined,
        forcePending: faults.current.force_pending,
      });
      return reply.code(201).send(refund);
    },
  );

  // A capture the gateway never hears of (reconciliation finds it).
  app.post<{ Params: { ref: string }; Body: { amount?: number } | undefined }>(
    '/_sim/payments/:ref/capture',
    {
      schema: {
        params: refParams,
        body: { type: ['object', 'null'], additionalProperties: false, properties: { amount: amountSchema } },
      },
    },
    async (request) => psp.dashboardCapture(modelRef(request.params.ref), request.body?.amount),
  );

  // The card scheme rejects a capture the PSP had accepted: the payment is authorized again, with
  // nothing captured. No webhook here (reconciliation finds it); the Adyen wire registers its own
  // route, which also sends CAPTURE_FAILED.
  if (!adyenWire) {
    app.post<{ Params: { ref: string } }>('/_sim/payments/:ref/capture_failed', { schema: { params: refParams } }, async (request) =>
      psp.failCapture(modelRef(request.params.ref)),
    );
  }

  app.post<{ Params: { ref: string }; Body: { code?: string; message?: string } | undefined }>(
    '/_sim/refunds/:ref/fail',
    {
      schema: {
        params: refParams,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { code: { type: 'string', minLength: 1, maxLength: 100 }, message: { type: 'string', maxLength: 500 } },
        },
      },
    },
    async (request) => psp.failRefund(modelRef(request.params.ref), request.body?.code, request.body?.message),
  );

  app.post<{ Params: { ref: string } }>('/_sim/refunds/:ref/complete', { schema: { params: refParams } }, async (request) =>
    psp.completeRefund(modelRef(request.params.ref)),
  );

  app.post<{ Body: { payment_ref?: string } | undefined }>(
    '/_sim/refunds/settle_pending',
    {
      schema: {
        body: { type: ['object', 'null'], additionalProperties: false, properties: { payment_ref: { type: 'string', minLength: 1 } } },
      },
    },
    async (request) => ({ settled: psp.settlePending(request.body?.payment_ref) }),
  );

  app.get<{ Params: { ref: string } }>('/_sim/payments/:ref', { schema: { params: refParams } }, async (request) =>
    psp.totals(modelRef(request.params.ref)),
  );

  app.get('/_sim/stats', async () => psp.stats());

  app.post('/_sim/webhooks/flush', async () => ({ released: webhooks.flush() }));

  app.get<{ Querystring: { account_id?: string; payment_ref?: string; type?: string } }>('/_sim/events', async (request) => ({
    data: webhooks.list({
      accountId: request.query.account_id,
      paymentRef: request.query.payment_ref === undefined ? undefined : modelRef(request.query.payment_ref),
      type: request.query.type,
    }),
  }));

  return app;
}

/** Builds the sim and listens. `port` defaults to 4100 (0 = a free port), `host` to 127.0.0.1. */
export async function startPspSim(
  opts: { port?: number; host?: string } & PspSimOptions = {},
): Promise<PspSimHandle> {
  const psp = opts.psp ?? new SandboxPsp();
  const app = buildPspSim({ ...opts, psp });
  const host = opts.host ?? DEFAULT_PSP_SIM_HOST;
  await app.listen({ port: opts.port ?? DEFAULT_PSP_SIM_PORT, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port ?? DEFAULT_PSP_SIM_PORT;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    app,
    psp,
    close: async () => {
      await app.close();
      psp.dispose();
    },
  };
}

/**
 * Entry point of `settle psp-sim [--port 4100] [--host 127.0.0.1] [--log-level warn]`: starts the
 * sim, prints one line `psp-sim listening on <url>` to stdout (logs go to stderr), and closes on
 * SIGTERM/SIGINT, then exits.
 */
export async function runPspSim(argv: string[]): Promise<PspSimHandle> {
  const args = parseArgs(argv);
  const logger = createLogger(args.logLevel, process.stderr).child({ component: 'psp-sim' });
  const handle = await startPspSim({ port: args.port, host: args.host, logger, wire: args.wire, retryTimeScale: args.retryTimeScale });
  process.stdout.write(`psp-sim listening on ${handle.url}\n`);

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'psp-sim closing');
    handle.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'psp-sim close failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  return handle;
}

const USAGE = 'psp-sim [--port 4100] [--host 127.0.0.1] [--log-level warn] [--wire sandbox|stripe|adyen] [--retry-time-scale 1]';

interface PspSimArgs {
  port: number;
  host: string;
  logLevel: string;
  wire: PspSimWire;
  retryTimeScale?: number;
}

function parseArgs(argv: string[]): PspSimArgs {
  const out: PspSimArgs = { port: DEFAULT_PSP_SIM_PORT, host: DEFAULT_PSP_SIM_HOST, logLevel: 'warn', wire: 'sandbox' };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`psp-sim: ${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--port': {
        const raw = value();
        const port = Number(raw);
        if (!/^\d+$/.test(raw) || port > 65535) throw new Error(`psp-sim: --port must be 0-65535, got ${raw}`);
        out.port = port;
        break;
      }
      case '--host':
        out.host = value();
        break;
      case '--log-level':
        out.logLevel = value();
        break;
      case '--wire': {
        const wire = value();
        if (!(PSP_SIM_WIRES as readonly string[]).includes(wire)) throw new Error(`psp-sim: --wire must be one of ${PSP_SIM_WIRES.join(', ')}, got ${wire}`);
        out.wire = wire as PspSimWire;
        break;
      }
      case '--retry-time-scale': {
        const raw = value();
        const scale = Number(raw);
        if (!/^(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(raw) || !(scale > 0 && scale <= 1)) {
          throw new Error(`psp-sim: --retry-time-scale must be a number above 0 and at most 1, got ${raw}`);
        }
        out.retryTimeScale = scale;
        break;
      }
      default:
        throw new Error(`psp-sim: unknown argument ${arg} (usage: ${USAGE})`);
    }
  }
  if (out.retryTimeScale !== undefined && out.wire !== 'adyen') {
    throw new Error('psp-sim: --retry-time-scale applies to the Adyen wire\'s notification retries (--wire adyen)');
  }
  return out;
}
