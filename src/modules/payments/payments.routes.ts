import type { FastifyInstance } from 'fastify';
import { amountSchema, currencySchema, idParam, listQuerySchema, metadataSchema } from '../../http/schemas.js';
import { AppError } from '../../http/errors.js';
import type { Services } from '../../services.js';
import type { CreatePaymentInput, PaymentListQuery } from './payments.service.js';
import { listOf, paymentObject, PAYMENT_STATUSES, responses } from '../../http/objects.js';

const tags = ['payments'];
const params = idParam('The payment id (pay_…)');
const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max }) as const;

export const createPaymentBody = {
  type: 'object',
  required: ['amount', 'currency', 'payment_method'],
  additionalProperties: false,
  properties: {
    amount: amountSchema,
    currency: currencySchema,
    payment_method: { ...text(100), description: 'Sandbox test tokens: pm_card_visa, pm_card_mastercard, pm_card_declined, pm_card_declined_insufficient_funds, pm_card_declined_expired_card, pm_card_declined_fraudulent, pm_card_refund_fails, pm_card_refund_pending, pm_card_refund_reverses' },
    capture_method: { type: 'string', enum: ['automatic', 'manual'], default: 'automatic' },
    connector_account: { ...text(100), description: 'Connector account UUID or ca_ short id; default: the merchant\'s default account' },
    order_id: text(200),
    customer_id: text(200),
    description: { type: 'string', maxLength: 1000 },
    metadata: metadataSchema,
    line_items: {
      type: 'array', minItems: 1, maxItems: 100,
      items: {
        type: 'object', required: ['name', 'quantity', 'unit_amount'], additionalProperties: false,
        properties: {
          id: text(100),
          name: text(500),
          quantity: { type: 'integer', minimum: 1, maximum: 1_000_000 },
          unit_amount: amountSchema,
        },
      },
    },
  },
} as const;

export async function paymentsRoutes(app: FastifyInstance, { payments, idempotency }: Services): Promise<void> {
  app.post<{ Body: CreatePaymentInput }>('/v1/payments', {
    schema: {
      tags, operationId: 'createPayment', summary: 'Create a payment',
      description: 'Authorizes (and, with capture_method automatic, captures) through the named or default connector account. A decline answers 402 card_declined with the stored failed payment\'s id in error.payment_id.',
      body: createPaymentBody,
      response: responses(201, paymentObject, { errors: [402, 404, 409, 413, 422, 502] }),
    },
  }, async (req, reply) => {
    const key = (req.headers['idempotency-key'] ?? req.headers['x-idempotency-key']) as string | undefined;
    try {
      return reply.code(201).send(await payments.create(req.auth!, req.body, req.idem ? key : undefined));
    } catch (err) {
      // A retry that asks for another payment than its key's is refused without taking the key:
      // the retry of the original request must still resume (and be answered with) its payment.
      if (err instanceof AppError && err.code === 'idempotency_key_reused' && req.idem) {
        const scope = req.idem;
        req.idem = undefined;
        await idempotency.release(scope);
      }
      throw err;
    }
  });

  app.get<{ Querystring: PaymentListQuery }>('/v1/payments', {
    schema: {
      tags, operationId: 'listPayments', summary: 'List payments, newest first',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          ...listQuerySchema,
          status: { type: 'string', enum: [...PAYMENT_STATUSES] },
          order_id: text(200),
          customer_id: text(200),
          currency: currencySchema,
          'created[gte]': { type: 'string', format: 'date-time', description: 'Created at or after (RFC 3339)' },
          'created[lte]': { type: 'string', format: 'date-time', description: 'Created at or before (RFC 3339)' },
          'amount[gte]': { ...amountSchema, description: 'Amount at least (minor units)' },
          'amount[lte]': { ...amountSchema, description: 'Amount at most (minor units)' },
        },
      },
      response: responses(200, listOf(paymentObject)),
    },
  }, async (req) => payments.list(req.auth!, req.query));

  app.get<{ Params: { id: string } }>('/v1/payments/:id', { schema: { tags, operationId: 'retrievePayment', summary: 'Retrieve a payment', params, response: responses(200, paymentObject, { errors: [404] }) } },
    async (req) => payments.retrieve(req.auth!, req.params.id));

  app.post<{ Params: { id: string }; Body: { amount?: number } | undefined }>('/v1/payments/:id/capture', {
    schema: {
      tags, operationId: 'capturePayment', summary: 'Capture an authorized payment, fully or partially (the rest is released)', params,
      body: { type: ['object', 'null'], additionalProperties: false, properties: { amount: amountSchema } },
      response: responses(200, paymentObject, { errors: [404, 409, 413, 422, 502] }),
    },
  }, async (req) => payments.capture(req.auth!, req.params.id, req.body?.amount));

  app.post<{ Params: { id: string } }>('/v1/payments/:id/cancel', {
    schema: {
      tags, operationId: 'cancelPayment', summary: 'Cancel an authorized payment', params,
      body: { type: ['object', 'null'], additionalProperties: false, properties: {} },
      response: responses(200, paymentObject, { errors: [404, 409, 413, 422, 502] }),
    },
  }, async (req) => payments.cancel(req.auth!, req.params.id));
}
