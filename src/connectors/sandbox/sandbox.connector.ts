/**
 * The sandbox connector: the gateway's adapter for the simulated PSP.
 *
 * Two transports, chosen per connector account:
 * - `settings.base_url` set → every call goes over HTTP to a psp-sim server (see docs/psp-sim.md), so
 *   timeouts, 5xx and lost responses are real network events;
 * - otherwise → the in-process `SandboxPsp` (one shared instance per process by default).
 *
 * Over HTTP only an answer the PSP clearly gave is definite: a 2xx with a well-formed body, or a
 * 4xx carrying the PSP's error envelope. Everything else (timeout, connection error, 5xx, 408/425/
 * 429, a 4xx from something that is not the PSP, an unreadable body) throws
 * `ConnectorUnknownOutcomeError`, because the PSP may or may not have acted.
 */
import {
  ConnectorUnknownOutcomeError,
  type ActionResult,
  type AuthorizeResult,
  type CaptureResult,
  type Connector,
  type ConnectorContext,
  type RefundResult,
} from '../connector.js';
import { DEFAULT_PENDING_DELAY_MS, SandboxPsp } from '../../psp-sim/psp-model.js';
import { SANDBOX_SIGNATURE_HEADER, verifySandboxSignature } from './sandbox-signature.js';
import { parseSandboxPaymentState, parseSandboxWebhook } from './sandbox-webhook.js';

export interface SandboxConnectorOptions {
  /** The in-process PSP for accounts without `settings.base_url`. Default `sharedSandboxPsp()`. */
  psp?: SandboxPsp;
  /** Per-call HTTP timeout in milliseconds, body included. Default 10000. */
  timeoutMs?: number;
  /** HTTP client. Default the global `fetch` (undici). */
  fetch?: typeof fetch;
}

export const DEFAULT_SANDBOX_TIMEOUT_MS = 10_000;
/** Bearer token sent when the account has no `credentials.api_key`. */
export const DEFAULT_SANDBOX_API_KEY = 'sk_sandbox';

let shared: SandboxPsp | undefined;

/** The process-wide in-process PSP, created on first use. */
export function sharedSandboxPsp(): SandboxPsp {
  shared ??= new SandboxPsp();
  return shared;
}

export function createSandboxConnector(opts: SandboxConnectorOptions = {}): Connector {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SANDBOX_TIMEOUT_MS;
  const doFetch = opts.fetch ?? fetch;
  const psp = (): SandboxPsp => opts.psp ?? sharedSandboxPsp();

  const http = (ctx: ConnectorContext): SimClient | undefined => {
    const baseUrl = ctx.settings.base_url;
    if (typeof baseUrl !== 'string' || baseUrl.length === 0) return undefined;
    return new SimClient(baseUrl.replace(/\/+$/, ''), ctx, timeoutMs, doFetch);
  };

  return {
    name: 'sandbox',

    async authorize(ctx, req) {
      const client = http(ctx);
      if (!client) return psp().authorize({ ...req, accountId: ctx.accountId });
      const res = await client.send('authorize', 'POST', '/v1/payments', {
        idempotencyKey: req.idempotencyKey,
        body: {
          amount: req.amount,
          currency: req.currency,
          payment_method: req.paymentMethod,
          capture: req.capture,
          reference: req.reference,
        },
      });
      if (res.kind === 'error') {
        return { outcome: 'declined', code: res.code, message: res.message, ...(res.paymentRef ? { connectorRef: res.paymentRef } : {}) };
      }
      const payment = readObject(res.body, 'payment', ['authorized', 'captured'] as const, 'authorize');
      const amount = readAmount(res.body, 'amount', 'authorize');
      return { outcome: payment.status, connectorRef: payment.id, amount } satisfies AuthorizeResult;
    },

    async capture(ctx, req) {
      const client = http(ctx);
      if (!client) return psp().capture({ ...req, accountId: ctx.accountId });
      const res = await client.send('capture', 'POST', `/v1/payments/${encodeURIComponent(req.connectorRef)}/capture`, {
        idempotencyKey: req.idempotencyKey,
        body: { amount: req.amount, currency: req.currency },
      });
      if (res.kind === 'error') return { outcome: 'rejected', code: res.code, message: res.message };
      const payment = readObject(res.body, 'payment', ['captured'] as const, 'capture');
      return { outcome: 'succeeded', connectorRef: payment.id, amountCaptured: readAmount(res.body, 'amount_captured', 'capture') } satisfies CaptureResult;
    },

    async cancel(ctx, req) {
      const client = http(ctx);
      if (!client) return psp().cancel({ ...req, accountId: ctx.accountId });
      const res = await client.send('cancel', 'POST', `/v1/payments/${encodeURIComponent(req.connectorRef)}/cancel`, {
        idempotencyKey: req.idempotencyKey,
        body: {},
      });
      return actionResult(res, 'cancel');
    },

    async refund(ctx, req) {
      const pendingDelayMs = pendingDelaySetting(ctx);
      const client = http(ctx);
      if (!client) return psp().refund({ ...req, accountId: ctx.accountId, pendingDelayMs });
      const res = await client.send('refund', 'POST', '/v1/refunds', {
        idempotencyKey: req.idempotencyKey,
        body: {
          payment_ref: req.paymentRef,
          amount: req.amount,
          currency: req.currency,
          reason: req.reason ?? null,
          reference: req.reference,
          pending_delay_ms: pendingDelayMs,
        },
      });
      return refundResult(res, 'refund');
    },

    async refundStatus(ctx, req) {
      const client = http(ctx);
      if (!client) return psp().refundStatus({ ...req, accountId: ctx.accountId });
      const path = req.connectorRef
        ? `/v1/refunds/${encodeURIComponent(req.connectorRef)}?payment_ref=${encodeURIComponent(req.paymentRef)}&idempotency_key=${encodeURIComponent(req.idempotencyKey)}`
        : `/v1/refunds?payment_ref=${encodeURIComponent(req.paymentRef)}&idempotency_key=${encodeURIComponent(req.idempotencyKey)}`;
      return refundResult(await client.send('refund status', 'GET', path, {}), 'refund status');
    },

    async paymentState(ctx, req) {
      const client = http(ctx);
      if (!client) return parseSandboxPaymentState(psp().paymentState(req.paymentRef, ctx.accountId));
      const res = await client.send('payment state', 'GET', `/v1/payments/${encodeURIComponent(req.paymentRef)}`, {});
      if (res.kind === 'error') {
        // The PSP's definite "no such payment"; any other refusal says nothing about the payment.
        if (res.code === 'payment_not_found') return { paymentRef: req.paymentRef, status: 'not_found', amountCaptured: null, amountRefunded: null, refunds: null };
        throw new ConnectorUnknownOutcomeError(`sandbox payment state: PSP refused with ${res.code}`);
      }
      try {
        return parseSandboxPaymentState(res.body);
      } catch (err) {
        throw new ConnectorUnknownOutcomeError(`sandbox payment state: ${(err as Error).message}`, err);
      }
    },

    verifyWebhook(ctx, webhook) {
      return verifySandboxSignature(ctx.webhookSecret, webhook.rawBody, headerValue(webhook.headers, SANDBOX_SIGNATURE_HEADER));
    },

    parseWebhook: parseSandboxWebhook,
  };
}

type SimResponse =
  | { kind: 'ok'; body: unknown }
  /** A definite refusal by the PSP (its error envelope on a 4xx). */
  | { kind: 'error'; status: number; code: string; message: string; paymentRef?: string };

/** One HTTP exchange with the psp-sim, classified into definite answers or an unknown outcome. */
class SimClient {
  constructor(
    private readonly baseUrl: string,
    private readonly ctx: ConnectorContext,
    private readonly timeoutMs: number,
    private readonly doFetch: typeof fetch,
  ) {}

  async send(
    op: string,
    method: 'GET' | 'POST',
    path: string,
    opts: { idempotencyKey?: string; body?: Record<string, unknown> },
  ): Promise<SimResponse> {
    const apiKey = this.ctx.credentials.api_key;
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${typeof apiKey === 'string' && apiKey ? apiKey : DEFAULT_SANDBOX_API_KEY}`,
      'sandbox-account': this.ctx.accountId,
    };
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';

    let status: number;
    let text: string;
    try {
      // The timeout covers the body too: a PSP that sends headers and then stalls is still unknown.
      const res = await this.doFetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = res.status;
      text = await res.text();
    } catch (err) {
      const reason = err instanceof Error && err.name === 'TimeoutError' ? `timed out after ${this.timeoutMs} ms` : describe(err);
      throw new ConnectorUnknownOutcomeError(`sandbox ${op}: ${reason}`, err);
    }

    // 408/425/429 mean "not now": the PSP did not refuse the operation itself, so retrying is right.
    if (status >= 500 || status === 408 || status === 425 || status === 429) {
      throw new ConnectorUnknownOutcomeError(`sandbox ${op}: PSP answered ${status}`);
    }
    const body = parseJson(text);
    if (status >= 200 && status < 300) {
      if (body === undefined) throw new ConnectorUnknownOutcomeError(`sandbox ${op}: PSP answered ${status} with an unreadable body`);
      return { kind: 'ok', body };
    }
    const error = status >= 400 && status < 500 ? errorEnvelope(body) : undefined;
    // A 4xx without the PSP's envelope may come from a proxy or a wrong base_url: not a PSP verdict.
    if (!error) throw new ConnectorUnknownOutcomeError(`sandbox ${op}: unexpected HTTP ${status} from ${this.baseUrl}`);
    return { kind: 'error', status, ...error };
  }
}

function actionResult(res: SimResponse, op: string): ActionResult {
  if (res.kind === 'error') return { outcome: 'rejected', code: res.code, message: res.message };
  const payment = readObject(res.body, 'payment', ['authorized', 'captured', 'canceled'] as const, op);
  return { outcome: 'succeeded', connectorRef: payment.id };
}

function refundResult(res: SimResponse, op: string): RefundResult {
  if (res.kind === 'error') return { status: 'failed', code: res.code, message: res.message };
  const refund = readObject(res.body, 'refund', ['succeeded', 'pending', 'failed'] as const, op);
  if (refund.status !== 'failed') return { status: refund.status, connectorRef: refund.id };
  const body = res.body as Record<string, unknown>;
  return {
    status: 'failed',
    connectorRef: refund.id,
    code: typeof body.failure_code === 'string' ? body.failure_code : 'refund_failed',
    message: typeof body.failure_message === 'string' ? body.failure_message : 'The refund failed.',
  };
}

/** A non-negative integer amount field of a 2xx body, or an unknown outcome. */
function readAmount(body: unknown, field: string, op: string): number {
  const value = (body as Record<string, unknown>)[field];
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new ConnectorUnknownOutcomeError(`sandbox ${op}: the PSP's answer has no readable ${field}`);
}

/** `{object, id, status}` of a 2xx body, or an unknown outcome: a 2xx we cannot read proves nothing. */
function readObject<S extends string>(
  body: unknown,
  object: string,
  statuses: readonly S[],
  op: string,
): { id: string; status: S } {
  const b = body as Record<string, unknown> | null;
  if (
    typeof b === 'object' &&
    b !== null &&
    b.object === object &&
    typeof b.id === 'string' &&
    b.id.length > 0 &&
    (statuses as readonly unknown[]).includes(b.status)
  ) {
    return { id: b.id, status: b.status as S };
  }
  throw new ConnectorUnknownOutcomeError(`sandbox ${op}: unexpected response body from the PSP`);
}

function errorEnvelope(body: unknown): { code: string; message: string; paymentRef?: string } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const error = (body as Record<string, unknown>).error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message, payment_ref: paymentRef } = error as Record<string, unknown>;
  if (typeof code !== 'string' || code.length === 0) return undefined;
  return {
    code,
    message: typeof message === 'string' ? message : code,
    ...(typeof paymentRef === 'string' ? { paymentRef } : {}),
  };
}

function pendingDelaySetting(ctx: ConnectorContext): number {
  const value = ctx.settings.pending_delay_ms;
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : DEFAULT_PENDING_DELAY_MS;
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | string[] | undefined {
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici reports network failures as `TypeError: fetch failed` with the real reason in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
