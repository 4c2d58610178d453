/**
 * The sandbox PSP's webhook wire format (what the PSP POSTs to the gateway) and its parser.
 *
 * The shapes are deliberately close to what a real PSP sends: snake_case, integer minor-unit
 * amounts, a cumulative `amount_refunded`, and the gateway's refund id echoed back as
 * `reference` (null for refunds made in the PSP's own dashboard).
 */
import type { ConnectorEvent, ConnectorPaymentState, ConnectorRefundReport } from '../connector.js';
import { randomString } from '../../lib/ids.js';

export type SandboxRefundStatus = 'succeeded' | 'pending' | 'failed';

/** One refund as it appears on the wire. */
export interface SandboxWireRefund {
  refund_ref: string;
  amount: number;
  status: SandboxRefundStatus;
  reference: string | null;
  failure_code: string | null;
  failure_message: string | null;
}

export interface SandboxPaymentRefundedEvent {
  id: string;
  type: 'payment.refunded';
  /** Unix seconds. */
  created: number;
  data: {
    payment_ref: string;
    /** Cumulative amount of the payment's succeeded refunds at the PSP. */
    amount_refunded: number;
    /** Every refund of the payment, in creation order. */
    refunds: SandboxWireRefund[];
  };
}

export interface SandboxRefundUpdatedEvent {
  id: string;
  type: 'refund.updated';
  created: number;
  data: SandboxWireRefund & { payment_ref: string };
}

export type SandboxWebhookEvent = SandboxPaymentRefundedEvent | SandboxRefundUpdatedEvent;

export const newSandboxEventId = (): string => `sbevt_${randomString(16)}`;

const REFUND_STATUSES: readonly string[] = ['succeeded', 'pending', 'failed'];

/**
 * Maps a sandbox webhook body to the connector-neutral `ConnectorEvent`. Strict on purpose: a body
 * we do not fully understand must not move money, so anything unexpected throws with a message
 * naming the offending field.
 */
export function parseSandboxWebhook(rawBody: string): ConnectorEvent {
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    throw new Error('sandbox webhook: body is not valid JSON');
  }
  const root = asObject(body, 'body');
  const id = nonEmptyString(root.id, 'id');
  const type = root.type;
  const created = root.created;
  if (typeof created !== 'number' || !Number.isSafeInteger(created) || created < 0) {
    throw new Error('sandbox webhook: created must be a non-negative integer (unix seconds)');
  }
  const data = asObject(root.data, 'data');

  switch (type) {
    case 'payment.refunded': {
      if (!Array.isArray(data.refunds)) throw new Error('sandbox webhook: data.refunds must be an array');
      return {
        id,
        type,
        paymentRef: nonEmptyString(data.payment_ref, 'data.payment_ref'),
        amountRefunded: amount(data.amount_refunded, 'data.amount_refunded', 0),
        refunds: data.refunds.map((r, i) => refundReport(asObject(r, `data.refunds[${i}]`), `data.refunds[${i}]`)),
      };
    }
    case 'refund.updated':
      return {
        id,
        type,
        paymentRef: optionalString(data.payment_ref, 'data.payment_ref') ?? null,
        refund: refundReport(data, 'data'),
      };
    default:
      throw new Error(`sandbox webhook: unknown event type ${JSON.stringify(type)}`);
  }
}

const PAYMENT_STATE_STATUSES: readonly string[] = ['authorized', 'captured', 'canceled', 'declined', 'not_found', 'unknown'];

/**
 * Maps the PSP's payment state (`GET /v1/payments/:ref`, or `SandboxPsp.paymentState`) to the
 * connector-neutral `ConnectorPaymentState`; throws on anything it does not fully understand.
 */
export function parseSandboxPaymentState(body: unknown): ConnectorPaymentState {
  const root = asObject(body, 'payment state');
  if (root.object !== 'payment_state') throw new Error('sandbox payment state: object must be "payment_state"');
  const status = root.status;
  if (typeof status !== 'string' || !PAYMENT_STATE_STATUSES.includes(status)) {
    throw new Error(`sandbox payment state: status must be one of ${PAYMENT_STATE_STATUSES.join(', ')}`);
  }
  const refunds = root.refunds;
  if (refunds !== null && !Array.isArray(refunds)) throw new Error('sandbox payment state: refunds must be an array or null');
  return {
    paymentRef: nonEmptyString(root.payment_ref, 'payment_ref'),
    status: status as ConnectorPaymentState['status'],
    amountCaptured: root.amount_captured === null ? null : amount(root.amount_captured, 'amount_captured', 0),
    amountRefunded: root.amount_refunded === null ? null : amount(root.amount_refunded, 'amount_refunded', 0),
    refunds: refunds === null ? null : refunds.map((r, i) => refundReport(asObject(r, `refunds[${i}]`), `refunds[${i}]`)),
  };
}

function refundReport(r: Record<string, unknown>, path: string): ConnectorRefundReport {
  const status = r.status;
  if (typeof status !== 'string' || !REFUND_STATUSES.includes(status)) {
    throw new Error(`sandbox webhook: ${path}.status must be one of ${REFUND_STATUSES.join(', ')}`);
  }
  return {
    connectorRef: nonEmptyString(r.refund_ref, `${path}.refund_ref`),
    amount: amount(r.amount, `${path}.amount`, 1),
    status: status as SandboxRefundStatus,
    reference: optionalString(r.reference, `${path}.reference`) ?? null,
    failureCode: optionalString(r.failure_code, `${path}.failure_code`) ?? null,
    failureMessage: optionalString(r.failure_message, `${path}.failure_message`) ?? null,
  };
}

function asObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`sandbox webhook: ${path} must be an object`);
  }
  return value as Record<string, unknown>;
}

function nonEmptyString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new Error(`sandbox webhook: ${path} must be a non-empty string`);
  return value;
}

/** A string, or null/absent. */
function optionalString(value: unknown, path: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string') throw new Error(`sandbox webhook: ${path} must be a string or null`);
  return value;
}

function amount(value: unknown, path: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new Error(`sandbox webhook: ${path} must be an integer ≥ ${min}`);
  }
  return value;
}
