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
  type ConnectorRefundReport,
  type RefundResult,
} from '../connector.js';
import { DEFAULT_PENDING_DELAY_MS, SandboxPsp } from '../../psp-sim/psp-model.js';
import { pspHttp, pspHttpFromFetch, type PspHttp } from '../psp-http.js';
import { SANDBOX_SIGNATURE_HEADER, verifySandboxSignature } from './sandbox-signature.js';
import { parseSandboxPaymentState, parseSandboxWebhook } from './sandbox-webhook.js';

export interface SandboxConnectorOptions {
  /** The in-process PSP for accounts without `settings.base_url`. Default `sharedSandboxPsp()`. */
  psp?: SandboxPsp;
  /** Per-call HTTP timeout in milliseconds, body included. Default 10000. */
  timeoutMs?: number;
  /** HTTP client. Default `pspHttp` (undici's `request` on a keep-alive agent). */
  http?: PspHttp;
  /** Tests: an HTTP client in the shape of `fetch`, used when `http` is not given. */
  fetch?: typeof fetch;
  /**
   * Tests only: lets this connector stand in for a real PSP in live mode (the in-process test
   * harness needs some live-mode PSP). Never set by the gateway itself. Default false.
   */
  liveModeStandIn?: boolean;
}

/**
 * What a Settle client reads for each refusal code of the sandbox PSP over HTTP. The PSP's own
 * text is never passed on: `settings.base_url` could name any server, and whatever it answers
 * must not reach an API client verbatim. Unlisted codes read as `UNLISTED_REFUSAL`.
 */
export const SANDBOX_REFUSAL_MESSAGES: Record<string, string> = {
  card_declined: 'The card was declined.',
  insufficient_funds: 'The card has insufficient funds.',
  expired_card: 'The card has expired.',
  fraudulent: 'The card was declined.',
  invalid_payment_method: 'The payment method is not one the sandbox knows.',
  invalid_amount: 'The payment service provider refused the amount.',
  invalid_currency: 'The payment service provider refused the currency.',
  currency_mismatch: 'The currency does not match the payment\'s.',
  amount_too_large: 'The amount is larger than the payment service provider allows.',
  amount_exceeds_refundable: 'The amount exceeds what the payment service provider can still refund.',
  payment_not_found: 'The payment service provider does not know this payment.',
  refund_not_found: 'The payment service provider has no such refund.',
  payment_already_captured: 'The payment is already captured at the payment service provider.',
  payment_canceled: 'The payment is canceled at the payment service provider.',
  payment_declined: 'The payment was declined at the payment service provider.',
  payment_not_refundable: 'The payment service provider cannot refund this payment.',
  refund_failed: 'The refund failed at the payment service provider.',
  refund_rejected: 'The card issuer rejected the refund.',
  bank_rejected: 'The bank rejected the refund after accepting it.',
};
const UNLISTED_REFUSAL = 'The payment service provider refused the request.';

/** A PSP's code as Settle shows it: a short snake_case token, or `psp_refused`. */
function refusalCode(code: unknown): string {
  return typeof code === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(code) ? code : 'psp_refused';
}
const refusalMessage = (code: string): string => SANDBOX_REFUSAL_MESSAGES[code] ?? UNLISTED_REFUSAL;

const LIVE_MODE_REFUSAL = {
  code: 'connector_test_mode_only',
  message: 'The sandbox connector moves no real money and acts for test-mode accounts only.',
} as const;

export const DEFAULT_SANDBOX_TIMEOUT_MS = 10_000;
/** Bearer token sent when the account has no `credentials.api_key`. */
export const DEFAULT_SANDBOX_API_KEY = 'sk_sandbox';

let shared: SandboxPsp | undefined;

/**
 * Payments the in-process PSP remembers: about 1 KB of heap each, so about 20 MB at most. It lives
 * as long as the gateway, which would otherwise keep every sandbox payment it ever made. A payment
 * it has forgotten (the one used least recently, never one with a refund still pending) comes
 * back as after a gateway restart: rebuilt from its reference, captured in full, its history gone.
 */
export const IN_PROCESS_SANDBOX_PAYMENTS = 20_000;

/** The process-wide in-process PSP, created on first use. */
export function sharedSandboxPsp(): SandboxPsp {
  shared ??= new SandboxPsp({ maxPayments: IN_PROCESS_SANDBOX_PAYMENTS });
  return shared;
}

export function createSandboxConnector(opts: SandboxConnectorOptions = {}): Connector {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SANDBOX_TIMEOUT_MS;
  const send = opts.http ?? (opts.fetch ? pspHttpFromFetch(opts.fetch) : pspHttp);
  const psp = (): SandboxPsp => opts.psp ?? sharedSandboxPsp();

  const http = (ctx: ConnectorContext): SimClient | undefined => {
    const baseUrl = ctx.settings.base_url;
    if (typeof baseUrl !== 'string' || baseUrl.length === 0) return undefined;
    return new SimClient(baseUrl.replace(/\/+$/, ''), ctx, timeoutMs, send);
  };

  // A live-mode account can never reach the sandbox, even one created before that was refused.
  const live = (ctx: ConnectorContext): boolean => !ctx.testMode && opts.liveModeStandIn !== true;

  return {
    name: 'sandbox',
    testModeOnly: opts.liveModeStandIn !== true,

    async authorize(ctx, req) {
      if (live(ctx)) return { outcome: 'declined', ...LIVE_MODE_REFUSAL };
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
      if (live(ctx)) return { outcome: 'rejected', ...LIVE_MODE_REFUSAL };
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
      if (live(ctx)) return { outcome: 'rejected', ...LIVE_MODE_REFUSAL };
      const client = http(ctx);
      if (!client) return psp().cancel({ ...req, accountId: ctx.accountId });
      const res = await client.send('cancel', 'POST', `/v1/payments/${encodeURIComponent(req.connectorRef)}/cancel`, {
        idempotencyKey: req.idempotencyKey,
        body: {},
      });
      return actionResult(res, 'cancel');
    },

    async refund(ctx, req) {
      if (live(ctx)) return { status: 'failed', ...LIVE_MODE_REFUSAL };
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
      if (live(ctx)) return { status: 'failed', ...LIVE_MODE_REFUSAL };
      const client = http(ctx);
      if (!client) return psp().refundStatus({ ...req, accountId: ctx.accountId });
      const path = req.connectorRef
        ? `/v1/refunds/${encodeURIComponent(req.connectorRef)}?payment_ref=${encodeURIComponent(req.paymentRef)}&idempotency_key=${encodeURIComponent(req.idempotencyKey)}`
        : `/v1/refunds?payment_ref=${encodeURIComponent(req.paymentRef)}&idempotency_key=${encodeURIComponent(req.idempotencyKey)}`;
      return refundResult(await client.send('refund status', 'GET', path, {}), 'refund status');
    },

    async paymentState(ctx, req) {
      if (live(ctx)) throw new ConnectorUnknownOutcomeError(LIVE_MODE_REFUSAL.message);
      const client = http(ctx);
      if (!client) return parseSandboxPaymentState(psp().paymentState(req.paymentRef, ctx.accountId));
      const res = await client.send('payment state', 'GET', `/v1/payments/${encodeURIComponent(req.paymentRef)}`, {});
      if (res.kind === 'error') {
        // The PSP's definite "no such payment"; any other refusal says nothing about the payment.
        if (res.code === 'payment_not_found') return { paymentRef: req.paymentRef, status: 'not_found', amountCaptured: null, amountRefunded: null, refunds: null };
        throw new ConnectorUnknownOutcomeError(`sandbox payment state: PSP refused with ${res.code}`);
      }
      try {
        const state = parseSandboxPaymentState(res.body);
        return { ...state, refunds: state.refunds && state.refunds.map(ownWords) };
      } catch (err) {
        throw new ConnectorUnknownOutcomeError(`sandbox payment state: ${(err as Error).message}`, err);
      }
    },

    verifyWebhook(ctx, webhook) {
      if (live(ctx)) return false;
      return verifySandboxSignature(ctx.webhookSecret, webhook.rawBody, headerValue(webhook.headers, SANDBOX_SIGNATURE_HEADER));
    },

    // inbound webhooks come from a server over HTTP: failure texts are Settle's, not the sender's
    parseWebhook: (rawBody) => {
      const event = parseSandboxWebhook(rawBody);
      return event.type === 'payment.refunded' ? { ...event, refunds: event.refunds.map(ownWords) } : { ...event, refund: ownWords(event.refund) };
    },
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
    private readonly http: PspHttp,
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
      const res = await this.http(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        timeoutMs: this.timeoutMs,
      });
      status = res.status;
      text = res.text;
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
  const code = typeof body.failure_code === 'string' ? refusalCode(body.failure_code) : 'refund_failed';
  return { status: 'failed', connectorRef: refund.id, code, message: refusalMessage(code) };
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
  const { code, payment_ref: paymentRef } = error as Record<string, unknown>;
  if (typeof code !== 'string' || code.length === 0) return undefined;
  // the code is kept (a snake_case token) and the message is Settle's: never the server's text
  const settleCode = refusalCode(code);
  return {
    code: settleCode,
    message: refusalMessage(settleCode),
    ...(typeof paymentRef === 'string' ? { paymentRef } : {}),
  };
}

/** A refund report with Settle's failure code and message in place of the PSP's text. */
function ownWords(report: ConnectorRefundReport): ConnectorRefundReport {
  if (report.failureCode == null && report.failureMessage == null) return report;
  const code = report.failureCode == null ? 'refund_failed' : refusalCode(report.failureCode);
  return { ...report, failureCode: code, failureMessage: refusalMessage(code) };
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
  // `fetch` (in tests) reports network failures as `TypeError: fetch failed` with the real reason in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
