/**
 * The Adyen connector, on Adyen's official Node library (`@adyen/api-library`): Checkout API v71
 * `/payments`, `/payments/{pspReference}/captures`, `/cancels` and `/refunds`, every one with the
 * deterministic `Idempotency-Key`, and standard notifications verified with the library's
 * `hmacValidator`.
 *
 * Adyen's model is asynchronous: a capture, cancel or refund is answered `received`, and its
 * outcome arrives later as a notification (`REFUND`, `REFUND_FAILED`, `REFUNDED_REVERSED`,
 * `CAPTURE`, `CAPTURE_FAILED`, `CANCELLATION`). A refund therefore stays `pending` until its
 * `REFUND` notification. Adyen has no API to ask where a refund or a payment stands: the status
 * query answers `pending` for a refund Adyen received, and `paymentState` answers `unknown`, so
 * reconciliation counts Adyen payments as unverifiable instead of inventing differences
 * (docs/connectors.md: "A refund whose notification never comes").
 *
 * Where Adyen is: a live-mode account always speaks to its own live endpoint
 * (`https://<live_url_prefix>-checkout-live.adyenpayments.com/checkout/v71`). A test-mode account
 * speaks to Adyen's test endpoint, or to the operator's `SETTLE_ADYEN_CHECKOUT_BASE` (the psp-sim's
 * Adyen wire in tests) — never to a host a merchant's settings name.
 */
import type { CheckoutAPI as CheckoutApi, Types } from '@adyen/api-library';
import {
  ConnectorUnknownOutcomeError,
  type ActionResult,
  type AuthorizeResult,
  type CaptureResult,
  type Connector,
  type ConnectorContext,
  type InboundEvent,
  type ConnectorPaymentState,
  type ConnectorRefundReport,
  type RefundResult,
} from '../connector.js';
import { AdyenHttpTransport, AdyenNoAnswerError, AdyenRequestNotSentError } from './adyen-http.js';
import { CheckoutAPI, Client, EnvironmentEnum, HttpClientException, hmacValidator } from './adyen-library.js';
import {
  ADYEN_DECLINE_MESSAGES,
  ADYEN_ERRORS,
  ADYEN_REFUND_FAILURE_BY_EVENT,
  ADYEN_REFUND_FAILURE_REASONS,
  AUTHENTICATION_REFUSAL,
  DEFAULT_DECLINE_MESSAGE,
  DEFAULT_REFUSAL,
  adyenDeclineCode,
  adyenRefundReason,
} from './adyen.mapping.js';

export interface AdyenConnectorOptions {
  /** Replaces Adyen's test endpoint (`https://checkout-test.adyen.com`) for test-mode accounts;
   *  the operator's `SETTLE_ADYEN_CHECKOUT_BASE`. Never used for a live-mode account. */
  checkoutBase?: string;
  /** Per-call timeout in milliseconds. Default 10000. */
  timeoutMs?: number;
}

/** The Checkout API version Settle speaks (the published `CheckoutService-v71` document). */
export const ADYEN_CHECKOUT_VERSION = 'v71';
export const ADYEN_TEST_CHECKOUT = 'https://checkout-test.adyen.com';

/** The notification event codes Settle acts on or records (docs/connectors.md: "event codes to enable"). */
export const ADYEN_EVENT_CODES = ['AUTHORISATION', 'CAPTURE', 'CAPTURE_FAILED', 'CANCELLATION', 'REFUND', 'REFUND_FAILED', 'REFUNDED_REVERSED'] as const;

/** The answer Adyen expects for a notification it may consider delivered. */
export const ADYEN_ACK = '[accepted]';

/** A live URL prefix as Adyen issues it (`1797a841fbb37ca7-AdyenDemo`): no dots, no slashes. */
export const ADYEN_LIVE_PREFIX_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,98}[A-Za-z0-9])?$/;
/** An HMAC key as the Customer Area shows it: hex, 32 to 128 bytes. */
export const ADYEN_HMAC_KEY_RE = /^(?:[0-9A-Fa-f]{2}){32,128}$/;

/** `returnUrl` is required by `/payments`; Settle only makes payments that need no redirect (a
 *  payment that asks for one is declined `authentication_required`), so Adyen never uses it. */
const NO_REDIRECT_RETURN_URL = 'https://settle.invalid/adyen/no-redirect';

/**
 * Settle's test tokens → Adyen's documented test cards (test mode only). Declines use Adyen's
 * test `holderName` values (docs.adyen.com: testing result codes and refusal reasons). The two
 * refund tokens name holders the psp-sim's Adyen wire reads (refunds that stay pending, refunds
 * that fail); Adyen's own test platform treats them as ordinary names (a normal authorisation).
 */
const TEST_CARD = { expiryMonth: '03', expiryYear: '2030', cvc: '737' } as const;
export const ADYEN_TEST_PAYMENT_METHODS: Record<string, { number: string; holderName: string }> = {
  pm_card_visa: { number: '4111111111111111', holderName: 'Settle Test' },
  pm_card_mastercard: { number: '5555341244441115', holderName: 'Settle Test' },
  pm_card_declined: { number: '4111111111111111', holderName: 'DECLINED' },
  pm_card_declined_insufficient_funds: { number: '4111111111111111', holderName: 'NOT_ENOUGH_BALANCE' },
  pm_card_declined_expired_card: { number: '4111111111111111', holderName: 'CARD_EXPIRED' },
  pm_card_declined_fraudulent: { number: '4111111111111111', holderName: 'FRAUD' },
  pm_card_refund_pending: { number: '4111111111111111', holderName: 'REFUND_PENDING' },
  pm_card_refund_fails: { number: '4111111111111111', holderName: 'REFUND_FAILS' },
};

export function createAdyenConnector(opts: AdyenConnectorOptions = {}): Connector {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const apis = new Map<string, { payments: CheckoutApi['PaymentsApi']; modifications: CheckoutApi['ModificationsApi'] }>();

  const account = (ctx: ConnectorContext) => {
    const { api_key: apiKey, merchant_account: merchantAccount } = ctx.credentials as Record<string, unknown>;
    if (typeof apiKey !== 'string' || !apiKey || typeof merchantAccount !== 'string' || !merchantAccount) {
      throw new ConnectorUnknownOutcomeError('adyen: the account has no API key or merchant account');
    }
    const live = !ctx.testMode;
    const base = adyenCheckoutEndpoint(ctx, opts.checkoutBase);
    const cacheKey = `${base}\n${apiKey}`;
    let api = apis.get(cacheKey);
    if (!api) {
      const client = new Client(
        { apiKey, environment: live ? EnvironmentEnum.LIVE : EnvironmentEnum.TEST, ...(live ? { liveEndpointUrlPrefix: ctx.settings.live_url_prefix as string } : {}), connectionTimeoutMillis: timeoutMs },
        new AdyenHttpTransport(base, timeoutMs),
      );
      const checkout = new CheckoutAPI(client);
      api = { payments: checkout.PaymentsApi, modifications: checkout.ModificationsApi };
      // The library's services carry the API version they were generated for; Settle speaks v71
      // at the endpoint chosen above (the transport refuses any other).
      for (const service of [api.payments, api.modifications]) (service as unknown as { baseUrl: string }).baseUrl = base;
      if (apis.size >= 1000) apis.clear();
      apis.set(cacheKey, api);
    }
    return { ...api, merchantAccount };
  };

  return {
    name: 'adyen',
    statusQuery: false,

    async authorize(ctx, req): Promise<AuthorizeResult> {
      const card = ctx.testMode ? ADYEN_TEST_PAYMENT_METHODS[req.paymentMethod] : undefined;
      if (!card) {
        return {
          outcome: 'declined', code: 'invalid_payment_method',
          message: ctx.testMode
            ? 'Unknown test payment method for Adyen; see docs/connectors.md for the test tokens.'
            : 'A live Adyen payment needs the shopper\'s encrypted card data, which payment_method cannot carry; create live Adyen payments with Adyen\'s own checkout.',
        };
      }
      const { payments, merchantAccount } = account(ctx);
      const request = {
        amount: { currency: req.currency.toUpperCase(), value: req.amount },
        merchantAccount,
        reference: req.reference,
        paymentMethod: { type: 'scheme', number: card.number, holderName: card.holderName, ...TEST_CARD },
        returnUrl: NO_REDIRECT_RETURN_URL,
        shopperInteraction: 'Ecommerce',
        ...(req.capture ? { captureDelayHours: 0 } : { additionalData: { manualCapture: 'true' } }),
      } as unknown as Types.checkout.PaymentRequest;
      let res: Types.checkout.PaymentResponse;
      try {
        res = await payments.payments(request, { idempotencyKey: req.idempotencyKey });
      } catch (err) {
        return refusedOrThrow(err, 'authorize', (code, message) => ({ outcome: 'declined', code, message }));
      }
      const pspReference = res.pspReference;
      const resultCode = String(res.resultCode ?? '');
      if (resultCode === 'Authorised') {
        if (!pspReference) throw new ConnectorUnknownOutcomeError('adyen authorize: Authorised without a pspReference');
        const amount = answeredAmount(res.amount, req.amount, req.currency, 'authorize');
        return { outcome: req.capture ? 'captured' : 'authorized', connectorRef: pspReference, amount };
      }
      if (resultCode === 'Refused' || resultCode === 'Cancelled' || resultCode === 'Error') {
        const code = adyenDeclineCode(res.refusalReason);
        return { outcome: 'declined', code, message: ADYEN_DECLINE_MESSAGES[code] ?? DEFAULT_DECLINE_MESSAGE, ...(pspReference ? { connectorRef: pspReference } : {}) };
      }
      if (resultCode === 'Pending' || resultCode === 'Received') {
        // the outcome would come by an AUTHORISATION notification: not something a server-side
        // card payment without a shopper can wait for
        throw new ConnectorUnknownOutcomeError(`adyen authorize: resultCode ${resultCode}`);
      }
      // RedirectShopper, IdentifyShopper, ChallengeShopper, PresentToShopper: needs the shopper.
      return {
        outcome: 'declined', code: 'authentication_required', message: ADYEN_DECLINE_MESSAGES.authentication_required,
        ...(pspReference ? { connectorRef: pspReference } : {}),
      };
    },

    async capture(ctx, req): Promise<CaptureResult> {
      const { modifications, merchantAccount } = account(ctx);
      try {
        const res = await modifications.captureAuthorisedPayment(
          req.connectorRef,
          { merchantAccount, amount: { currency: req.currency.toUpperCase(), value: req.amount } } as Types.checkout.PaymentCaptureRequest,
          { idempotencyKey: req.idempotencyKey },
        );
        received(res.status, 'capture');
        // `received`: Adyen books the capture; a CAPTURE_FAILED notification naming the capture's
        // own pspReference (kept on the capture transaction) may report it failed later
        // (docs/connectors.md).
        return {
          outcome: 'succeeded', connectorRef: res.pspReference || req.connectorRef,
          amountCaptured: answeredAmount(res.amount, req.amount, req.currency, 'capture'),
        };
      } catch (err) {
        return refusedOrThrow(err, 'capture', (code, message) => ({ outcome: 'rejected', code, message }));
      }
    },

    async cancel(ctx, req): Promise<ActionResult> {
      const { modifications, merchantAccount } = account(ctx);
      try {
        const res = await modifications.cancelAuthorisedPaymentByPspReference(
          req.connectorRef, { merchantAccount } as Types.checkout.PaymentCancelRequest, { idempotencyKey: req.idempotencyKey });
        received(res.status, 'cancel');
        return { outcome: 'succeeded', connectorRef: req.connectorRef };
      } catch (err) {
        return refusedOrThrow(err, 'cancel', (code, message) => ({ outcome: 'rejected', code, message }));
      }
    },

    async refund(ctx, req): Promise<RefundResult> {
      const { modifications, merchantAccount } = account(ctx);
      const reason = adyenRefundReason(req.reason);
      try {
        const res = await modifications.refundCapturedPayment(
          req.paymentRef,
          {
            merchantAccount,
            amount: { currency: req.currency.toUpperCase(), value: req.amount },
            reference: req.reference,
            ...(reason ? { merchantRefundReason: reason } : {}),
          } as Types.checkout.PaymentRefundRequest,
          { idempotencyKey: req.idempotencyKey },
        );
        received(res.status, 'refund');
        if (!res.pspReference) throw new ConnectorUnknownOutcomeError('adyen refund: received without a pspReference');
        // the outcome arrives by the REFUND notification
        return { status: 'pending', connectorRef: res.pspReference };
      } catch (err) {
        return refusedOrThrow(err, 'refund', (code, message) => ({ status: 'failed', code, message }));
      }
    },

    async refundStatus(_ctx, req): Promise<RefundResult> {
      // Adyen has no refund status query. A refund Adyen received stays pending until its
      // notification; one whose answer was lost is sent again under its key by the sync worker
      // (Adyen answers a replay with the first answer).
      if (req.connectorRef) return { status: 'pending', connectorRef: req.connectorRef };
      throw new ConnectorUnknownOutcomeError('adyen refund status: Adyen cannot be asked; the refund is sent again under its key');
    },

    async paymentState(_ctx, req): Promise<ConnectorPaymentState> {
      return { paymentRef: req.paymentRef, status: 'unknown', amountCaptured: null, amountRefunded: null, refunds: null };
    },

    verifyWebhook(ctx, webhook) {
      const key = ctx.webhookSecret;
      if (!ADYEN_HMAC_KEY_RE.test(key)) return false;
      let body: NotificationBody;
      try {
        body = parseBody(webhook.rawBody);
      } catch {
        return false;
      }
      // a test account's notifications come from Adyen's test platform, a live one's from live
      if (body.live !== (ctx.testMode ? 'false' : 'true')) return false;
      const merchantAccount = (ctx.credentials as Record<string, unknown>).merchant_account;
      const validator = new hmacValidator();
      for (const item of body.items) {
        if (item.merchantAccountCode !== merchantAccount) return false;
        try {
          if (!validator.validateHMAC(item as unknown as Types.notification.NotificationRequestItem, key)) return false;
        } catch {
          return false; // no hmacSignature
        }
      }
      return true;
    },

    parseWebhook(rawBody) {
      const events = parseAdyenNotification(rawBody).filter((e) => e.type !== 'payment.notice');
      if (events.length !== 1) throw new Error('adyen notification: not a single refund item (the inbound route reads batches)');
      return events[0] as Exclude<InboundEvent, { type: 'payment.notice' }>;
    },
    parseWebhookBatch: parseAdyenNotification,
    webhookAcknowledgement: { contentType: 'text/plain; charset=utf-8', body: ADYEN_ACK },
  };
}

/**
 * The Checkout endpoint of an account: a live-mode account's own live endpoint, whatever the
 * operator's `checkoutBase` says (a live account never reaches a simulator or the test
 * platform); a test-mode account's is `checkoutBase` (or Adyen's test endpoint). Throws (nothing
 * is sent) when the account's environment does not match its mode or a live prefix is missing.
 */
export function adyenCheckoutEndpoint(ctx: Pick<ConnectorContext, 'testMode' | 'settings'>, checkoutBase?: string): string {
  const live = !ctx.testMode;
  // Checked when the account is created; checked again so no path sends a live account's
  // request to the test endpoint or the simulator (or the reverse).
  if ((ctx.settings.environment ?? 'test') !== (live ? 'live' : 'test')) {
    throw new ConnectorUnknownOutcomeError('adyen: the account\'s environment does not match its mode; nothing was sent');
  }
  if (!live) return `${(checkoutBase ?? ADYEN_TEST_CHECKOUT).replace(/\/+$/, '')}/${ADYEN_CHECKOUT_VERSION}`;
  const prefix = ctx.settings.live_url_prefix;
  if (typeof prefix !== 'string' || !ADYEN_LIVE_PREFIX_RE.test(prefix)) {
    throw new ConnectorUnknownOutcomeError('adyen: a live account needs its live_url_prefix; nothing was sent');
  }
  return `https://${prefix}-checkout-live.adyenpayments.com/checkout/${ADYEN_CHECKOUT_VERSION}`;
}

interface NotificationItem {
  pspReference: string;
  originalReference?: string;
  merchantAccountCode: string;
  merchantReference: string;
  amount: { value: number; currency: string };
  eventCode: string;
  success: 'true' | 'false';
  reason?: string;
  additionalData?: Record<string, string>;
}
interface NotificationBody {
  live: string;
  items: NotificationItem[];
}

function parseBody(rawBody: string): NotificationBody {
  let parsed: { live?: unknown; notificationItems?: unknown };
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    throw new Error('adyen notification: body is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || !Array.isArray(parsed.notificationItems) || parsed.notificationItems.length === 0) {
    throw new Error('adyen notification: no notificationItems');
  }
  if (parsed.live !== 'true' && parsed.live !== 'false') throw new Error('adyen notification: live must be "true" or "false"');
  const items = parsed.notificationItems.map((wrapper: unknown) => {
    const item = (wrapper as { NotificationRequestItem?: unknown } | null)?.NotificationRequestItem as NotificationItem | undefined;
    if (!item || typeof item !== 'object') throw new Error('adyen notification: an item without NotificationRequestItem');
    if (typeof item.pspReference !== 'string' || !item.pspReference) throw new Error('adyen notification: an item without pspReference');
    if (typeof item.eventCode !== 'string' || !item.eventCode) throw new Error('adyen notification: an item without eventCode');
    if (item.success !== 'true' && item.success !== 'false') throw new Error('adyen notification: success must be "true" or "false"');
    if (typeof item.merchantAccountCode !== 'string') throw new Error('adyen notification: an item without merchantAccountCode');
    if (!item.amount || !Number.isSafeInteger(item.amount.value) || item.amount.value < 0 || typeof item.amount.currency !== 'string') {
      throw new Error('adyen notification: bad amount');
    }
    return item;
  });
  return { live: parsed.live, items };
}

/** A Settle refund id (what Settle sends as a refund's `reference`); anything else in a
 *  notification's `merchantReference` (a Customer Area refund carries the payment's reference or
 *  the operator's text) does not name a gateway refund. */
const SETTLE_REFUND_ID_RE = /^re_[0-9A-Za-z]{24}$/;

/**
 * Maps a verified notification batch to connector events, one per item. The event id is Adyen's
 * de-duplication key for a notification: the item's pspReference, event code and success. Strict:
 * a body it does not understand throws (the inbound route answers 400 and nothing moves).
 */
export function parseAdyenNotification(rawBody: string): InboundEvent[] {
  return parseBody(rawBody).items.map((item): InboundEvent => {
    const id = `${item.pspReference}:${item.eventCode}:${item.success}`;
    const paymentRef = item.originalReference || null;
    switch (item.eventCode) {
      case 'REFUND':
      case 'REFUND_FAILED':
      case 'REFUNDED_REVERSED': {
        if (!paymentRef) throw new Error(`adyen notification: ${item.eventCode} without originalReference`);
        if (item.amount.value <= 0) throw new Error('adyen notification: bad refund amount');
        const failed = item.eventCode !== 'REFUND' || item.success === 'false';
        const failure = failed
          ? ADYEN_REFUND_FAILURE_REASONS[item.reason ?? ''] ?? ADYEN_REFUND_FAILURE_BY_EVENT[item.eventCode]
          : null;
        const refund: ConnectorRefundReport = {
          connectorRef: item.pspReference,
          amount: item.amount.value,
          status: failed ? 'failed' : 'succeeded',
          reference: SETTLE_REFUND_ID_RE.test(item.merchantReference ?? '') ? item.merchantReference : null,
          failureCode: failure?.code ?? null,
          failureMessage: failure?.message ?? null,
        };
        return { id, type: 'refund.updated', paymentRef, refund };
      }
      default:
        // AUTHORISATION, CAPTURE, CAPTURE_FAILED, CANCELLATION — and any other event code the
        // webhook was set up to send: stored and acknowledged (Adyen would otherwise retry it
        // for ever and hold up the queue), recorded, never acted on with money
        return {
          id, type: 'payment.notice', paymentRef: paymentRef ?? item.pspReference, operationRef: item.pspReference,
          notice: item.eventCode.toLowerCase(), success: item.success === 'true', amount: item.amount.value,
        };
    }
  });
}

function received(status: unknown, op: string): void {
  if (String(status) !== 'received') throw new ConnectorUnknownOutcomeError(`adyen ${op}: status ${String(status)}`);
}

/** The amount Adyen answered with (a replay under the same key answers the first call's), in
 *  minor units; the requested one when Adyen's answer carries none. */
function answeredAmount(amount: Types.checkout.Amount | null | undefined, requested: number, currency: string, op: string): number {
  if (!amount) return requested;
  if (!Number.isSafeInteger(amount.value) || amount.value < 0 || amount.currency.toUpperCase() !== currency.toUpperCase()) {
    throw new ConnectorUnknownOutcomeError(`adyen ${op}: an answer in another currency or a bad amount`);
  }
  return amount.value;
}

/**
 * A definite refusal (Adyen answered 4xx and did nothing) becomes the operation's own refusal,
 * with Settle's code and message; everything after which Adyen may have acted (no answer,
 * timeout, 429, 5xx, a key still in progress) is thrown as an unknown outcome.
 */
function refusedOrThrow<R>(err: unknown, op: string, refusal: (code: string, message: string) => R): R {
  if (err instanceof ConnectorUnknownOutcomeError) throw err;
  if (err instanceof AdyenRequestNotSentError) throw new ConnectorUnknownOutcomeError(err.message, err);
  if (err instanceof AdyenNoAnswerError) throw new ConnectorUnknownOutcomeError(`adyen ${op}: no answer`, err);
  if (err instanceof HttpClientException) {
    const status = err.statusCode;
    if (status === 401 || status === 403) return refusal(AUTHENTICATION_REFUSAL.code, AUTHENTICATION_REFUSAL.message);
    // 704: a request under this idempotency key is still being processed
    const inProgress = err.errorCode === '704';
    if ((status === 400 || status === 404 || status === 422) && !inProgress) {
      const mapped = ADYEN_ERRORS[err.errorCode ?? ''] ?? DEFAULT_REFUSAL;
      return refusal(mapped.code, mapped.message);
    }
    throw new ConnectorUnknownOutcomeError(`adyen ${op}: HTTP ${status}${err.errorCode ? ` (${err.errorCode})` : ''}`, err);
  }
  throw new ConnectorUnknownOutcomeError(`adyen ${op}: ${err instanceof Error ? err.name : 'error'}`, err);
}
