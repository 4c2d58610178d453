import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalidParam } from '../../http/errors.js';
import { sendCreated } from '../../http/idempotent.js';
import { currencySchema, idParam, listQuerySchema, metadataSchema } from '../../http/schemas.js';
import { MAX_AMOUNT } from '../../lib/money.js';
import type { Services } from '../../services.js';
import { REFUNDS_FEATURE } from '../features/features.service.js';
import { MAX_REASON_LENGTH } from '../../connectors/refund-reasons.js';
import type { CreateRefundInput } from './refunds.service.js';
import { listOf, refundObject, REFUND_STATUSES, responses } from '../../http/objects.js';

const tags = ['refunds'];
const text = (min: number, max: number) => ({ type: 'string', minLength: min, maxLength: max }) as const;

const refundFields = {
  amount: { type: 'integer', minimum: 0, maximum: MAX_AMOUNT, description: 'Minor units; omitted or 0 = the whole refundable balance' },
  currency: { ...currencySchema, description: 'Optional; must equal the payment\'s currency' },
  reason: {
    ...text(1, MAX_REASON_LENGTH),
    description: 'Free text, kept on the refund as given. The well-known values customer_request, duplicate, fraudulent and other (and common spellings such as requested_by_customer or fraud) map to each PSP\'s reason codes; other text is sent to the PSP as "other", with the text where the PSP has room for it.',
  },
  description: { ...text(1, 80), description: 'Shown to the customer' },
  reference: { ...text(1, 40), description: 'Your own reconciliation reference' },
  metadata: metadataSchema,
  line_items: {
    type: 'array', minItems: 1, maxItems: 100,
    items: {
      type: 'object', required: ['id'], additionalProperties: false,
      properties: { id: text(1, 100), quantity: { type: 'integer', minimum: 1, maximum: 1_000_000 } },
    },
  },
  order_id: text(1, 200),
  connector_account: { ...text(1, 100), description: 'Must equal the payment\'s originating connector account (either id form)' },
} as const;

const pathBody = { type: ['object', 'null'], additionalProperties: false, properties: refundFields } as const;
const flatBody = {
  type: 'object', additionalProperties: false,
  properties: { ...refundFields, payment_id: text(1, 100), payment_intent_id: { ...text(1, 100), description: 'Synonym of payment_id' } },
} as const;

type FlatBody = Omit<CreateRefundInput, 'payment_id'> & { payment_id?: string; payment_intent_id?: string };

/** Whatever a refund create can answer besides the common errors. */
const createErrors = [403, 404, 409, 413, 422];

const connectorAccountHeader = {
  type: 'object',
  properties: {
    'x-connector-account': { type: 'string', description: 'Optional; must name the payment\'s originating connector account (either id form), as the body\'s `connector_account`' },
  },
} as const;

const createDescription =
  'Refunds a succeeded or partially refunded payment through the account that settled it. Answers 201 with the refund whenever one was recorded, whatever its status (pending, succeeded, failed). Idempotent with Idempotency-Key.';

export async function refundsRoutes(app: FastifyInstance, { refunds, idempotency }: Services): Promise<void> {
  // The refund claims its Idempotency-Key in its first transaction and stores the answer in its
  // last: two commits per refund instead of four (see TransactionalKey).
  const config = { feature: REFUNDS_FEATURE, keyInTransaction: true };
  const create = (req: FastifyRequest, reply: FastifyReply, input: () => CreateRefundInput) =>
    sendCreated(req, reply, idempotency, (key) => {
      const header = req.headers['x-connector-account'];
      return refunds.create(req.auth!, input(), {
        idempotencyKey: (key?.scope ?? req.idem)?.key,
        key,
        connectorAccountHeader: Array.isArray(header) ? header[0] : header,
      });
    });

  app.post<{ Params: { id: string }; Body: Omit<CreateRefundInput, 'payment_id'> | null }>('/v1/payments/:id/refunds', {
    config,
    schema: {
      tags, operationId: 'createRefund', summary: 'Refund a payment', description: createDescription,
      headers: connectorAccountHeader, params: idParam('The payment id'), body: pathBody, response: responses(201, refundObject, { errors: createErrors }),
    },
  }, async (req, reply) => create(req, reply, () => ({ ...(req.body ?? {}), payment_id: req.params.id })));

  const flat = (req: FastifyRequest<{ Body: FlatBody | undefined }>): CreateRefundInput => {
    const { payment_intent_id, ...rest } = req.body ?? {};
    if (rest.payment_id !== undefined && payment_intent_id !== undefined && rest.payment_id !== payment_intent_id) {
      throw invalidParam('payment_intent_id', 'payment_id and payment_intent_id name different payments.');
    }
    const paymentId = rest.payment_id ?? payment_intent_id;
    if (paymentId === undefined) throw invalidParam('payment_id', 'Missing required parameter: payment_id.');
    return { ...rest, payment_id: paymentId };
  };
  for (const [url, operationId] of [['/v1/refunds', 'createRefundByPaymentId'], ['/v1/payments/refund', 'createPaymentRefund']]) {
    app.post<{ Body: FlatBody | undefined }>(url, {
      config,
      schema: {
        tags, operationId, summary: 'Refund a payment (payment_id in the body)', description: createDescription,
        headers: connectorAccountHeader, body: flatBody, response: responses(201, refundObject, { errors: createErrors }),
      },
    }, async (req, reply) => create(req, reply, () => flat(req)));
  }

  const statusFilter = { type: 'string', enum: [...REFUND_STATUSES] } as const;
  app.get<{ Params: { id: string }; Querystring: { limit: number; cursor?: string; status?: string } }>('/v1/payments/:id/refunds', {
    schema: {
      tags, operationId: 'listPaymentRefunds', summary: 'List a payment\'s refunds', params: idParam('The payment id'),
      querystring: { type: 'object', additionalProperties: false, properties: { ...listQuerySchema, status: statusFilter } },
      response: responses(200, listOf(refundObject), { errors: [404] }),
    },
  }, async (req) => refunds.listForPayment(req.auth!, req.params.id, req.query));

  app.get<{ Querystring: { limit: number; cursor?: string; payment_id?: string; status?: string } }>('/v1/refunds', {
    schema: {
      tags, operationId: 'listRefunds', summary: 'List refunds',
      querystring: { type: 'object', additionalProperties: false, properties: { ...listQuerySchema, payment_id: text(1, 100), status: statusFilter } },
      response: responses(200, listOf(refundObject)),
    },
  }, async (req) => refunds.list(req.auth!, req.query));

  app.get<{ Params: { id: string } }>('/v1/refunds/:id', {
    schema: { tags, operationId: 'retrieveRefund', summary: 'Retrieve a refund', params: idParam('The refund id (re_…)'), response: responses(200, refundObject, { errors: [404] }) },
  },
    async (req) => refunds.retrieve(req.auth!, req.params.id));
}
