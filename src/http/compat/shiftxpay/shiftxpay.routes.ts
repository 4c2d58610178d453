/**
 * ShiftXPay's refund API: `POST /v1/payments/{id}/refunds`, answering with the payment's new
 * status and the amount booked (docs/compat.md, "shiftxpay").
 */
import type { FastifyInstance } from 'fastify';
import { MAX_REASON_LENGTH } from '../../../connectors/refund-reasons.js';
import { MAX_AMOUNT } from '../../../lib/money.js';
import type { RefundView } from '../../../modules/refunds/refunds.service.js';
import type { Services } from '../../../services.js';
import { idParam } from '../../schemas.js';
import { answer, COMPAT_TAG, compatErrorSchema, createRefund, defined, refundRouteConfig, type SurfaceDefinition } from '../compat.js';

interface Body {
  amount?: number;
  reason?: string;
}

const bodySchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    amount: { type: 'integer', minimum: 0, maximum: MAX_AMOUNT, description: 'Minor units. Omitted, 0 or an empty body: the full remaining balance.' },
    reason: { type: 'string', minLength: 1, maxLength: MAX_REASON_LENGTH, description: 'Merchant-supplied reason, stored with the refund.' },
  },
} as const;

const responseSchema = {
  type: 'object',
  title: 'ShiftXPayRefund',
  description: 'The outcome of a ShiftXPay refund call.',
  properties: {
    payment_id: { type: 'string', description: 'The refunded payment\'s public id.' },
    refunded: { type: 'integer', description: 'The amount booked by this call, in minor units (0 while the refund is pending or when it failed).' },
    status: { type: 'string', description: 'The payment\'s status after the call: partially_refunded or refunded (unchanged while the refund is pending or when it failed).' },
    connector_ref: { type: ['string', 'null'], description: 'The PSP\'s refund reference.' },
    refund_status: { type: 'string', enum: ['pending', 'succeeded', 'failed'], description: 'The PSP\'s normalized refund status.' },
  },
} as const;

const CODES = ['not_refundable', 'already_refunded', 'amount_too_large', 'feature_disabled', 'not_found'];

export function renderShiftXPayRefund(r: RefundView) {
  return {
    payment_id: r.payment_id,
    refunded: r.status === 'succeeded' ? r.amount : 0,
    status: r.payment.status,
    connector_ref: r.connector_ref,
    refund_status: r.status,
  };
}

export const shiftxpay: SurfaceDefinition = {
  name: 'shiftxpay',
  errors: {
    payment_not_found: { status: 404, code: 'not_found' },
  },
  async routes(app: FastifyInstance, services: Services) {
    app.post<{ Params: { id: string }; Body: Body | null | undefined }>('/v1/payments/:id/refunds', {
      config: refundRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatShiftxpayCreateRefund',
        summary: 'ShiftXPay: refund a payment',
        description: 'Seed 001. Refunds a captured payment in full (no body, empty body, amount omitted or 0) or in part; answers 201 with the payment\'s new status.',
        params: idParam('The payment id (pay_…)'),
        body: bodySchema,
        response: { 201: responseSchema, '4xx': compatErrorSchema(CODES), '5xx': compatErrorSchema(CODES) },
      },
    }, async (req, reply) => {
      const b = req.body ?? {};
      const refund = await createRefund(services, req, defined({ payment_id: req.params.id, amount: b.amount, reason: b.reason }));
      return answer(reply, 201, renderShiftXPayRefund(refund));
    });
  },
};
