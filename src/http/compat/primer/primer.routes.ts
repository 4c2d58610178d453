/**
 * Primer's refund API: `POST /payments/{id}/refund` answering with the payment, whose
 * `transactions` show the refund; `GET /payments/{id}` reads it (docs/compat.md, "primer").
 */
import type { FastifyInstance } from 'fastify';
import { MAX_REASON_LENGTH } from '../../../connectors/refund-reasons.js';
import { MAX_AMOUNT } from '../../../lib/money.js';
import type { PaymentView } from '../../../modules/payments/payments.service.js';
import type { Services } from '../../../services.js';
import { idParam } from '../../schemas.js';
import { answer, COMPAT_TAG, compatErrorSchema, createRefund, defined, readRouteConfig, refundRouteConfig, type SurfaceDefinition } from '../compat.js';

interface Body {
  amount?: number;
  orderId?: string;
  reason?: string;
}

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const PRIMER_STATUSES = ['PENDING', 'FAILED', 'AUTHORIZED', 'SETTLING', 'PARTIALLY_SETTLED', 'SETTLED', 'DECLINED', 'CANCELLED'] as const;
const PROCESSOR_STATUSES = ['AUTHORIZED', 'DECLINED', 'FAILED', 'SETTLED', 'PENDING', 'CANCELLED'] as const;

const bodySchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    amount: { type: 'integer', minimum: 0, maximum: MAX_AMOUNT, description: 'Minor units (700 for $7). Defaults to the remaining non-refunded amount.' },
    orderId: { type: 'string', minLength: 1, maxLength: 200, description: 'An order id for the refund; defaults to the payment\'s orderId.' },
    reason: { type: 'string', minLength: 1, maxLength: MAX_REASON_LENGTH, description: 'A reason for your own records.' },
  },
} as const;

const paymentSchema = {
  type: 'object',
  title: 'PrimerPayment',
  description: 'A payment as Primer shows it; a refund is one of its transactions.',
  properties: {
    id: str,
    date: time,
    dateUpdated: time,
    status: { type: 'string', enum: [...PRIMER_STATUSES] },
    orderId: { type: ['string', 'null'] },
    currencyCode: str,
    amount: int,
    customerId: { type: ['string', 'null'] },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    order: {
      type: 'object',
      properties: { lineItems: { type: 'array', items: { type: 'object', properties: { itemId: str, description: str, amount: int, quantity: int } } } },
    },
    paymentMethod: { type: 'object', properties: { paymentMethodToken: str } },
    processor: { type: 'object', properties: { name: str, processorMerchantId: str, amountCaptured: int, amountRefunded: int } },
    statusReason: { type: 'object', properties: { type: str, code: str, message: str } },
    transactions: {
      type: 'array',
      items: {
        type: 'object',
        title: 'PrimerTransaction',
        properties: {
          id: str, date: time, amount: int, currencyCode: str,
          transactionType: { type: 'string', enum: ['SALE', 'REFUND'] },
          processorTransactionId: { type: ['string', 'null'] }, processorName: str, processorMerchantId: str,
          processorStatus: { type: 'string', enum: [...PROCESSOR_STATUSES] },
          refundId: str,
        },
      },
    },
  },
} as const;

const errors = compatErrorSchema([]);

function paymentStatus(p: PaymentView): (typeof PRIMER_STATUSES)[number] {
  switch (p.status) {
    case 'processing': return 'PENDING';
    case 'requires_capture': return 'AUTHORIZED';
    case 'canceled': return 'CANCELLED';
    case 'failed': return 'DECLINED';
    default: return 'SETTLED'; // succeeded, partially_refunded, refunded: refunds are transactions
  }
}

function processorStatus(t: PaymentView['transactions'][number]): (typeof PROCESSOR_STATUSES)[number] {
  if (t.status === 'pending') return 'PENDING';
  if (t.status === 'failed') return t.type === 'authorization' ? 'DECLINED' : 'FAILED';
  return t.type === 'authorization' ? 'AUTHORIZED' : t.type === 'void' ? 'CANCELLED' : 'SETTLED';
}

export function renderPrimerPayment(p: PaymentView) {
  return {
    id: p.id,
    date: p.created_at,
    dateUpdated: p.updated_at,
    status: paymentStatus(p),
    orderId: p.order_id,
    currencyCode: p.currency,
    amount: p.amount,
    customerId: p.customer_id,
    metadata: p.metadata,
    order: { lineItems: p.line_items.map((li) => ({ itemId: li.id, description: li.name, amount: li.unit_amount, quantity: li.quantity })) },
    paymentMethod: { paymentMethodToken: p.payment_method },
    processor: { name: p.connector, processorMerchantId: p.connector_account_short_id, amountCaptured: p.amount_captured, amountRefunded: p.amount_refunded },
    ...(p.status === 'failed' ? { statusReason: { type: 'ISSUER_DECLINED', code: p.failure_code ?? 'declined', message: p.failure_message ?? 'Declined' } } : {}),
    transactions: p.transactions.map((t) => ({
      id: t.id,
      date: t.created_at,
      amount: t.amount,
      currencyCode: p.currency,
      transactionType: t.type === 'refund' ? 'REFUND' : 'SALE',
      processorTransactionId: t.connector_ref,
      processorName: p.connector,
      processorMerchantId: p.connector_account_short_id,
      processorStatus: processorStatus(t),
      ...(t.refund_id ? { refundId: t.refund_id } : {}),
    })),
  };
}

export const primer: SurfaceDefinition = {
  name: 'primer',
  errors: {},
  params: { order_id: 'orderId' },
  async routes(app: FastifyInstance, services: Services) {
    const params = idParam('ID of the payment (pay_…)');
    app.post<{ Params: { id: string }; Body: Body | null | undefined }>('/payments/:id/refund', {
      config: refundRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatPrimerRefundPayment',
        summary: 'Primer: refund a payment',
        description: 'Seed 003. Refunds the full remaining amount by default, or a lesser amount; answers 200 with the payment, the refund in its transactions. Idempotent with X-Idempotency-Key.',
        params,
        body: bodySchema,
        response: { 200: paymentSchema, '4xx': errors, '5xx': errors },
      },
    }, async (req, reply) => {
      const b = req.body ?? {};
      await createRefund(services, req, defined({ payment_id: req.params.id, amount: b.amount, order_id: b.orderId, reason: b.reason }));
      return answer(reply, 200, renderPrimerPayment(await services.payments.retrieve(req.auth!, req.params.id)));
    });

    app.get<{ Params: { id: string } }>('/payments/:id', {
      config: readRouteConfig,
      schema: {
        tags: [COMPAT_TAG],
        operationId: 'compatPrimerRetrievePayment',
        summary: 'Primer: retrieve a payment',
        description: 'Seed 003. The payment with its transactions, refunds included.',
        params,
        response: { 200: paymentSchema, '4xx': errors, '5xx': errors },
      },
    }, async (req) => renderPrimerPayment(await services.payments.retrieve(req.auth!, req.params.id)));
  },
};
