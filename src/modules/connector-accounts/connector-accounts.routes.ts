import type { FastifyInstance } from 'fastify';
import { idParam, listQuerySchema } from '../../http/schemas.js';
import type { Services } from '../../services.js';
import { renderConnectorAccount, type CreateConnectorAccountInput } from './connector-accounts.service.js';
import { connectorAccountObject, createdConnectorAccountObject, deletedConnectorAccountObject, listOf, responses } from '../../http/objects.js';

const tags = ['connector accounts'];
const params = idParam('The account UUID or its ca_ short id');

export async function connectorAccountsRoutes(app: FastifyInstance, { connectorAccounts }: Services): Promise<void> {
  app.post<{ Body: CreateConnectorAccountInput }>('/v1/connector_accounts', {
    config: { showsSecret: true },
    schema: {
      tags, operationId: 'createConnectorAccount', summary: 'Create a connector account (a merchant\'s credentials at one PSP)',
      description: 'The first account of a merchant and mode becomes the default. `credentials` are write-only and encrypted at rest. `webhook_secret` (the secret the PSP signs its webhooks with) is returned once.',
      body: {
        type: 'object', required: ['connector'], additionalProperties: false,
        properties: {
          connector: { type: 'string', minLength: 1, maxLength: 40 },
          name: { type: 'string', minLength: 1, maxLength: 200 },
          credentials: { type: 'object', maxProperties: 20, additionalProperties: { type: 'string', maxLength: 4096 } },
          settings: { type: 'object', maxProperties: 20 },
          default: { type: 'boolean' },
        },
      },
      response: responses(201, createdConnectorAccountObject, { errors: [409, 413, 422] }),
    },
  }, async (req, reply) => reply.code(201).send(await connectorAccounts.create(req.auth!, req.body)));

  app.get<{ Querystring: { limit: number; cursor?: string } }>('/v1/connector_accounts', {
    schema: {
      tags, operationId: 'listConnectorAccounts', summary: 'List connector accounts',
      querystring: { type: 'object', additionalProperties: false, properties: listQuerySchema }, response: responses(200, listOf(connectorAccountObject)),
    },
  }, async (req) => connectorAccounts.list(req.auth!, req.query.limit, req.query.cursor));

  app.get<{ Params: { id: string } }>('/v1/connector_accounts/:id', {
    schema: { tags, operationId: 'retrieveConnectorAccount', summary: 'Retrieve a connector account', params, response: responses(200, connectorAccountObject, { errors: [404] }) },
  },
    async (req) => renderConnectorAccount(await connectorAccounts.retrieve(req.auth!, req.params.id)));

  app.post<{ Params: { id: string } }>('/v1/connector_accounts/:id/make_default', {
    schema: {
      tags, operationId: 'makeDefaultConnectorAccount', summary: 'Make this account the default for new payments', params,
      response: responses(200, connectorAccountObject, { errors: [400, 404, 409, 413, 422] }),
      // no parameters; an empty body or none is accepted, unknown fields are refused (contract section 1)
      body: { type: ['object', 'null'], additionalProperties: false, properties: {} },
    },
  }, async (req) => connectorAccounts.makeDefault(req.auth!, req.params.id));

  app.delete<{ Params: { id: string }; Querystring: { hard?: boolean } }>('/v1/connector_accounts/:id', {
    schema: {
      tags, operationId: 'deleteConnectorAccount', summary: 'Delete a connector account',
      description: 'Soft delete by default (status inactive; nothing new routes through it). `?hard=true` removes the row and its credentials; payments that settled through it keep its ids. A hard delete is refused (409 connector_account_in_use) while the account has pending refunds or uncaptured payments.',
      params,
      querystring: { type: 'object', additionalProperties: false, properties: { hard: { type: 'boolean', default: false } } },
      response: responses(200, { oneOf: [connectorAccountObject, deletedConnectorAccountObject] }, { errors: [404, 409] }),
    },
  }, async (req) => connectorAccounts.remove(req.auth!, req.params.id, req.query.hard === true));
}
