/**
 * The Adyen wire: the PSP model served as Adyen's Checkout API v71, so the official
 * `@adyen/api-library` (and so the gateway's Adyen connector) talks to the sim unmodified. What it
 * keeps of Adyen's behaviour:
 * - routes `POST /v71/payments`, `/v71/payments/{paymentPspReference}/captures`, `…/cancels`,
 *   `…/refunds` (the same under `/v72`, the version the library v32 calls);
 * - `/payments` answers at once (`resultCode` `Authorised` or `Refused` with `refusalReason`); the
 *   modifications answer 201 `received` and their outcome comes later as a notification;
 * - `X-API-Key`; `merchantAccount` is the account (scopes payments, names the notifications'
 *   `merchantAccountCode`, selects where they go: `PUT /_sim/accounts/<merchantAccount>/webhook`
 *   with the HMAC key in hex as the secret);
 * - `Idempotency-Key`: the first answer is replayed for the same body; another body → 422;
 * - Adyen's error object (`ServiceError`);
 * - Standard notifications (`{"live":"false","notificationItems":[…]}`) for AUTHORISATION, CAPTURE,
 *   CAPTURE_FAILED, CANCELLATION, REFUND, REFUND_FAILED, REFUNDED_REVERSED, each item signed with
 *   `additionalData.hmacSignature`, acknowledged by the body `[accepted]`.
 * Documented in docs/psp-sim.md.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomString } from '../../../lib/ids.js';
import type { SandboxWebhookEvent } from '../../../connectors/sandbox/sandbox-webhook.js';
import type { SandboxPsp, SandboxTestToken } from '../../psp-model.js';
import type { SimFaultState, SimOp } from '../../faults.js';
import { send, type Faulted, type SimReply } from '../../replies.js';
import type { SimEvent, SimWebhookEncoder } from '../../webhook-dispatcher.js';
import {
  adyenError,
  batchOf,
  eventDate,
  newPspReference,
  signBatch,
  TEST_CARDS,
  TEST_REFUSALS,
  validationError,
  type AdyenAmount,
  type NotificationItem,
  type Refusal,
} from './adyen-objects.js';

/** The API versions served (same handlers): v71 is the contract, v72 is what the library v32 calls. */
export const ADYEN_CHECKOUT_VERSIONS = ['v71', 'v72'] as const;

/** Sim-only `holderName` values that pick the model's refund behaviours for an authorised card. */
export const ADYEN_SIM_HOLDER_NAMES: Record<string, SandboxTestToken> = {
  REFUND_PENDING: 'pm_card_refund_pending',
  REFUND_FAILS: 'pm_card_refund_fails',
};

const PRESENTED_KEYS = new Set(['id', 'payment_ref', 'refund_ref']);

const REFUND_REASONS = new Set(['FRAUD', 'CUSTOMER REQUEST', 'RETURN', 'DUPLICATE', 'OTHER']);

/** `/_sim/refunds/:ref/fail` with this code sends REFUNDED_REVERSED instead of REFUND_FAILED. */
export const REFUNDED_REVERSED_CODE = 'refunded_reversed';

export interface AdyenWireContext {
  psp: SandboxPsp;
  faults: SimFaultState;
  faulted: Faulted;
}

/** Sends one wire-built notification through the dispatcher (with the webhook chaos). */
export type AdyenNotify = (accountId: string, event: SimEvent, rawBody: string) => void;

interface PaymentExtras {
  merchantAccount: string;
  merchantReference: string;
  brand: 'visa' | 'mc';
  /** The psp reference of the last accepted capture (CAPTURE_FAILED names it). */
  capturePspReference: string | null;
}

interface StoredAnswer {
  fingerprint: string;
  reply: SimReply;
}

type Body = Record<string, unknown>;

/** One Adyen wire over one model: its routes, its notifications and the reference tables they share. */
export function createAdyenWire(psp: SandboxPsp) {
  /** Adyen psp reference ↔ model ref, for payments and refunds (created on first use). */
  const toModel = new Map<string, string>();
  const toAdyen = new Map<string, string>();
  const payments = new Map<string, PaymentExtras>();
  /** Model refunds whose success was notified: a later failure is REFUND_FAILED, not REFUND false. */
  const notifiedSuccess = new Set<string>();
  const answers = new Map<string, StoredAnswer>();
  let notify: AdyenNotify = () => undefined;

  const pspRefOf = (modelRef: string): string => {
    let ref = toAdyen.get(modelRef);
    if (!ref) {
      ref = newPspReference();
      toAdyen.set(modelRef, ref);
      toModel.set(ref, modelRef);
    }
    return ref;
  };

  /** The model ref behind an Adyen psp reference (payments and refunds); undefined if unknown. */
  const modelRef = (pspReference: string): string | undefined => toModel.get(pspReference);

  const send1 = (accountId: string, paymentRef: string, items: NotificationItem[]): void => {
    if (items.length === 0) return;
    const event: SimEvent = {
      id: `adyen_${randomString(16)}`,
      type: items[0].eventCode,
      created: Math.floor(Date.now() / 1000),
      data: { payment_ref: paymentRef, psp_references: items.map((i) => i.pspReference), success: items.map((i) => i.success) },
    };
    notify(accountId, event, JSON.stringify(batchOf(items)));
  };

  const item = (
    extras: PaymentExtras,
    fields: Omit<NotificationItem, 'eventDate' | 'merchantAccountCode' | 'merchantReference' | 'paymentMethod'> & { merchantReference?: string | null },
  ): NotificationItem => ({
    ...fields,
    eventDate: eventDate(Date.now()),
    merchantAccountCode: extras.merchantAccount,
    merchantReference: fields.merchantReference ?? extras.merchantReference,
    paymentMethod: extras.brand,
  });

  const extrasOf = (paymentRef: string, accountId: string): PaymentExtras => {
    let extras = payments.get(paymentRef);
    if (!extras) {
      extras = { merchantAccount: accountId, merchantReference: paymentRef, brand: 'visa', capturePspReference: null };
      payments.set(paymentRef, extras);
    }
    return extras;
  };

  /**
   * The model's refund events as Adyen notifications. Adyen says nothing while a refund is pending
   * (the `received` answer covers it); a success is REFUND `true`; a refusal, or a pending refund
   * that fails, is REFUND `false`; a refund that fails after its success was notified is
   * REFUND_FAILED (or REFUNDED_REVERSED when the bank's code says so).
   */
  const onModelEvent = (event: SandboxWebhookEvent, accountId: string): void => {
    const paymentRef = event.data.payment_ref;
    const view = psp.paymentView(paymentRef);
    if (!view) return;
    const extras = extrasOf(paymentRef, accountId);
    const refundItem = (r: { refund_ref: string; amount: number; reference: string | null }, eventCode: NotificationItem['eventCode'], success: boolean, reason?: string) =>
      item(extras, {
        amount: { currency: view.currency, value: r.amount },
        eventCode,
        originalReference: pspRefOf(paymentRef),
        pspReference: pspRefOf(r.refund_ref),
        merchantReference: r.reference,
        success: success ? 'true' : 'false',
        ...(reason ? { reason } : {}),
      });

    if (event.type === 'payment.refunded') {
      const fresh = event.data.refunds.filter((r) => r.status === 'succeeded' && !notifiedSuccess.has(r.refund_ref));
      fresh.forEach((r) => notifiedSuccess.add(r.refund_ref));
      send1(accountId, paymentRef, fresh.map((r) => refundItem(r, 'REFUND', true)));
      return;
    }
    if (event.data.status !== 'failed') return; // pending: silence; succeeded: payment.refunded follows
    const reason = event.data.failure_message ?? event.data.failure_code ?? 'Refund failed';
    if (notifiedSuccess.has(event.data.refund_ref)) {
      const code = event.data.failure_code === REFUNDED_REVERSED_CODE ? 'REFUNDED_REVERSED' : 'REFUND_FAILED';
      send1(accountId, paymentRef, [refundItem(event.data, code, true, reason)]);
    } else {
      send1(accountId, paymentRef, [refundItem(event.data, 'REFUND', false, reason)]);
    }
  };

  /** Model events are encoded by the wire's own subscription (`attach`), so the encoder only
   *  signs and recognises the acknowledgement. */
  const encoder: SimWebhookEncoder = {
    body: () => null,
    headers: () => ({}),
    signBody: (secret, rawBody) => signBatch(rawBody, secret),
    accepts: (status, body) => status >= 200 && status < 300 && body.trim() === '[accepted]',
  };

  /** Subscribes the wire to the model and gives it the dispatcher; returns the unsubscribe. */
  function attach(send: AdyenNotify): () => void {
    notify = send;
    return psp.onEvent(onModelEvent);
  }

  function register(app: FastifyInstance, { psp: model, faults, faulted }: AdyenWireContext): void {
    const injected = adyenError(500, '000', 'Internal error (injected by psp-sim; nothing was applied).', 'internal', { 'transient-error': 'true' });

    for (const version of ADYEN_CHECKOUT_VERSIONS) {
      app.register(
        async (api) => {
          api.setErrorHandler((err: FastifyError, _request, reply) => {
            const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 400;
            return send(reply, adyenError(status, '702', `Unexpected input: ${err.message}`, 'validation'));
          });

          api.addHook('onRequest', async (request, reply) => {
            const key = request.headers['x-api-key'];
            if (typeof key !== 'string' || key.trim() === '') {
              return send(reply, adyenError(401, '000', 'HTTP Status Response - Unauthorized', 'security'));
            }
          });

          /**
           * Adyen's idempotency: the first answer under a key (per API key, i.e. per company
           * account) is stored and replayed for the same request; the same key with another body
           * or on another route is refused. Runs inside `faulted`, so a dropped answer is stored
           * (the retry gets it) and an injected 500 is not (the retry does the work).
           */
          const idempotent = (request: FastifyRequest, body: Body, work: () => SimReply): SimReply => {
            const key = header(request, 'idempotency-key');
            if (!key) return work();
            if (key.length > 64) return validationError('702', 'Idempotency-Key is longer than 64 characters.');
            const scoped = `${header(request, 'x-api-key')}|${key}`;
            const fingerprint = `${request.method} ${request.url.split('?')[0].replace(/^\/v\d+/, '')} ${canonical(body)}`;
            const stored = answers.get(scoped);
            if (stored) {
              if (stored.fingerprint !== fingerprint) {
                return validationError('704', `Idempotency-Key ${key} was already used for a different request.`);
              }
              return stored.reply;
            }
            const reply = work();
            const withKey = { ...reply, headers: { ...reply.headers, 'idempotency-key': key } };
            if (reply.status < 500) answers.set(scoped, { fingerprint, reply: withKey });
            return withKey;
          };

          const run = (op: SimOp, request: FastifyRequest, reply: FastifyReply, apply: () => SimReply) =>
            faulted(op, request, reply, () => idempotent(request, bodyOf(request), apply), injected);

          api.post('/payments', (request, reply) =>
            run('authorize', request, reply, () => {
              const body = bodyOf(request);
              const merchantAccount = requiredString(body, 'merchantAccount');
              if (!merchantAccount) return validationError('901', 'Invalid Merchant Account');
              const amount = amountOf(body.amount);
              if ('error' in amount) return amount.error;
              const reference = requiredString(body, 'reference');
              if (!reference) return validationError('130', "Required field 'reference' is not provided.");
              if (!requiredString(body, 'returnUrl')) return validationError('14_030', "Required field 'returnUrl' is not provided.");
              const card = cardOf(body);
              if ('error' in card) return card.error;

              const manual = isManualCapture(body);
              const result = model.authorize({
                amount: amount.value,
                currency: amount.currency,
                paymentMethod: card.token,
                capture: !manual,
                reference,
                idempotencyKey: header(request, 'idempotency-key') || `sim_${randomString(16)}`,
                accountId: merchantAccount,
              });
              if (!result.connectorRef) return validationError('137', result.outcome === 'declined' ? result.message : 'Invalid amount specified');
              const extras: PaymentExtras = { merchantAccount, merchantReference: reference, brand: card.brand, capturePspReference: null };
              payments.set(result.connectorRef, extras);
              const pspReference = pspRefOf(result.connectorRef);
              const money: AdyenAmount = { currency: amount.currency, value: amount.value };
              const refused = result.outcome === 'declined';
              const refusal: Refusal = card.refusal ?? TEST_REFUSALS.DECLINED;
              send1(merchantAccount, result.connectorRef, [
                item(extras, {
                  amount: money,
                  eventCode: 'AUTHORISATION',
                  pspReference,
                  success: refused ? 'false' : 'true',
                  ...(refused ? { reason: refusal.reason } : { operations: ['CANCEL', 'CAPTURE', 'REFUND'] }),
                }),
              ]);
              if (refused) {
                return {
                  status: 200,
                  body: {
                    additionalData: { refusalReasonRaw: `${refusal.code} : ${refusal.reason}` },
                    amount: money,
                    merchantReference: reference,
                    pspReference,
                    refusalReason: refusal.reason,
                    refusalReasonCode: refusal.code,
                    resultCode: 'Refused',
                  },
                };
              }
              return {
                status: 200,
                body: {
                  additionalData: { authCode: randomString(6, '0123456789'), cardSummary: card.number.slice(-4) },
                  amount: money,
                  merchantReference: reference,
                  paymentMethod: { brand: card.brand, type: 'scheme' },
                  pspReference,
                  resultCode: 'Authorised',
                },
              };
            }),
          );

          api.post<{ Params: { ref: string } }>('/payments/:ref/captures', (request, reply) =>
            run('capture', request, reply, () => {
              const body = bodyOf(request);
              const target = modification(request.params.ref, body);
              if ('error' in target) return target.error;
              const amount = amountOf(body.amount);
              if ('error' in amount) return amount.error;
              if (amount.currency !== target.currency) return validationError('137', `Currency ${amount.currency} does not match the payment's ${target.currency}.`);
              const reference = optionalString(body.reference);
              const pspReference = newPspReference();
              const result = model.capture({
                connectorRef: target.paymentRef,
                amount: amount.value,
                idempotencyKey: header(request, 'idempotency-key') || `sim_${randomString(16)}`,
                accountId: target.merchantAccount,
              });
              const ok = result.outcome === 'succeeded';
              if (ok) target.extras.capturePspReference = pspReference;
              send1(target.merchantAccount, target.paymentRef, [
                item(target.extras, {
                  amount: ok ? { currency: target.currency, value: result.amountCaptured } : amount,
                  eventCode: 'CAPTURE',
                  originalReference: request.params.ref,
                  pspReference,
                  merchantReference: reference,
                  success: ok ? 'true' : 'false',
                  ...(ok ? {} : { reason: result.message }),
                }),
              ]);
              return {
                status: 201,
                body: { amount, merchantAccount: target.merchantAccount, paymentPspReference: request.params.ref, pspReference, ...(reference ? { reference } : {}), status: 'received' },
              };
            }),
          );

          api.post<{ Params: { ref: string } }>('/payments/:ref/cancels', (request, reply) =>
            run('cancel', request, reply, () => {
              const body = bodyOf(request);
              const target = modification(request.params.ref, body);
              if ('error' in target) return target.error;
              const reference = optionalString(body.reference);
              const pspReference = newPspReference();
              const result = model.cancel({
                connectorRef: target.paymentRef,
                idempotencyKey: header(request, 'idempotency-key') || `sim_${randomString(16)}`,
                accountId: target.merchantAccount,
              });
              const ok = result.outcome === 'succeeded';
              const view = model.paymentView(target.paymentRef);
              send1(target.merchantAccount, target.paymentRef, [
                item(target.extras, {
                  amount: { currency: target.currency, value: view?.amount ?? 0 },
                  eventCode: 'CANCELLATION',
                  originalReference: request.params.ref,
                  pspReference,
                  merchantReference: reference,
                  success: ok ? 'true' : 'false',
                  ...(ok ? {} : { reason: result.outcome === 'rejected' ? result.message : 'Cancel failed' }),
                }),
              ]);
              return {
                status: 201,
                body: { merchantAccount: target.merchantAccount, paymentPspReference: request.params.ref, pspReference, ...(reference ? { reference } : {}), status: 'received' },
              };
            }),
          );

          api.post<{ Params: { ref: string } }>('/payments/:ref/refunds', (request, reply) =>
            run('refund', request, reply, () => {
              const body = bodyOf(request);
              const target = modification(request.params.ref, body);
              if ('error' in target) return target.error;
              const amount = amountOf(body.amount);
              if ('error' in amount) return amount.error;
              const reason = body.merchantRefundReason;
              if (reason !== undefined && reason !== null && !(typeof reason === 'string' && REFUND_REASONS.has(reason))) {
                return validationError('702', `merchantRefundReason must be one of ${[...REFUND_REASONS].join(', ')}.`);
              }
              const reference = optionalString(body.reference);
              const result = model.refund({
                paymentRef: target.paymentRef,
                amount: amount.value,
                currency: amount.currency,
                reason: typeof reason === 'string' ? reason : null,
                reference: reference ?? null,
                idempotencyKey: header(request, 'idempotency-key') || `sim_${randomString(16)}`,
                accountId: target.merchantAccount,
                pendingDelayMs: faults.current.pending_delay_ms ?? undefined,
                forcePending: faults.current.force_pending,
              });
              let pspReference: string;
              if (result.connectorRef) {
                // the model has already reported the refund's fate (REFUND sent, or pending)
                pspReference = pspRefOf(result.connectorRef);
              } else {
                // refused without a refund (over the refundable amount, not captured, …): Adyen
                // still says `received`, then REFUND with success false
                pspReference = newPspReference();
                send1(target.merchantAccount, target.paymentRef, [
                  item(target.extras, {
                    amount,
                    eventCode: 'REFUND',
                    originalReference: request.params.ref,
                    pspReference,
                    merchantReference: reference,
                    success: 'false',
                    reason: result.status === 'failed' ? result.message : 'Refund refused',
                  }),
                ]);
              }
              return {
                status: 201,
                body: {
                  amount,
                  merchantAccount: target.merchantAccount,
                  ...(typeof reason === 'string' ? { merchantRefundReason: reason } : {}),
                  paymentPspReference: request.params.ref,
                  pspReference,
                  ...(reference ? { reference } : {}),
                  status: 'received',
                },
              };
            }),
          );

          /** The payment a modification names, if it is this merchant account's. */
          function modification(
            pspReference: string,
            body: Body,
          ): { paymentRef: string; merchantAccount: string; currency: string; extras: PaymentExtras } | { error: SimReply } {
            const merchantAccount = requiredString(body, 'merchantAccount');
            if (!merchantAccount) return { error: validationError('901', 'Invalid Merchant Account') };
            const paymentRef = toModel.get(pspReference);
            const extras = paymentRef ? payments.get(paymentRef) : undefined;
            const view = paymentRef ? model.paymentView(paymentRef) : undefined;
            if (!paymentRef || !extras || !view || extras.merchantAccount !== merchantAccount) {
              return { error: validationError('167', 'Original pspReference required for this operation') };
            }
            return { paymentRef, merchantAccount, currency: view.currency, extras };
          }
        },
        { prefix: `/${version}` },
      );
    }

    // A capture the card scheme rejects after Adyen accepted it (operator API, never faulted).
    app.post<{ Params: { ref: string } }>('/_sim/payments/:ref/capture_failed', async (request) => {
      const paymentRef = toModel.get(request.params.ref) ?? request.params.ref;
      const before = model.paymentView(paymentRef);
      const view = model.failCapture(paymentRef);
      const extras = extrasOf(paymentRef, '');
      extras.capturePspReference ??= newPspReference();
      send1(extras.merchantAccount, paymentRef, [
        item(extras, {
          amount: { currency: view.currency, value: before?.amount_captured ?? 0 },
          eventCode: 'CAPTURE_FAILED',
          originalReference: pspRefOf(paymentRef),
          pspReference: extras.capturePspReference,
          success: 'true',
          reason: 'Capture rejected by the card scheme',
        }),
      ]);
      return view;
    });
  }

  /**
   * The operator API's answers in Adyen's terms: every `id`, `payment_ref` and `refund_ref` that is
   * a model ref with a psp reference is replaced by the psp reference, so a test reads the same
   * references the gateway stores (e.g. a dashboard refund's `id` is the `pspReference` of its
   * REFUND notification).
   */
  const present = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(present);
    if (typeof value !== 'object' || value === null) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = typeof v === 'string' && PRESENTED_KEYS.has(key) ? (toAdyen.get(v) ?? v) : present(v);
    }
    return out;
  };

  /** Adyen's 404 for a route it does not have. */
  const notFound = (method: string, url: string): SimReply => adyenError(404, '000', `No route ${method} ${url.split('?')[0]}.`, 'validation');

  return { register, encoder, attach, modelRef, pspRefOf, notFound, present };
}

// ------------------------------------------------------------------------------------ parsing

function bodyOf(request: FastifyRequest): Body {
  const body = request.body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Body) : {};
}

function header(request: FastifyRequest, name: string): string {
  const value = request.headers[name];
  return typeof value === 'string' ? value.trim() : '';
}

function requiredString(body: Body, field: string): string | undefined {
  const v = body[field];
  return typeof v === 'string' && v.trim() !== '' ? v : undefined;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function amountOf(value: unknown): AdyenAmount | { error: SimReply } {
  if (typeof value !== 'object' || value === null) return { error: validationError('100', 'No amount specified') };
  const { currency, value: minor } = value as Record<string, unknown>;
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) return { error: validationError('138', 'Unsupported currency specified') };
  if (typeof minor !== 'number' || !Number.isSafeInteger(minor) || minor < 1) return { error: validationError('137', 'Invalid amount specified') };
  return { currency, value: minor };
}

/** `additionalData.manualCapture: "true"`, or a `captureDelayHours` above 0 (the sim does not run
 *  the delay: the payment waits for a capture request). */
function isManualCapture(body: Body): boolean {
  const additional = body.additionalData;
  if (typeof additional === 'object' && additional !== null && String((additional as Record<string, unknown>).manualCapture) === 'true') return true;
  return typeof body.captureDelayHours === 'number' && body.captureDelayHours > 0;
}

/**
 * The card of a `scheme` payment method: the raw `number`, or the test environment's unencrypted
 * form `encryptedCardNumber: "test_<number>"`. Refusals by Adyen's test values in `holderName` or
 * `additionalData.RequestedTestAcquirerResponseCode`; the sim's refund behaviours by `holderName`
 * `REFUND_PENDING` / `REFUND_FAILS`. A number not on the test list is refused as Invalid Card Number.
 */
function cardOf(
  body: Body,
): { token: SandboxTestToken; brand: 'visa' | 'mc'; number: string; refusal?: Refusal } | { error: SimReply } {
  const pm = body.paymentMethod;
  if (typeof pm !== 'object' || pm === null) return { error: validationError('14_003', "Required field 'paymentMethod' is not provided.") };
  const method = pm as Record<string, unknown>;
  const type = method.type ?? 'scheme';
  if (type !== 'scheme') return { error: validationError('905', `Payment details are not supported: ${String(type)}.`) };
  const raw = typeof method.number === 'string' ? method.number : typeof method.encryptedCardNumber === 'string' ? method.encryptedCardNumber.replace(/^test_/, '') : '';
  const number = raw.replace(/\s+/g, '');
  if (!number) return { error: validationError('14_003', "Required field 'paymentMethod.encryptedCardNumber' is not provided.") };
  const brand = TEST_CARDS[number];
  const holder = typeof method.holderName === 'string' ? method.holderName.trim().toUpperCase() : '';
  const additional = (typeof body.additionalData === 'object' && body.additionalData !== null ? body.additionalData : {}) as Record<string, unknown>;
  const acquirerCode = additional.RequestedTestAcquirerResponseCode;
  const byCode = Object.values(TEST_REFUSALS).find((r) => r.acquirerCode === String(acquirerCode));
  const refusal = !brand ? TEST_REFUSALS.INVALID_CARDNUMBER : (TEST_REFUSALS[holder] ?? byCode);
  const cardBrand = brand ?? (number.startsWith('5') || number.startsWith('2') ? 'mc' : 'visa');
  if (refusal) return { token: 'pm_card_declined', brand: cardBrand, number, refusal };
  const token = ADYEN_SIM_HOLDER_NAMES[holder] ?? (brand === 'mc' ? 'pm_card_mastercard' : 'pm_card_visa');
  return { token, brand: cardBrand, number };
}

function canonical(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).sort().map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(',')}}`;
}
