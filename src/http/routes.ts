import type { FastifyInstance } from 'fastify';
import { apiKeysRoutes } from '../modules/api-keys/api-keys.routes.js';
import { consoleRoutes } from '../modules/console/console.routes.js';
import { connectorAccountsRoutes } from '../modules/connector-accounts/connector-accounts.routes.js';
import { inboundRoutes } from '../modules/inbound/inbound.routes.js';
import { ledgerRoutes } from '../modules/ledger/ledger.routes.js';
import { adminRoutes } from '../modules/merchants/admin.routes.js';
import { paymentsRoutes } from '../modules/payments/payments.routes.js';
import { reconciliationRoutes } from '../modules/reconciliation/reconciliation.routes.js';
import { refundsRoutes } from '../modules/refunds/refunds.routes.js';
import { webhooksRoutes } from '../modules/webhooks/webhooks.routes.js';
import { eventStreamRoutes } from '../modules/events/event-stream.routes.js';
import type { Services } from '../services.js';
import { compatRoutes } from './compat/surfaces.js';

export async function registerRoutes(app: FastifyInstance, services: Services, limits: { inboundBodyLimit: number }): Promise<void> {
  // Response schemas document the objects in the OpenAPI document; serialization stays plain
  // JSON.stringify so a schema can never silently drop a field of a response.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  for (const routes of [adminRoutes, apiKeysRoutes, consoleRoutes, connectorAccountsRoutes, paymentsRoutes, refundsRoutes, ledgerRoutes, reconciliationRoutes, webhooksRoutes, eventStreamRoutes, compatRoutes]) {
    await routes(app, services);
  }
  await inboundRoutes(app, services, limits.inboundBodyLimit);
}
