/**
 * The Stripe wire: the PSP model served as Stripe's API, so the official `stripe` SDK (and so the
 * gateway's Stripe connector) talks to the sim unmodified. What it keeps of Stripe's behaviour:
 * - routes `/v1/payment_intents` (create + confirm, retrieve, capture with `amount_to_capture`,
 *   cancel) and `/v1/refunds` (create, retrieve, list by `payment_intent`);
 * - form-encoded bodies with bracketed keys (`metadata[settle_refund_id]=…`);
 * - `Authorization: Bearer sk_test_…|sk_live_…`: the key is the account (scopes objects'
 *   idempotency keys, `livemode`, and where its webhooks go: `PUT /_sim/accounts/<key>/webhook`);
 * - `Idempotency-Key`: the first answer is stored and replayed with `Idempotent-Replayed: true`; the
 *   same key with other parameters or on another endpoint is a 400 `idempotency_error`;
 * - Stripe's error objects (`{error: {type, code, decline_code, message, param}}`) and statuses;
 * - events (`charge.refunded`, `refund.created`, `refund.updated`, `refund.failed`) signed with
 *   `Stripe-Signature` by the SDK's own signer.
 * Documented in docs/psp-sim.md.
 */
import Stripe from 'stripe';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthorizeResult, RefundResult } from '../../../connectors/connector.js';
import { randomString } from '../../../lib/ids.js';
import type { SandboxPsp, SandboxTestToken } from '../../psp-model.js';
import type { SimFaultState, SimOp } from '../../faults.js';
import { send, type Faulted, type SimReply } from '../../replies.js';
import type { SimWebhookEncoder } from '../../webhook-dispatcher.js';
import type { SandboxWebhookEvent } from '../../../connectors/sandbox/sandbox-webhook.js';
import {
  chargeObject,
  chargeRefundedEvent,
  modelPaymentRef,
  modelRefundRef,
  paymentIntentId,
  paymentIntentObject,
  refundEvent,
  refundId,
  refundObject,
  type PaymentExtras,
} from './stripe-objects.js';

/**
 * Stripe's test payment methods → the model's cards. The model's own names work too, so one test
 * suite can run over every wire.
 */
export const STRIPE_TEST_PAYMENT_METHODS: Record<string, { card: SandboxTestToken; declineCode?: string }> = {
  pm_card_visa: { card: 'pm_card_visa' },
  pm_card_mastercard: { card: 'pm_card_mastercard' },
  pm_card_chargeDeclined: { card: 'pm_card_declined', declineCode: 'generic_decline' },
  pm_card_chargeDeclinedInsufficientFunds: { card: 'pm_card_declined', declineCode: 'insufficient_funds' },
  pm_card_chargeDeclinedExpiredCard: { card: 'pm_card_declined', declineCode: 'expired_card' },
  pm_card_chargeDeclinedFraudulent: { card: 'pm_card_declined', declineCode: 'fraudulent' },
  pm_card_refundFail: { card: 'pm_card_refund_fails' },
  pm_card_pendingRefund: { card: 'pm_card_refund_pending' },
  pm_card_declined: { card: 'pm_card_declined', declineCode: 'generic_decline' },
  pm_card_refund_fails: { card: 'pm_card_refund_fails' },
  pm_card_refund_pending: { card: 'pm_card_refund_pending' },
};

const REFUND_REASONS = new Set(['duplicate', 'fraudulent', 'requested_by_customer']);

export interface StripeWireContext {
  psp: SandboxPsp;
  faults: SimFaultState;
  faulted: Faulted;
}

type Params = Record<string, unknown>;

interface StoredAnswer {
  fingerprint: string;
  reply: SimReply;
}

/** One Stripe wire over one model: its routes and its webhook encoder share what Stripe keeps
 *  beside the model (metadata, the PaymentIntent's capture method, the decline code). */
export function createStripeWire(psp: SandboxPsp) {
  const payments = new Map<string, PaymentExtras>();
  const refundMetadata = new Map<string, Record<string, string>>();
  /** Metadata by idempotency key, set before the model creates the refund: the model emits the
   *  refund's first event while it is being created, before its id is known here. */
  const metadataByKey = new Map<string, Record<string, string>>();
  const answers = new Map<string, StoredAnswer>();
  const accountOfPayment = new Map<string, string>();

  const livemode = (account: string): boolean => account.startsWith('sk_live_') || account.startsWith('rk_live_');
  const extrasOf = (modelRef: string): PaymentExtras =>
    payments.get(modelRef) ?? { metadata: {}, paymentMethod: 'pm_card_visa', captureMethod: 'automatic', declineCode: null, canceledAt: null };

  const intentOf = (modelRef: string, account: string): Stripe.PaymentIntent | undefined => {
    const view = psp.ensurePayment(modelRef, account);
    return view && paymentIntentObject(view, extrasOf(modelRef), livemode(account));
  };
  const refundOf = (modelRef: string): Stripe.Refund | undefined => {
    const view = psp.refundView(modelRef);
    if (!view) return undefined;
    const metadata = refundMetadata.get(modelRef) ?? (view.idempotency_key ? metadataByKey.get(view.idempotency_key) : undefined) ?? {};
    return refundObject(view, metadata, extrasOf(view.payment_ref).paymentMethod);
  };

  const encoder: SimWebhookEncoder = {
    body(event: SandboxWebhookEvent, accountId: string): string {
      const id = `evt_${randomString(24)}`;
      const live = livemode(accountId);
      if (event.type === 'payment.refunded') {
        const view = psp.paymentView(event.data.payment_ref) ?? psp.ensurePayment(event.data.payment_ref, accountId);
        const refunds = event.data.refunds.map((r) => refundOf(r.refund_ref)).filter((r): r is Stripe.Refund => r !== undefined);
        const charge = chargeObject(view!, extrasOf(event.data.payment_ref), refunds, live);
        return JSON.stringify(chargeRefundedEvent(id, charge, event.created, live));
      }
      const refund = refundOf(event.data.refund_ref);
      if (!refund) throw new Error(`no refund ${event.data.refund_ref}`);
      // the model reports the refund as it is now; the event says what happened to it
      const type = event.data.status === 'failed' ? 'refund.failed' : refund.created === event.created && event.data.status === 'pending' ? 'refund.created' : 'refund.updated';
      return JSON.stringify(refundEvent(id, type, { ...refund, status: event.data.status }, event.created, live));
    },
    headers(secret: string, rawBody: string): Record<string, string> {
      return { 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: rawBody, secret }) };
    },
  };

  function register(app: FastifyInstance, { psp: model, faults, faulted }: StripeWireContext): void {
    app.register(async (api) => {
      api.removeAllContentTypeParsers();
      api.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
        done(null, parseForm(String(body)));
      });
      api.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, String(body).trim() ? undefined : {}));

      api.setErrorHandler((err: FastifyError, _request, reply) =>
        send(reply, stripeError(err.statusCode && err.statusCode < 500 ? err.statusCode : 400, 'invalid_request_error', 'parameter_invalid', err.message)),
      );

      api.addHook('onRequest', async (request, reply) => {
        if (!/^Bearer (sk|rk)_(test|live)_\S+$/.test(request.headers.authorization ?? '')) {
          return send(reply, stripeError(401, 'invalid_request_error', undefined, 'Invalid API Key provided.'));
        }
      });

      /**
       * Stripe's idempotency: with a key, the first answer is stored and replayed; a different
       * request under the same key is refused. Runs inside `faulted`, so a dropped answer is stored
       * (the retry gets it) and an injected 500 is not (the retry does the work).
       */
      const idempotent = (request: FastifyRequest, params: Params, work: () => SimReply): SimReply => {
        const key = headerString(request, 'idempotency-key');
        if (!key) return work();
        const scoped = `${account(request)}|${key}`;
        const fingerprint = `${request.method} ${request.url.split('?')[0]} ${canonical(params)}`;
        const stored = answers.get(scoped);
        if (stored) {
          if (stored.fingerprint !== fingerprint) {
            return stripeError(400, 'idempotency_error', undefined, `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`);
          }
          return { ...stored.reply, headers: { ...stored.reply.headers, 'idempotent-replayed': 'true' } };
        }
        const reply = work();
        if (reply.status < 500) answers.set(scoped, { fingerprint, reply: { ...reply, headers: { ...reply.headers, 'idempotency-key': key } } });
        return reply;
      };

      const run = (op: SimOp, request: FastifyRequest, reply: FastifyReply, apply: () => SimReply) =>
        faulted(op, request, reply, apply, stripeError(500, 'api_error', undefined, 'An unknown error occurred (injected by psp-sim; nothing was applied).'));

      api.post('/v1/payment_intents', (request, reply) => {
        const params = (request.body ?? {}) as Params;
        return run('authorize', request, reply, () =>
          idempotent(request, params, () => {
            const acct = account(request);
            const amount = integer(params.amount);
            if (amount === undefined || amount < 1) return paramError('amount', 'Invalid integer: amount must be a positive integer.');
            const currency = typeof params.currency === 'string' && /^[a-z]{3}$/i.test(params.currency) ? params.currency : undefined;
            if (!currency) return paramError('currency', 'Invalid currency.');
            const pm = typeof params.payment_method === 'string' ? params.payment_method : '';
            const card = STRIPE_TEST_PAYMENT_METHODS[pm];
            if (!card) return stripeError(400, 'invalid_request_error', 'resource_missing', `No such PaymentMethod: '${pm}'`, 'payment_method');
            if (String(params.confirm) !== 'true') return paramError('confirm', 'This simulator only creates PaymentIntents with confirm=true.');
            const captureMethod = params.capture_method === 'manual' ? 'manual' : 'automatic';
            const metadata = stringRecord(params.metadata);
            const result: AuthorizeResult = model.authorize({
              amount,
              currency,
              paymentMethod: card.card,
              capture: captureMethod === 'automatic',
              reference: metadata.settle_payment_id ?? null,
              idempotencyKey: headerString(request, 'idempotency-key') || `sim_${randomString(16)}`,
              accountId: acct,
            });
            const ref = result.connectorRef;
            if (!ref) return stripeError(400, 'invalid_request_error', 'parameter_invalid', 'The payment could not be created.');
            payments.set(ref, { metadata, paymentMethod: pm, captureMethod, declineCode: card.declineCode ?? null, canceledAt: null });
            accountOfPayment.set(ref, acct);
            const intent = intentOf(ref, acct)!;
            if (result.outcome === 'declined') {
              return {
                status: 402,
                body: {
                  error: {
                    type: 'card_error',
                    code: 'card_declined',
                    decline_code: card.declineCode ?? 'generic_decline',
                    message: 'Your card was declined.',
                    doc_url: 'https://stripe.com/docs/error-codes/card-declined',
                    charge: intent.latest_charge,
                    payment_intent: intent,
                    payment_method: { id: pm, object: 'payment_method', type: 'card' },
                  },
                },
              };
            }
            return { status: 200, body: intent };
          }),
        );
      });

      api.get<{ Params: { id: string } }>('/v1/payment_intents/:id', (request, reply) =>
        run('payment_state', request, reply, () => {
          const ref = ownPayment(request.params.id, account(request));
          const intent = ref && intentOf(ref, account(request));
          return intent ? { status: 200, body: intent } : missing('payment_intent', request.params.id);
        }),
      );

      api.post<{ Params: { id: string } }>('/v1/payment_intents/:id/capture', (request, reply) => {
        const params = (request.body ?? {}) as Params;
        return run('capture', request, reply, () =>
          idempotent(request, params, () => {
            const acct = account(request);
            const ref = ownPayment(request.params.id, acct);
            const view = ref && model.ensurePayment(ref, acct);
            if (!ref || !view) return missing('payment_intent', request.params.id);
            const amount = params.amount_to_capture === undefined ? view.amount : integer(params.amount_to_capture);
            if (amount === undefined || amount < 1) return paramError('amount_to_capture', 'Invalid integer: amount_to_capture.');
            const result = model.capture({ connectorRef: ref, amount, idempotencyKey: headerString(request, 'idempotency-key') || `sim_${randomString(16)}`, accountId: acct });
            if (result.outcome === 'rejected') return refusal(result.code, request.params.id);
            return { status: 200, body: intentOf(ref, acct) };
          }),
        );
      });

      api.post<{ Params: { id: string } }>('/v1/payment_intents/:id/cancel', (request, reply) => {
        const params = (request.body ?? {}) as Params;
        return run('cancel', request, reply, () =>
          idempotent(request, params, () => {
            const acct = account(request);
            const ref = ownPayment(request.params.id, acct);
            if (!ref || !model.ensurePayment(ref, acct)) return missing('payment_intent', request.params.id);
            const result = model.cancel({ connectorRef: ref, idempotencyKey: headerString(request, 'idempotency-key') || `sim_${randomString(16)}`, accountId: acct });
            if (result.outcome === 'rejected') return refusal(result.code, request.params.id);
            const extras = extrasOf(ref);
            extras.canceledAt ??= Math.floor(Date.now() / 1000);
            payments.set(ref, extras);
            return { status: 200, body: intentOf(ref, acct) };
          }),
        );
      });

      api.post('/v1/refunds', (request, reply) => {
        const params = (request.body ?? {}) as Params;
        return run('refund', request, reply, () =>
          idempotent(request, params, () => {
            const acct = account(request);
            const target = typeof params.payment_intent === 'string' ? params.payment_intent : typeof params.charge === 'string' ? params.charge : undefined;
            if (!target) return paramError('payment_intent', 'One of charge or payment_intent is required.');
            const ref = ownPayment(target, acct);
            const view = ref && model.ensurePayment(ref, acct);
            if (!ref || !view) return missing(target.startsWith('ch_') ? 'charge' : 'payment_intent', target);
            if (params.reason !== undefined && !REFUND_REASONS.has(String(params.reason))) {
              return paramError('reason', 'Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer.');
            }
            let amount: number | undefined;
            if (params.amount === undefined) {
              const totals = model.totals(ref);
              amount = totals.amount_captured - totals.refunds.filter((r) => r.status !== 'failed').reduce((s, r) => s + r.amount, 0);
              if (amount <= 0) return stripeError(400, 'invalid_request_error', 'charge_already_refunded', `Charge ${view.id} has already been refunded.`);
            } else {
              amount = integer(params.amount);
              if (amount === undefined || amount < 1) return paramError('amount', 'Invalid integer: amount must be a positive integer.');
            }
            const metadata = stringRecord(params.metadata);
            const idempotencyKey = headerString(request, 'idempotency-key') || `sim_${randomString(16)}`;
            metadataByKey.set(idempotencyKey, metadata);
            const result: RefundResult = model.refund({
              paymentRef: ref,
              amount,
              reason: typeof params.reason === 'string' ? params.reason : null,
              reference: metadata.settle_refund_id ?? null,
              idempotencyKey,
              accountId: acct,
              pendingDelayMs: faults.current.pending_delay_ms ?? undefined,
              forcePending: faults.current.force_pending,
            });
            metadataByKey.delete(idempotencyKey);
            if (result.connectorRef) {
              refundMetadata.set(result.connectorRef, metadata);
              const refund = refundOf(result.connectorRef);
              if (refund) return { status: 200, body: refund };
            }
            return refusal(result.status === 'failed' ? result.code : 'refund_not_found', target);
          }),
        );
      });

      api.get<{ Params: { id: string } }>('/v1/refunds/:id', (request, reply) =>
        run('refund_status', request, reply, () => {
          const ref = modelRefundRef(request.params.id);
          const refund = ref && refundOf(ref);
          const owner = refund && accountOfPayment.get(modelPaymentRef(refund.payment_intent as string)!);
          if (!refund || (owner !== undefined && owner !== account(request))) return missing('refund', request.params.id);
          return { status: 200, body: refund };
        }),
      );

      api.get<{ Querystring: Record<string, string | undefined> }>('/v1/refunds', (request, reply) =>
        run('refund_status', request, reply, () => {
          const acct = account(request);
          const q = request.query;
          const limit = q.limit === undefined ? 10 : integer(q.limit);
          if (limit === undefined || limit < 1 || limit > 100) return paramError('limit', 'limit must be an integer from 1 to 100.');
          let all: Stripe.Refund[] = [];
          if (q.payment_intent !== undefined) {
            const ref = ownPayment(q.payment_intent, acct);
            if (!ref || !model.ensurePayment(ref, acct)) return missing('payment_intent', q.payment_intent);
            all = model.totals(ref).refunds.map((r) => refundOf(r.refund_ref)!).reverse();
          } else {
            return paramError('payment_intent', 'This simulator lists refunds of one payment_intent.');
          }
          const start = q.starting_after ? all.findIndex((r) => r.id === q.starting_after) + 1 : 0;
          const page = all.slice(start, start + limit);
          return { status: 200, body: { object: 'list', data: page, has_more: start + limit < all.length, url: '/v1/refunds' } };
        }),
      );

      /** The model ref behind a Stripe id, if it is one of this account's payments. */
      function ownPayment(id: string, acct: string): string | undefined {
        const ref = modelPaymentRef(id);
        if (!ref) return undefined;
        const owner = accountOfPayment.get(ref);
        return owner === undefined || owner === acct ? ref : undefined;
      }
    });
  }

  return { register, encoder };
}

// ------------------------------------------------------------------------------------ errors

function stripeError(status: number, type: string, code: string | undefined, message: string, param?: string): SimReply {
  return {
    status,
    body: {
      error: {
        type,
        ...(code ? { code, doc_url: `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}` } : {}),
        message,
        ...(param ? { param } : {}),
        request_log_url: null,
      },
    },
  };
}

const paramError = (param: string, message: string): SimReply => stripeError(400, 'invalid_request_error', 'parameter_invalid', message, param);
const missing = (kind: string, id: string): SimReply =>
  stripeError(404, 'invalid_request_error', 'resource_missing', `No such ${kind}: '${id}'`, kind === 'refund' ? 'id' : kind);

/** The model's refusal codes as Stripe states them. */
const REFUSALS: Record<string, { status: number; code: string; message: (id: string) => string }> = {
  payment_not_found: { status: 404, code: 'resource_missing', message: (id) => `No such payment_intent: '${id}'` },
  refund_not_found: { status: 404, code: 'resource_missing', message: (id) => `No such refund: '${id}'` },
  amount_exceeds_refundable: { status: 400, code: 'amount_too_large', message: (id) => `Refund amount is greater than unrefunded amount on ${id}.` },
  amount_too_large: { status: 400, code: 'amount_too_large', message: () => 'The amount to capture is greater than the amount capturable.' },
  invalid_amount: { status: 400, code: 'parameter_invalid_integer', message: () => 'Invalid positive integer.' },
  payment_not_refundable: { status: 400, code: 'payment_intent_unexpected_state', message: (id) => `This PaymentIntent (${id}) does not have a successful charge to refund.` },
  payment_already_captured: { status: 400, code: 'payment_intent_unexpected_state', message: (id) => `This PaymentIntent (${id}) has already been captured.` },
  payment_canceled: { status: 400, code: 'payment_intent_unexpected_state', message: (id) => `This PaymentIntent (${id}) has been canceled.` },
  payment_declined: { status: 400, code: 'payment_intent_unexpected_state', message: (id) => `This PaymentIntent (${id}) has no successful charge.` },
};

function refusal(modelCode: string, id: string): SimReply {
  const r = REFUSALS[modelCode] ?? { status: 400, code: 'parameter_invalid', message: () => 'The request was refused.' };
  return stripeError(r.status, 'invalid_request_error', r.code, r.message(id));
}

// ------------------------------------------------------------------------------------ parsing

function account(request: FastifyRequest): string {
  return (request.headers.authorization ?? '').replace(/^Bearer /, '');
}

function headerString(request: FastifyRequest, name: string): string {
  const value = request.headers[name];
  return typeof value === 'string' ? value.trim() : '';
}

function integer(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value);
  return undefined;
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}

/** `a=1&metadata[k]=v&expand[0]=x` → `{a: '1', metadata: {k: 'v'}, expand: {0: 'x'}}` (Stripe's
 *  bracket notation, as the SDK encodes it). */
export function parseForm(text: string): Params {
  const out: Params = {};
  for (const [rawKey, value] of new URLSearchParams(text)) {
    const path = rawKey.split(/\[|\]\[|\]/).filter((p, i) => i === 0 || p !== '');
    let node = out;
    path.forEach((segment, i) => {
      if (i === path.length - 1) node[segment] = value;
      else {
        const next = node[segment];
        node = (typeof next === 'object' && next !== null ? next : (node[segment] = {})) as Params;
      }
    });
  }
  return out;
}

function canonical(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).sort().map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(',')}}`;
}

export { paymentIntentId, refundId };
