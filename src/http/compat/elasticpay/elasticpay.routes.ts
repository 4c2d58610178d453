/**
 * ElasticPay's refund API: `POST` and `GET /api/v1/payment_intents/{id}/refunds`, amounts in
 * `amount_cents`, answers with `success` and a message (docs/compat.md, "elasticpay").
 */
import type { FastifyInstance } from 'fastify';
import { MAX_REASON_LENGTH } from '../../../connectors/refund-reasons.js';
import { MAX_AMOUNT } from '../../../lib/money.js';
import type { Services } from '../../../services.js';
import { idParam, listOf, listQuerySchema } from '../../schemas.js';
import { answer, COMPAT_TAG, compatErrorSchema, createRefund, defined, readRouteConfig, refundRouteConfig, type SurfaceDefinition } from '../compat.js';
import { renderElasticPayRefund, renderElasticPayRefundItem } from './elasticpay.objects.js';

interface Body {
  amount_cents?: number;
  reason?: string;
}

const str = { type: 'string' } as const;
const status = { type: 'string', enum: ['succeeded', 'pending', 'failed'] } as const;

const bodySchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    amount_cents: { type: 'integer', minimum: 0, maximum: MAX_AMOUNT, description: 'Amount to refund in the smallest currency unit. Omitted (or 0): a full refund.' },
    reason: { type: 'string', minLength: 1, maxLength: MAX_REASON_LENGTH, description: 'customer_request, duplicate or fraudulent, passed to the PSP; any other text is kept and sent as "other".' },
  },
} as const;

const refundSchema = {
  type: 'object',
  title: 'ElasticPayRefundResult',
  description: 'The answer to an ElasticPay refund request (and the data.object of its payment_intent.* webhook events).',
  properties: {
    success: { type: 'boolean', description: 'false when the PSP rejected the refund.' },
    status,
    transaction_id: { type: 'string', description: 'The payment intent (Settle payment id).' },
    refund_id: str,
    message: str,
    amount_cents: { type: 'integer' },
    currency: str,
  },
} as const;

const refundItemSchema = {
  type: 'object',
  title: 'ElasticPayRefund',
  description: 'A refund of a payment intent, as listed.',
  properties: {
    refund_id: str,
    transaction_id: str,
    status,
    amount_cents: { type: 'integer' },
    currency: str,
    reason: { type: ['string', 'null'] },
    created_at: { type: 'string', format: 'date-time' },
  },
} as const;

const errors = compatErrorSchema([]);

export const elasticpay: SurfaceDefinition = {
  name: 'elasticpay',
  errors: {},
  params: { amount: 'amount_cents', payment_id: 'id' },
  async routes(app: FastifyInstance, services: Services) {
    const params = idParam('The payment intent id (Settle payment id, pay_…)');
    app.post<{ Params: { id: string }; Body: Body | null | undefined }>('/api/v1/payment_intents/:id/refunds', {
      config: refundRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatElasticpayCreateRefund',
        summary: 'ElasticPay: refund a payment intent',
        description: 'Seed 004. A full refund without amount_cents, a partial one with it; several partial refunds up to the charged amount.',
        params,
        body: bodySchema,
        response: { 201: refundSchema, '4xx': errors, '5xx': errors },
      },
    }, async (req, reply) => {
      const b = req.body ?? {};
      const refund = await createRefund(services, req, defined({ payment_id: req.params.id, amount: b.amount_cents, reason: b.reason }));
      return answer(reply, 201, renderElasticPayRefund(refund));
    });

    app.get<{ Params: { id: string }; Querystring: { limit: number; cursor?: string } }>('/api/v1/payment_intents/:id/refunds', {
      config: readRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatElasticpayListRefunds',
        summary: 'ElasticPay: list a payment intent\'s refunds',
        description: 'Seed 004. Newest first, in the native list envelope and pagination (limit, cursor): the ElasticPay document does not describe them.',
        params,
        querystring: { type: 'object', additionalProperties: false, properties: { ...listQuerySchema } },
        response: { 200: listOf(refundItemSchema), '4xx': errors, '5xx': errors },
      },
    }, async (req) => {
      const page = await services.refunds.listForPayment(req.auth!, req.params.id, req.query);
      return { ...page, data: page.data.map(renderElasticPayRefundItem) };
    });
  },
};
