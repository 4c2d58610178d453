import type { FastifyInstance } from 'fastify';
import { apiKeyListingObject, createdRestrictedKeyObject, listOf, responses } from '../../http/objects.js';
import { listQuerySchema } from '../../http/schemas.js';
import { PERMISSIONS } from '../../http/permissions.js';
import type { Services } from '../../services.js';
import type { CreateRestrictedKeyInput } from './api-keys.service.js';

const tags = ['api keys'];
const prefixParams = {
  type: 'object', required: ['prefix'],
  properties: { prefix: { type: 'string', minLength: 1, maxLength: 100, description: 'The key prefix (rk_test_XXXXXXXX, sk_test_XXXXXXXX)' } },
} as const;

export async function apiKeysRoutes(app: FastifyInstance, { apiKeys }: Services): Promise<void> {
  app.post<{ Body: CreateRestrictedKeyInput }>('/v1/api_keys', {
    config: { showsSecret: true },
    schema: {
      tags, operationId: 'createRestrictedKey', summary: 'Create a restricted key (rk_…) with chosen permissions; its secret is shown once',
      description: 'The key has the mode of the key that creates it. `write` includes `read` of the same resource. A restricted key can grant only permissions it holds itself. See docs/dashboard.md for the permission of every route.',
      body: {
        type: 'object', required: ['name', 'permissions'], additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 100 },
          permissions: { type: 'array', minItems: 1, maxItems: PERMISSIONS.length, items: { type: 'string', enum: [...PERMISSIONS] } },
        },
      },
      response: responses(201, createdRestrictedKeyObject, { errors: [409, 413, 422] }),
    },
  }, async (req, reply) => reply.code(201).send(await apiKeys.create(req.auth!, req.body)));

  app.get<{ Querystring: { limit: number; cursor?: string } }>('/v1/api_keys', {
    schema: {
      tags, operationId: 'listApiKeys', summary: 'List the API keys of this mode (secret and restricted), newest first; never their secrets',
      querystring: { type: 'object', additionalProperties: false, properties: listQuerySchema },
      response: responses(200, listOf(apiKeyListingObject)),
    },
  }, async (req) => apiKeys.list(req.auth!, req.query));

  app.delete<{ Params: { prefix: string } }>('/v1/api_keys/:prefix', {
    schema: {
      tags, operationId: 'revokeMerchantApiKey', summary: 'Revoke an API key of this mode by its prefix (effective on every process within 1 s)', params: prefixParams,
      response: responses(200, apiKeyListingObject, { errors: [404] }),
    },
  }, async (req) => apiKeys.revoke(req.auth!, req.params.prefix));
}
