/**
 * The PSP interface. Every adapter (sandbox, stripe, adyen) implements it.
 *
 * Outcomes are three-valued on purpose. A call either returns a definite answer (success,
 * pending, or a definite rejection), or throws `ConnectorUnknownOutcomeError` when the gateway
 * cannot know what happened at the PSP (timeout, 5xx, dropped connection). Callers must treat the
 * unknown outcome as "maybe done" and retry with the same idempotency key, never as a failure.
 */

import type { RefundReasonCode } from './refund-reasons.js';

/** What an adapter knows about the connector account it is acting for. */
export interface ConnectorContext {
  accountId: string;
  shortId: string;
  testMode: boolean;
  /** Non-secret per-account settings, e.g. the sandbox's `base_url` and `pending_delay_ms`. */
  settings: Record<string, unknown>;
  /** Decrypted credentials; never logged. */
  credentials: Record<string, unknown>;
  /** The secret that signs this account's inbound webhooks; never logged. */
  webhookSecret: string;
}

export interface AuthorizeRequest {
  amount: number;
  currency: string;
  paymentMethod: string;
  /** true → authorize and capture in one step (capture_method automatic). */
  capture: boolean;
  /** Deterministic per payment; the PSP does the work at most once per key. */
  idempotencyKey: string;
  /** The gateway's payment id, stored by the PSP as the merchant reference. */
  reference: string;
}

export type AuthorizeResult =
  | {
      outcome: 'authorized' | 'captured';
      connectorRef: string;
      /** What the PSP authorized (and, when `captured`, captured), in minor units. It is the
       *  PSP's answer, not an echo of the request: a PSP replaying an earlier call under the same
       *  idempotency key answers with the earlier amount, and the gateway books only this one. */
      amount: number;
    }
  | { outcome: 'declined'; connectorRef?: string; code: string; message: string };

export interface CaptureRequest {
  connectorRef: string;
  amount: number;
  currency: string;
  idempotencyKey: string;
}

export type ActionResult =
  | { outcome: 'succeeded'; connectorRef?: string }
  | { outcome: 'rejected'; code: string; message: string };

export type CaptureResult =
  | {
      outcome: 'succeeded';
      /** The capture's own reference at the PSP where it has one (Adyen's capture pspReference,
       *  which a later CAPTURE_FAILED names); else the payment's. */
      connectorRef?: string;
      /** What the PSP captured, in minor units, as the PSP reports it (a replayed capture
       *  reports the first call's amount). The gateway books this, never the requested amount. */
      amountCaptured: number;
    }
  | { outcome: 'rejected'; code: string; message: string };

export interface CancelRequest {
  connectorRef: string;
  idempotencyKey: string;
}

export interface RefundRequest {
  /** The payment's reference at the PSP. */
  paymentRef: string;
  amount: number;
  currency: string;
  /** The refund's reason as a canonical code (see `refund-reasons.ts`), for the PSP's own codes. */
  reason?: RefundReasonCode | null;
  /** The merchant's reason text when it is no well-known spelling (`reason` is then `other`). */
  reasonText?: string | null;
  /** `settle_<refund id>`: the same on every retry of the same refund. */
  idempotencyKey: string;
  /** The gateway's refund id, echoed back by the PSP in its webhooks (how they converge). */
  reference: string;
}

export type RefundResult =
  | { status: 'succeeded' | 'pending'; connectorRef: string }
  | { status: 'failed'; connectorRef?: string; code: string; message: string };

export interface RefundStatusRequest {
  /** Known once the PSP has answered at least once. */
  connectorRef?: string | null;
  paymentRef: string;
  idempotencyKey: string;
}

/** A refund as the PSP reports it in a webhook. */
export interface ConnectorRefundReport {
  connectorRef: string;
  amount: number;
  status: 'succeeded' | 'pending' | 'failed';
  /** The gateway's refund id when the refund was made through the gateway; absent for refunds
   *  made in the PSP's own dashboard. */
  reference?: string | null;
  failureCode?: string | null;
  failureMessage?: string | null;
}

export interface PaymentStateRequest {
  /** The payment's reference at the PSP. */
  paymentRef: string;
}

/**
 * What the PSP says it did for one payment: the truth reconciliation compares the gateway with.
 * Every field the PSP cannot tell is `null` (or status `unknown`), never a guess: a PSP without a
 * status query (Adyen) answers `unknown` with nulls, and reconciliation then reports the payment
 * as unverifiable instead of inventing a difference.
 */
export interface ConnectorPaymentState {
  paymentRef: string;
  /** `not_found`: the PSP definitely has no such payment. `unknown`: the PSP cannot say. */
  status: 'authorized' | 'captured' | 'canceled' | 'declined' | 'not_found' | 'unknown';
  /** Amount captured at the PSP in minor units; null when the PSP cannot say. */
  amountCaptured: number | null;
  /** Sum of the payment's succeeded refunds at the PSP; null when the PSP cannot say. */
  amountRefunded: number | null;
  /** Every refund the PSP has for this payment (succeeded, pending and failed), with the
   *  gateway's refund id as `reference` when it was made through the gateway; null when the PSP
   *  cannot list them. */
  refunds: ConnectorRefundReport[] | null;
}

export type ConnectorEvent =
  | {
      id: string;
      type: 'payment.refunded';
      paymentRef: string;
      /** Cumulative amount refunded at the PSP for this payment. */
      amountRefunded: number;
      refunds: ConnectorRefundReport[];
    }
  | {
      id: string;
      type: 'refund.updated';
      paymentRef?: string | null;
      refund: ConnectorRefundReport;
    };

/** What a PSP reports about a payment itself (Adyen's AUTHORISATION, CAPTURE, CAPTURE_FAILED,
 *  CANCELLATION): stored and recorded. A capture the PSP reports failed (CAPTURE_FAILED, or
 *  CAPTURE with success false) undoes the gateway's capture booking; nothing else moves money. */
export interface ConnectorPaymentNotice {
  id: string;
  type: 'payment.notice';
  paymentRef: string;
  /** The PSP's reference of the operation reported (Adyen: the capture's pspReference for CAPTURE
   *  and CAPTURE_FAILED). Absent from notices stored before the gateway kept it. */
  operationRef?: string;
  /** The PSP's event, lower case (`capture_failed`, …). */
  notice: string;
  success: boolean;
  amount: number;
}

/** Everything an inbound webhook can carry. */
export type InboundEvent = ConnectorEvent | ConnectorPaymentNotice;

export interface InboundWebhook {
  rawBody: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface Connector {
  readonly name: string;
  /** A connector that moves no real money (the sandbox): accounts exist in test mode only, and
   *  it refuses to act for a live-mode account. Default false. */
  readonly testModeOnly?: boolean;
  /** Whether the PSP can be asked where a refund stands. False (Adyen): `refundStatus` answers
   *  `pending` without asking, and a pending refund finishes only by the PSP's notification, so
   *  reconciliation reports one pending too long instead of waiting for ever. Default true. */
  readonly statusQuery?: boolean;
  authorize(ctx: ConnectorContext, req: AuthorizeRequest): Promise<AuthorizeResult>;
  capture(ctx: ConnectorContext, req: CaptureRequest): Promise<CaptureResult>;
  cancel(ctx: ConnectorContext, req: CancelRequest): Promise<ActionResult>;
  refund(ctx: ConnectorContext, req: RefundRequest): Promise<RefundResult>;
  /** Asks the PSP where a refund stands (the sync worker's status query). Throws
   *  `ConnectorUnknownOutcomeError` when the PSP cannot be asked; returns `failed` with code
   *  `refund_not_found` when the PSP has no refund under that key. */
  refundStatus(ctx: ConnectorContext, req: RefundStatusRequest): Promise<RefundResult>;
  /** Reads what the PSP did for one payment (reconciliation). Throws
   *  `ConnectorUnknownOutcomeError` when the PSP cannot be asked right now; answers with
   *  `unknown`/null fields for what this PSP never tells. */
  paymentState(ctx: ConnectorContext, req: PaymentStateRequest): Promise<ConnectorPaymentState>;
  /** Checks the connector's own signature scheme (with `ctx.webhookSecret`), including the
   *  timestamp tolerance. */
  verifyWebhook(ctx: ConnectorContext, webhook: InboundWebhook): boolean;
  /** Parses a verified body; throws on a body it cannot understand. */
  parseWebhook(rawBody: string): ConnectorEvent;
  /** For a PSP that batches its notifications (Adyen): one event per item, used instead of
   *  `parseWebhook` by the inbound route. */
  parseWebhookBatch?(rawBody: string): InboundEvent[];
  /** The answer the PSP expects once a webhook is stored (Adyen: `[accepted]`); default the
   *  gateway's JSON receipt. */
  readonly webhookAcknowledgement?: { contentType: string; body: string };
}

/** The PSP may or may not have acted: retry with the same idempotency key or ask for the status. */
export class ConnectorUnknownOutcomeError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'ConnectorUnknownOutcomeError';
  }
}

export type ConnectorRegistry = ReadonlyMap<string, Connector>;

export const SUPPORTED_CONNECTORS = ['sandbox', 'stripe', 'adyen'] as const;
