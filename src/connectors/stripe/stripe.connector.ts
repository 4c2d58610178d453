/**
 * The Stripe connector, on Stripe's official SDK: PaymentIntents (create + confirm, manual or
 * automatic capture, partial capture, cancel), Refunds (create, retrieve, list for a payment) and
 * webhooks verified with the SDK's `webhooks.constructEvent`.
 *
 * Where Stripe is comes from the operator's environment only (`SETTLE_STRIPE_API_BASE`, e.g. the
 * psp-sim's Stripe wire in tests); a merchant's account settings never choose the host.
 *
 * Outcomes follow `connector.ts`: a definite answer (an object, a card decline, an invalid-request
 * refusal) or `ConnectorUnknownOutcomeError` for everything after which Stripe may have acted
 * (connection errors, timeouts, 5xx, 429, 409 lock timeouts, a key reused with other parameters).
 * Stripe's own error text never reaches a Settle client: codes and messages come from
 * `stripe.mapping.ts`.
 */
import Stripe from 'stripe';
import {
  ConnectorUnknownOutcomeError,
  type ActionResult,
  type AuthorizeResult,
  type CaptureResult,
  type Connector,
  type ConnectorContext,
  type ConnectorEvent,
  type ConnectorPaymentState,
  type ConnectorRefundReport,
  type RefundResult,
} from '../connector.js';
import {
  DEFAULT_DECLINE_MESSAGE,
  DEFAULT_REFUND_FAILURE,
  DEFAULT_REFUSAL,
  STRIPE_DECLINE_MESSAGES,
  STRIPE_PAYMENT_STATUS,
  STRIPE_REFUND_FAILURES,
  STRIPE_REFUND_STATUS,
  STRIPE_REFUSALS,
  stripeRefundReason,
} from './stripe.mapping.js';

export interface StripeConnectorOptions {
  /** Stripe's API address, e.g. `http://127.0.0.1:4100`; the operator's `SETTLE_STRIPE_API_BASE`.
   *  Default Stripe's own (`https://api.stripe.com`). */
  apiBase?: string;
  /** Per-call timeout in milliseconds. Default 10000. */
  timeoutMs?: number;
}

/** Metadata keys Settle writes on Stripe objects. */
export const STRIPE_METADATA = {
  paymentId: 'settle_payment_id',
  refundId: 'settle_refund_id',
  idempotencyKey: 'settle_idempotency_key',
  reasonText: 'settle_reason',
} as const;

/** Accepted clock difference for `Stripe-Signature`, in seconds (the SDK's default). */
export const STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300;

/** Which secret keys a connector account may hold, by mode. */
export const STRIPE_KEY_PREFIX = { test: 'sk_test_', live: 'sk_live_' } as const;

export function createStripeConnector(opts: StripeConnectorOptions = {}): Connector {
  const address = opts.apiBase ? parseApiBase(opts.apiBase) : {};
  const clients = new Map<string, Stripe>();

  const client = (ctx: ConnectorContext): Stripe => {
    const key = ctx.credentials.secret_key;
    const prefix = ctx.testMode ? STRIPE_KEY_PREFIX.test : STRIPE_KEY_PREFIX.live;
    // Checked when the account is created; checked again so no path can send a live key in test
    // mode (or the reverse).
    if (typeof key !== 'string' || !key.startsWith(prefix)) {
      throw new ConnectorUnknownOutcomeError(`stripe: the account's secret key is not a ${prefix} key`);
    }
    let stripe = clients.get(key);
    if (!stripe) {
      stripe = new Stripe(key, {
        ...address,
        timeout: opts.timeoutMs ?? 10_000,
        // The gateway retries with the same idempotency key itself (sync worker, client retries).
        maxNetworkRetries: 0,
        telemetry: false,
      });
      if (clients.size >= 1000) clients.clear();
      clients.set(key, stripe);
    }
    return stripe;
  };

  return {
    name: 'stripe',

    async authorize(ctx, req): Promise<AuthorizeResult> {
      try {
        const intent = await client(ctx).paymentIntents.create(
          {
            amount: req.amount,
            currency: req.currency.toLowerCase(),
            payment_method: req.paymentMethod,
            // server-side confirm without a return URL: only payment methods without redirects
            automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
            confirm: true,
            capture_method: req.capture ? 'automatic' : 'manual',
            metadata: { [STRIPE_METADATA.paymentId]: req.reference },
          },
          { idempotencyKey: req.idempotencyKey },
        );
        if (intent.status === 'succeeded') return { outcome: 'captured', connectorRef: intent.id, amount: intent.amount_received };
        if (intent.status === 'requires_capture') return { outcome: 'authorized', connectorRef: intent.id, amount: intent.amount_capturable };
        if (intent.status === 'requires_payment_method') return decline(intent.last_payment_error?.decline_code, intent.id);
        // requires_action (3-D Secure), processing: not something a server-side confirm can finish.
        return { outcome: 'declined', connectorRef: intent.id, code: 'authentication_required', message: 'The card requires authentication, which this integration does not support.' };
      } catch (err) {
        if (isStripeError(err, 'StripeCardError')) return decline(err.decline_code ?? err.code, err.payment_intent?.id);
        return refusedOrThrow(err, 'authorize', (code, message) =>
          code === 'payment_not_found'
            ? { outcome: 'declined', code: 'invalid_payment_method', message: 'The payment service provider does not know this payment method.' }
            : { outcome: 'declined', code, message });
      }
    },

    async capture(ctx, req): Promise<CaptureResult> {
      try {
        const intent = await client(ctx).paymentIntents.capture(
          req.connectorRef,
          { amount_to_capture: req.amount },
          { idempotencyKey: req.idempotencyKey },
        );
        if (intent.status !== 'succeeded') throw new ConnectorUnknownOutcomeError(`stripe capture: PaymentIntent is ${intent.status}`);
        return { outcome: 'succeeded', connectorRef: intent.id, amountCaptured: intent.amount_received };
      } catch (err) {
        // A capture retried under its key with another amount is refused, not guessed at.
        if (isStripeError(err, 'StripeIdempotencyError')) return { outcome: 'rejected', ...STRIPE_REFUSALS.idempotency_key_in_use };
        return refusedOrThrow(err, 'capture', (code, message) => ({ outcome: 'rejected', code, message }));
      }
    },

    async cancel(ctx, req): Promise<ActionResult> {
      try {
        const intent = await client(ctx).paymentIntents.cancel(req.connectorRef, {}, { idempotencyKey: req.idempotencyKey });
        if (intent.status !== 'canceled') throw new ConnectorUnknownOutcomeError(`stripe cancel: PaymentIntent is ${intent.status}`);
        return { outcome: 'succeeded', connectorRef: intent.id };
      } catch (err) {
        return refusedOrThrow(err, 'cancel', (code, message) => ({ outcome: 'rejected', code, message }));
      }
    },

    async refund(ctx, req): Promise<RefundResult> {
      const reason = stripeRefundReason(req.reason);
      try {
        const refund = await client(ctx).refunds.create(
          {
            payment_intent: req.paymentRef,
            amount: req.amount,
            ...(reason ? { reason } : {}),
            metadata: {
              [STRIPE_METADATA.refundId]: req.reference,
              [STRIPE_METADATA.idempotencyKey]: req.idempotencyKey,
              ...(req.reasonText ? { [STRIPE_METADATA.reasonText]: req.reasonText.slice(0, 500) } : {}),
            },
          },
          { idempotencyKey: req.idempotencyKey },
        );
        return refundResult(refund);
      } catch (err) {
        return refusedOrThrow(err, 'refund', (code, message) => ({ status: 'failed', code, message }));
      }
    },

    async refundStatus(ctx, req): Promise<RefundResult> {
      const stripe = client(ctx);
      try {
        if (req.connectorRef) return refundResult(await stripe.refunds.retrieve(req.connectorRef));
        // No Stripe id yet (the create's answer was lost): find the refund by the key Settle
        // wrote in its metadata. None → Stripe never created it under that key.
        for await (const refund of stripe.refunds.list({ payment_intent: req.paymentRef, limit: 100 })) {
          if (refund.metadata?.[STRIPE_METADATA.idempotencyKey] === req.idempotencyKey) return refundResult(refund);
        }
        return { status: 'failed', code: 'refund_not_found', message: 'The payment service provider has no refund under this key.' };
      } catch (err) {
        // Even a 404 is not "nothing was refunded" here: the id came from Stripe, so the key or
        // the account is what is wrong, and the sync worker must keep asking.
        throw unknown(err, 'refund status');
      }
    },

    async paymentState(ctx, req): Promise<ConnectorPaymentState> {
      const stripe = client(ctx);
      let intent: Stripe.PaymentIntent;
      try {
        intent = await stripe.paymentIntents.retrieve(req.paymentRef);
      } catch (err) {
        if (isStripeError(err, 'StripeInvalidRequestError') && err.statusCode === 404) {
          return { paymentRef: req.paymentRef, status: 'not_found', amountCaptured: null, amountRefunded: null, refunds: null };
        }
        throw unknown(err, 'payment state');
      }
      const refunds: ConnectorRefundReport[] = [];
      try {
        for await (const refund of stripe.refunds.list({ payment_intent: req.paymentRef, limit: 100 })) refunds.push(refundReport(refund));
      } catch (err) {
        throw unknown(err, 'payment state');
      }
      refunds.reverse(); // Stripe lists newest first; reports are in creation order
      return {
        paymentRef: intent.id,
        status: STRIPE_PAYMENT_STATUS[intent.status] ?? 'unknown',
        amountCaptured: intent.amount_received,
        amountRefunded: refunds.filter((r) => r.status === 'succeeded').reduce((sum, r) => sum + r.amount, 0),
        refunds,
      };
    },

    verifyWebhook(ctx, webhook) {
      const header = headerValue(webhook.headers, 'stripe-signature');
      if (typeof header !== 'string' || ctx.webhookSecret.length === 0) return false;
      try {
        Stripe.webhooks.constructEvent(webhook.rawBody, header, ctx.webhookSecret, STRIPE_WEBHOOK_TOLERANCE_SECONDS);
        return true;
      } catch {
        return false;
      }
    },

    parseWebhook: parseStripeWebhook,
  };
}

/** The refund event types Settle listens to (docs/connectors.md: "events to enable"). */
export const STRIPE_WEBHOOK_EVENTS = ['charge.refunded', 'charge.refund.updated', 'refund.created', 'refund.updated', 'refund.failed'] as const;

/**
 * Maps a verified Stripe event to the connector-neutral event. Strict: a body it does not fully
 * understand throws (the inbound route answers 400 and nothing moves).
 */
export function parseStripeWebhook(rawBody: string): ConnectorEvent {
  let event: Stripe.Event;
  try {
    event = JSON.parse(rawBody) as Stripe.Event;
  } catch {
    throw new Error('stripe webhook: body is not valid JSON');
  }
  if (typeof event !== 'object' || event === null || event.object !== 'event' || typeof event.id !== 'string' || !event.id) {
    throw new Error('stripe webhook: not a Stripe event');
  }
  const object = (event.data as { object?: unknown } | undefined)?.object as Record<string, unknown> | undefined;
  if (typeof object !== 'object' || object === null) throw new Error('stripe webhook: data.object is missing');

  switch (event.type as string) {
    case 'charge.refunded': {
      const charge = object as unknown as Stripe.Charge;
      if (charge.object !== 'charge') throw new Error('stripe webhook: charge.refunded without a charge');
      const paymentRef = idOf(charge.payment_intent);
      if (!paymentRef) throw new Error('stripe webhook: charge without payment_intent');
      if (!Number.isSafeInteger(charge.amount_refunded) || charge.amount_refunded < 0) throw new Error('stripe webhook: bad amount_refunded');
      const refunds = (charge.refunds?.data ?? []).map(refundReport).reverse();
      return { id: event.id, type: 'payment.refunded', paymentRef, amountRefunded: charge.amount_refunded, refunds };
    }
    case 'charge.refund.updated':
    case 'refund.created':
    case 'refund.updated':
    case 'refund.failed': {
      const refund = object as unknown as Stripe.Refund;
      if (refund.object !== 'refund') throw new Error(`stripe webhook: ${event.type} without a refund`);
      return { id: event.id, type: 'refund.updated', paymentRef: idOf(refund.payment_intent), refund: refundReport(refund) };
    }
    default:
      throw new Error(`stripe webhook: unexpected event type ${String(event.type)}`);
  }
}

function refundReport(refund: Stripe.Refund): ConnectorRefundReport {
  if (typeof refund.id !== 'string' || !refund.id) throw new Error('stripe webhook: refund without id');
  if (!Number.isSafeInteger(refund.amount) || refund.amount <= 0) throw new Error('stripe webhook: bad refund amount');
  const status = STRIPE_REFUND_STATUS[refund.status ?? ''] ?? 'pending';
  const failure = status === 'failed' ? STRIPE_REFUND_FAILURES[refund.failure_reason ?? ''] ?? DEFAULT_REFUND_FAILURE : null;
  const reference = refund.metadata?.[STRIPE_METADATA.refundId];
  return {
    connectorRef: refund.id,
    amount: refund.amount,
    status,
    reference: typeof reference === 'string' && reference ? reference : null,
    failureCode: failure?.code ?? null,
    failureMessage: failure?.message ?? null,
  };
}

function refundResult(refund: Stripe.Refund): RefundResult {
  const report = refundReport(refund);
  if (report.status === 'failed') {
    return { status: 'failed', connectorRef: report.connectorRef, code: report.failureCode!, message: report.failureMessage! };
  }
  return { status: report.status, connectorRef: report.connectorRef };
}

function decline(declineCode: string | null | undefined, paymentIntentId: string | undefined): AuthorizeResult {
  const code = declineCode || 'generic_decline';
  return {
    outcome: 'declined',
    code,
    message: STRIPE_DECLINE_MESSAGES[code] ?? DEFAULT_DECLINE_MESSAGE,
    ...(paymentIntentId ? { connectorRef: paymentIntentId } : {}),
  };
}

type StripeErrorType =
  | 'StripeCardError'
  | 'StripeInvalidRequestError'
  | 'StripeIdempotencyError'
  | 'StripeAuthenticationError'
  | 'StripePermissionError';

function isStripeError<T extends StripeErrorType>(err: unknown, type: T): err is InstanceType<typeof Stripe.errors.StripeError> {
  return err instanceof Stripe.errors.StripeError && err.type === type;
}

/**
 * A definite refusal (Stripe answered 4xx and did nothing: invalid request, bad key) becomes the
 * operation's own refusal, with Settle's code and message, returned; everything else is thrown as
 * an unknown outcome.
 */
function refusedOrThrow<R>(err: unknown, op: string, refusal: (code: string, message: string) => R): R {
  if (err instanceof ConnectorUnknownOutcomeError) throw err;
  const definite =
    (isStripeError(err, 'StripeInvalidRequestError') && (err.statusCode === 400 || err.statusCode === 404)) ||
    isStripeError(err, 'StripeCardError') ||
    isStripeError(err, 'StripeAuthenticationError') ||
    isStripeError(err, 'StripePermissionError');
  if (!definite) throw unknown(err, op);
  const stripeErr = err as InstanceType<typeof Stripe.errors.StripeError>;
  if (stripeErr.type === 'StripeAuthenticationError' || stripeErr.type === 'StripePermissionError') {
    return refusal('psp_authentication_failed', 'The payment service provider refused the connector account\'s credentials.');
  }
  const mapped = STRIPE_REFUSALS[stripeErr.code ?? ''] ?? DEFAULT_REFUSAL;
  return refusal(mapped.code, mapped.message);
}

function unknown(err: unknown, op: string): ConnectorUnknownOutcomeError {
  if (err instanceof ConnectorUnknownOutcomeError) return err;
  const what = err instanceof Stripe.errors.StripeError ? `${err.type}${err.statusCode ? ` (HTTP ${err.statusCode})` : ''}` : err instanceof Error ? err.name : 'error';
  return new ConnectorUnknownOutcomeError(`stripe ${op}: ${what}`, err);
}

function idOf(value: string | { id: string } | null | undefined): string | null {
  if (typeof value === 'string') return value || null;
  return value && typeof value.id === 'string' ? value.id : null;
}

function parseApiBase(base: string): { host: string; port: number; protocol: 'http' | 'https' } {
  const url = new URL(base);
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : protocol === 'http' ? 80 : 443, protocol };
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | string[] | undefined {
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}
