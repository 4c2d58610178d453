import type { FastifyInstance } from 'fastify';
import { listQuerySchema } from '../../http/schemas.js';
import type { Services } from '../../services.js';
import { ledgerAccountObject, ledgerTransactionObject, listOf, responses } from '../../http/objects.js';

const tags = ['ledger'];

export async function ledgerRoutes(app: FastifyInstance, { ledger }: Services): Promise<void> {
  app.get('/v1/ledger/accounts', { schema: { tags, operationId: 'listLedgerAccounts', summary: 'Ledger account balances per currency', response: responses(200, listOf(ledgerAccountObject)) } }, async (req) => ledger.accounts(req.auth!));
  app.get<{ Querystring: { limit: number; cursor?: string; payment_id?: string } }>('/v1/ledger/transactions', {
    schema: {
      tags, operationId: 'listLedgerTransactions', summary: 'Ledger transactions with their entries, newest first',
      querystring: { type: 'object', additionalProperties: false, properties: { ...listQuerySchema, payment_id: { type: 'string', minLength: 1, maxLength: 100 } } },
      response: responses(200, listOf(ledgerTransactionObject)),
    },
  }, async (req) => ledger.transactions(req.auth!, req.query));
}
