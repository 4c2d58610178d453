import type { FastifyInstance } from 'fastify';
import { inboundReceiptObject, responses } from '../../http/objects.js';
import type { Services } from '../../services.js';

/** `bodyLimit`: PSP webhooks carry every refund of a payment, so they get their own limit, larger
 *  than the API's (SETTLE_INBOUND_BODY_LIMIT). */
export async function inboundRoutes(app: FastifyInstance, { inbound }: Services, bodyLimit: number): Promise<void> {
  app.post<{ Params: { connector: string; account_id: string } }>('/v1/connectors/:connector/webhooks/:account_id', {
    config: { auth: 'none' },
    bodyLimit,
    schema: {
      tags: ['inbound webhooks'],
      operationId: 'receiveConnectorWebhook',
      summary: 'Receive a PSP webhook',
      description: 'Authenticated by the connector\'s own signature scheme with the account\'s webhook secret. Stored (deduplicated by the PSP event id) before the 200; processed asynchronously.',
      security: [],
      params: {
        type: 'object',
        required: ['connector', 'account_id'],
        properties: {
          connector: { type: 'string', maxLength: 40, description: 'The connector (`sandbox`, …)' },
          account_id: { type: 'string', maxLength: 100, description: 'The connector account\'s UUID' },
        },
      },
      response: {
        ...responses(200, inboundReceiptObject, { only: true, errors: [400, 404, 413, 429, 500, 503] }),
        // Adyen expects the text `[accepted]`; every other connector gets the JSON receipt
        200: {
          description: 'Stored. The JSON receipt, or for `adyen` the text `[accepted]` that Adyen expects.',
          content: {
            'application/json': { schema: inboundReceiptObject },
            'text/plain': { schema: { type: 'string', enum: ['[accepted]'], description: 'The acknowledgement Adyen expects' } },
          },
        },
      },
    },
  }, async (req, reply) => {
    const { acknowledgement, ...receipt } = await inbound.receive(req.params.connector, req.params.account_id, req.rawBody ?? '', req.headers);
    setImmediate(() => void inbound.processDue().catch((err) => req.log.warn({ err }, 'inbound processing pass failed')));
    // the answer the PSP expects once the webhook is stored (Adyen: `[accepted]`)
    if (acknowledgement) return reply.type(acknowledgement.contentType).send(acknowledgement.body);
    return receipt;
  });
}
