/**
 * Gatelithix's refund API: `POST /v1/payments/refund` with `payment_intent_id` in the body
 * (docs/compat.md, "gatelithix").
 */
import type { FastifyInstance } from 'fastify';
import { MAX_REASON_LENGTH } from '../../../connectors/refund-reasons.js';
import { MAX_AMOUNT } from '../../../lib/money.js';
import type { RefundView } from '../../../modules/refunds/refunds.service.js';
import type { Services } from '../../../services.js';
import { invalidParam } from '../../errors.js';
import { answer, COMPAT_TAG, compatErrorSchema, createRefund, defined, refundRouteConfig, type SurfaceDefinition } from '../compat.js';

interface Body {
  payment_intent_id: string;
  amount?: number;
  reason?: string;
  connector_account?: string;
}

const str = { type: 'string' } as const;

// null: no body at all, answered as a missing payment_intent_id (the document's invalid_param case)
const bodySchema = {
  type: ['object', 'null'],
  required: ['payment_intent_id'],
  additionalProperties: false,
  properties: {
    payment_intent_id: { type: 'string', minLength: 1, maxLength: 100, description: 'The payment to refund (Settle\'s pay_… id).' },
    amount: { type: 'integer', minimum: 0, maximum: MAX_AMOUNT, description: 'Amount to refund in cents. 0 or omitted: the whole remaining balance.' },
    reason: { type: 'string', minLength: 1, maxLength: MAX_REASON_LENGTH, description: 'Reason for the refund, e.g. customer_request, duplicate, fraudulent; any other text is kept.' },
    connector_account: { type: 'string', minLength: 1, maxLength: 100, description: 'Must equal the connector account that settled the payment (either id form).' },
  },
} as const;

const refundSchema = {
  type: 'object',
  title: 'GatelithixRefund',
  description: 'A refund as Gatelithix answers it.',
  properties: {
    id: str,
    payment_intent_id: str,
    amount: { type: 'integer' },
    status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] },
    reason: { type: ['string', 'null'] },
    connector_account_id: str,
    connector_account_short_id: str,
    test_mode: { type: 'boolean' },
    created_at: { type: 'string', format: 'date-time' },
  },
} as const;

const CODES = ['invalid_param', 'refund_exceeds_amount', 'payment_intent_not_found', 'invalid_state_transition',
  'connector_account_override_forbidden', 'connector_account_inactive', 'originating_account_unavailable'];

export function renderGatelithixRefund(r: RefundView) {
  return {
    id: r.id,
    payment_intent_id: r.payment_id,
    amount: r.amount,
    status: r.status,
    reason: r.reason,
    connector_account_id: r.connector_account_id,
    connector_account_short_id: r.connector_account_short_id,
    test_mode: r.test_mode,
    created_at: r.created_at,
  };
}

export const gatelithix: SurfaceDefinition = {
  name: 'gatelithix',
  errors: {
    amount_too_large: { status: 400, code: 'refund_exceeds_amount' },
    payment_not_found: { status: 404, code: 'payment_intent_not_found' },
    not_refundable: { status: 409, code: 'invalid_state_transition' },
    already_refunded: { status: 409, code: 'invalid_state_transition' },
  },
  params: { payment_id: 'payment_intent_id' },
  async routes(app: FastifyInstance, services: Services) {
    app.post<{ Body: Body | null | undefined }>('/v1/payments/refund', {
      config: refundRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatGatelithixCreateRefund',
        summary: 'Gatelithix: refund a payment',
        description: 'Seed 000. Refunds a succeeded payment in full (amount 0 or omitted) or in part, through the connector account that settled it.',
        body: bodySchema,
        response: { 201: refundSchema, '4xx': compatErrorSchema(CODES), '5xx': compatErrorSchema(CODES) },
      },
    }, async (req, reply) => {
      const b = req.body;
      if (!b) throw invalidParam('payment_intent_id', 'Missing required parameter: payment_intent_id.');
      const refund = await createRefund(services, req, defined({
        payment_id: b.payment_intent_id,
        amount: b.amount,
        reason: b.reason,
        connector_account: b.connector_account,
      }));
      return answer(reply, 201, renderGatelithixRefund(refund));
    });
  },
};
