import type { FastifyInstance } from 'fastify';
import { listQuerySchema } from '../../http/schemas.js';
import { listOf, reconciliationDifferenceObject, responses } from '../../http/objects.js';
import type { Services } from '../../services.js';

const tags = ['reconciliation'];
const status = { type: 'string', enum: ['open', 'fixed', 'resolved'] } as const;
const id = { type: 'string', minLength: 1, maxLength: 100 } as const;

export async function reconciliationRoutes(app: FastifyInstance, { reconciliation }: Services): Promise<void> {
  app.get<{ Querystring: { limit: number; cursor?: string; status?: string; payment_id?: string } }>('/v1/reconciliation/differences', {
    schema: {
      tags, operationId: 'listReconciliationDifferences', summary: 'Differences between the gateway and the PSP found by reconciliation, newest first',
      querystring: { type: 'object', additionalProperties: false, properties: { ...listQuerySchema, status, payment_id: id } },
      response: responses(200, listOf(reconciliationDifferenceObject)),
    },
  }, async (req) => reconciliation.list(req.auth!, req.query));

  app.get<{ Querystring: { limit: number; cursor?: string; status?: string; merchant_id?: string } }>('/v1/admin/reconciliation/differences', {
    config: { auth: 'admin' as const },
    schema: {
      tags, security: [{ adminKey: [] }], operationId: 'listAllReconciliationDifferences', summary: 'Differences with the PSPs across merchants and modes, newest first',
      querystring: { type: 'object', additionalProperties: false, properties: { ...listQuerySchema, status, merchant_id: id } },
      response: responses(200, listOf(reconciliationDifferenceObject), { admin: true }),
    },
  }, async (req) => reconciliation.listAll(req.query));
}
