/**
 * The generic refund API of seed 002: `POST /refunds` with a camelCase body naming the payment
 * (docs/compat.md, "generic").
 */
import type { FastifyInstance } from 'fastify';
import { REFUND_REASON_CODES } from '../../../connectors/refund-reasons.js';
import { MAX_AMOUNT } from '../../../lib/money.js';
import type { RefundView } from '../../../modules/refunds/refunds.service.js';
import type { Services } from '../../../services.js';
import { invalidParam } from '../../errors.js';
import { metadataSchema } from '../../schemas.js';
import { answer, COMPAT_TAG, compatErrorSchema, createRefund, defined, refundRouteConfig, type SurfaceDefinition } from '../compat.js';

interface Body {
  paymentId: string;
  amount?: number;
  currency: string;
  description?: string;
  lineItems?: { id: string; quantity?: number }[];
  metadata?: Record<string, string>;
  reason: string;
  reference?: string;
}

const str = { type: 'string' } as const;
const nstr = { type: ['string', 'null'] } as const;
const int = { type: 'integer' } as const;
const text = (min: number, max: number, description: string) => ({ type: 'string', minLength: min, maxLength: max, description }) as const;

// null: no body at all, answered as a missing paymentId
const bodySchema = {
  type: ['object', 'null'],
  required: ['paymentId', 'currency', 'reason'],
  additionalProperties: false,
  properties: {
    paymentId: text(1, 100, 'The unique identifier for the Payment object (Settle\'s pay_… id).'),
    amount: { type: 'integer', minimum: 0, maximum: MAX_AMOUNT, description: 'Minor units, up to the remaining unrefunded amount; not set (or 0): the full unrefunded amount.' },
    currency: { type: 'string', pattern: '^[A-Z]{3}$', description: 'Three-letter ISO currency code, in uppercase: the payment\'s currency.' },
    description: text(1, 80, 'A long form explanation of the refund, meant to be displayed to the customer.'),
    lineItems: {
      type: 'array', minItems: 1, maxItems: 100,
      description: 'The line items of the payment this refund is on; quantity defaults to what is left unrefunded.',
      items: {
        type: 'object', required: ['id'], additionalProperties: false,
        properties: { id: text(1, 100, 'A line item id of the payment (li_…).'), quantity: { type: 'integer', minimum: 1, maximum: 1_000_000 } },
      },
    },
    metadata: metadataSchema,
    reason: { type: 'string', enum: [...REFUND_REASON_CODES], description: 'The reason of the refund.' },
    reference: text(1, 40, 'A string to reconcile the refund with your internal systems.'),
  },
} as const;

const refundSchema = {
  type: 'object',
  title: 'GenericRefund',
  description: 'A refund, in this API\'s camelCase (the native refund object, renamed).',
  properties: {
    id: str, object: { type: 'string', enum: ['refund'] }, paymentId: str, amount: int, currency: str,
    status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] },
    reason: nstr, description: nstr, reference: nstr, metadata: { type: 'object', additionalProperties: { type: 'string' } },
    lineItems: { type: 'array', items: { type: 'object', properties: { id: str, quantity: int, amount: int } } },
    orderId: nstr, connector: str, connectorAccountId: str, connectorAccountShortId: str, connectorRef: nstr,
    failureCode: nstr, failureMessage: nstr, source: { type: 'string', enum: ['api', 'connector'] }, testMode: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' }, updatedAt: { type: 'string', format: 'date-time' },
    payment: {
      type: 'object',
      properties: { id: str, status: str, amountCaptured: int, amountRefunded: int, amountRefundable: int },
    },
  },
} as const;

const CODES = ['payment.not-found', 'amount.insufficient'];

export function renderGenericRefund(r: RefundView) {
  return {
    id: r.id,
    object: r.object,
    paymentId: r.payment_id,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    reason: r.reason,
    description: r.description,
    reference: r.reference,
    metadata: r.metadata,
    lineItems: r.line_items,
    orderId: r.order_id,
    connector: r.connector,
    connectorAccountId: r.connector_account_id,
    connectorAccountShortId: r.connector_account_short_id,
    connectorRef: r.connector_ref,
    failureCode: r.failure_code,
    failureMessage: r.failure_message,
    source: r.source,
    testMode: r.test_mode,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    payment: {
      id: r.payment.id,
      status: r.payment.status,
      amountCaptured: r.payment.amount_captured,
      amountRefunded: r.payment.amount_refunded,
      amountRefundable: r.payment.amount_refundable,
    },
  };
}

export const generic: SurfaceDefinition = {
  name: 'generic',
  errors: {
    payment_not_found: { status: 404, code: 'payment.not-found' },
    amount_too_large: { status: 403, code: 'amount.insufficient' },
    already_refunded: { status: 403, code: 'amount.insufficient' },
  },
  params: { payment_id: 'paymentId', line_items: 'lineItems' },
  async routes(app: FastifyInstance, services: Services) {
    app.post<{ Body: Body | null | undefined }>('/refunds', {
      config: refundRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatGenericCreateRefund',
        summary: 'Generic: create a refund',
        description: 'Seed 002. Refunds a payment in full or in part, several times until it is fully refunded; an already refunded payment, or more than is left, answers 403 amount.insufficient.',
        body: bodySchema,
        response: { 201: refundSchema, '4xx': compatErrorSchema(CODES), '5xx': compatErrorSchema(CODES) },
      },
    }, async (req, reply) => {
      const b = req.body;
      if (!b) throw invalidParam('paymentId', 'Missing required parameter: paymentId.');
      const refund = await createRefund(services, req, defined({
        payment_id: b.paymentId,
        amount: b.amount,
        currency: b.currency,
        description: b.description,
        line_items: b.lineItems,
        metadata: b.metadata,
        reason: b.reason,
        reference: b.reference,
      }));
      return answer(reply, 201, renderGenericRefund(refund));
    });
  },
};
