import type { FastifyInstance } from 'fastify';
import { AppError } from '../../http/errors.js';
import type { Services } from '../../services.js';
import { REFUNDS_FEATURE } from '../features/features.service.js';
import { renderMerchant } from './merchants.service.js';
import { apiKeyObject, createdMerchantObject, featureObject, listOf, merchantSummaryObject, responses, revokedApiKeyObject } from '../../http/objects.js';
import { listQuerySchema } from '../../http/schemas.js';

const admin = { auth: 'admin' as const };
const adminShowsSecret = { ...admin, showsSecret: true };
const tags = ['admin'];
const security = [{ adminKey: [] }];

export async function adminRoutes(app: FastifyInstance, { merchants, features }: Services): Promise<void> {
  app.post<{ Body: { name: string } }>('/v1/admin/merchants', {
    config: adminShowsSecret,
    schema: {
      tags, security, operationId: 'createMerchant', summary: 'Create a merchant with a test and a live secret key (shown once)',
      response: responses(201, createdMerchantObject, { admin: true, errors: [409, 413, 422] }),
      body: {
        type: 'object', required: ['name'], additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
      },
    },
  }, async (req, reply) => {
    const { merchant, keys } = await merchants.create(req.body.name);
    return reply.code(201).send(renderMerchant(merchant, keys));
  });

  app.get<{ Querystring: { limit: number; cursor?: string } }>('/v1/admin/merchants', {
    config: admin,
    schema: {
      tags, security, operationId: 'listMerchants', summary: 'List merchants, newest first, with the refund kill switch as it applies to each',
      querystring: { type: 'object', additionalProperties: false, properties: listQuerySchema },
      response: responses(200, listOf(merchantSummaryObject), { admin: true }),
    },
  }, async (req) => {
    const page = await merchants.list(req.query);
    const flags = await features.get(REFUNDS_FEATURE);
    // the merchant's own switch, and whether refunds are on for it once the platform switch applies
    return {
      ...page,
      data: page.data.map((m) => ({ ...m, refunds_enabled: flags.merchants[m.id] !== false, refunds_effective: flags.platform && flags.merchants[m.id] !== false })),
    };
  });

  app.post<{ Params: { id: string }; Body: { mode: 'test' | 'live' } }>('/v1/admin/merchants/:id/api_keys', {
    config: adminShowsSecret,
    schema: {
      tags, security, operationId: 'createApiKey', summary: 'Create another secret key for a merchant (shown once)',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 100, description: 'The merchant id (mer_…)' } } },
      response: responses(201, apiKeyObject, { admin: true, errors: [404, 409, 413, 422] }),
      body: {
        type: 'object', required: ['mode'], additionalProperties: false,
        properties: { mode: { type: 'string', enum: ['test', 'live'] } },
      },
    },
  }, async (req, reply) => {
    const key = await merchants.createKey(req.params.id, req.body.mode);
    return reply.code(201).send({
      object: 'api_key', merchant_id: req.params.id, mode: req.body.mode, key_prefix: key.prefix, secret: key.secret,
    });
  });

  app.delete<{ Params: { prefix: string } }>('/v1/admin/api_keys/:prefix', {
    config: admin,
    schema: {
      tags, security, operationId: 'revokeApiKey', summary: 'Revoke a secret key by its prefix (sk_test_XXXXXXXX)',
      params: { type: 'object', required: ['prefix'], properties: { prefix: { type: 'string', maxLength: 100, description: 'The key\'s prefix, e.g. sk_test_XXXXXXXX' } } },
      response: responses(200, revokedApiKeyObject, { admin: true, errors: [404] }),
    },
  }, async (req) => {
    const row = await merchants.revokeKey(req.params.prefix);
    return { object: 'api_key', key_prefix: row.prefix, merchant_id: row.merchant_id, mode: row.test_mode ? 'test' : 'live', revoked: true, revoked_at: row.revoked_at.toISOString() };
  });

  app.put<{ Body: { enabled: boolean; merchant_id?: string } }>('/v1/admin/features/refunds', {
    config: admin,
    schema: {
      tags, security, operationId: 'setRefundsFeature', summary: 'Turn refunds on or off, platform-wide or for one merchant (every process within 1 s)',
      response: responses(200, featureObject, { admin: true, errors: [404, 413] }),
      body: {
        type: 'object', required: ['enabled'], additionalProperties: false,
        properties: { enabled: { type: 'boolean' }, merchant_id: { type: 'string', minLength: 1, maxLength: 100 } },
      },
    },
  }, async (req) => {
    if (req.body.merchant_id !== undefined && !(await merchants.find(req.body.merchant_id))) {
      throw new AppError('merchant_not_found', `No such merchant: ${req.body.merchant_id}.`, { param: 'merchant_id' });
    }
    await features.set(REFUNDS_FEATURE, req.body.enabled, req.body.merchant_id);
    return { object: 'feature', name: REFUNDS_FEATURE, ...(await features.get(REFUNDS_FEATURE)) };
  });

  app.get('/v1/admin/features/refunds', {
    config: admin,
    schema: { tags, security, operationId: 'retrieveRefundsFeature', summary: 'Show the refund kill switch', response: responses(200, featureObject, { admin: true }) },
  }, async () => ({ object: 'feature', name: REFUNDS_FEATURE, ...(await features.get(REFUNDS_FEATURE)) }));
}
