import type { FastifyInstance } from 'fastify';
import { createdWebhookEndpointObject, deletedWebhookEndpointObject, eventObject, eventWithDeliveriesObject, listOf, responses, webhookEndpointObject } from '../../http/objects.js';
import { idParam, listQuerySchema } from '../../http/schemas.js';
import type { Services } from '../../services.js';
import { dialectEventNames, WEBHOOK_DIALECTS } from './dialects.js';
import { EVENT_TYPES } from './events.repository.js';
import type { CreateWebhookEndpointInput, ListEventsInput } from './webhooks.service.js';

const tags = ['webhooks'];
const endpointParams = idParam('The webhook endpoint id (we_…)');
const eventParams = idParam('The event id (evt_…)');

export const createWebhookEndpointBody = {
  type: 'object',
  required: ['url', 'enabled_events'],
  additionalProperties: false,
  properties: {
    url: {
      type: 'string', minLength: 1, maxLength: 2048,
      description: 'Absolute http(s) URL. Live mode: https only, and the host must not be or resolve to a loopback, private, link-local or otherwise reserved address. Test mode: loopback and private addresses are fine for development; link-local, cloud metadata (169.254.169.254, fd00:ec2::254, metadata.google.internal, …) and unspecified addresses never. Checked again on the resolved address of every connection; redirects are not followed.',
    },
    enabled_events: {
      type: 'array', minItems: 1, maxItems: EVENT_TYPES.length + 1,
      items: { type: 'string', enum: ['*', ...EVENT_TYPES, ...dialectEventNames('elasticpay')] },
      description: '`["*"]` for every event type, or a list of event types (in the endpoint\'s dialect).',
    },
    dialect: {
      type: 'string', enum: [...WEBHOOK_DIALECTS],
      description: 'The events\' names and shapes. `settle` (default): the native events. `elasticpay`: ElasticPay\'s payment_intent.refunded, payment_intent.partially_refunded and payment_intent.refund_failed, carrying the payment intent (docs/compat.md).',
    },
    description: { type: ['string', 'null'], maxLength: 1000 },
  },
} as const;

export async function webhooksRoutes(app: FastifyInstance, { webhooks }: Services): Promise<void> {
  app.post<{ Body: CreateWebhookEndpointInput }>('/v1/webhook_endpoints', {
    config: { showsSecret: true },
    schema: {
      tags, operationId: 'createWebhookEndpoint', summary: 'Create a webhook endpoint',
      description: 'A merchant has at most `SETTLE_WEBHOOK_ENDPOINTS_MAX` (default 16) endpoints per mode; the next create is 400 `webhook_endpoints_limit_reached`. Events of this merchant and mode whose type is enabled are POSTed to `url`, signed with `Settle-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` and per the Standard Webhooks specification (see the webhooks section). The signing `secret` (whsec_…) is returned only in this response.',
      body: createWebhookEndpointBody,
      response: responses(201, createdWebhookEndpointObject, { errors: [409, 413, 422] }),
    },
  }, async (req, reply) => reply.code(201).send(await webhooks.createEndpoint(req.auth!, req.body)));

  app.get<{ Querystring: { limit: number; cursor?: string } }>('/v1/webhook_endpoints', {
    schema: {
      tags, operationId: 'listWebhookEndpoints', summary: 'List webhook endpoints, newest first',
      querystring: { type: 'object', additionalProperties: false, properties: listQuerySchema },
      response: responses(200, listOf(webhookEndpointObject)),
    },
  }, async (req) => webhooks.listEndpoints(req.auth!, req.query));

  app.get<{ Params: { id: string } }>('/v1/webhook_endpoints/:id', {
    schema: {
      tags, operationId: 'retrieveWebhookEndpoint', summary: 'Retrieve a webhook endpoint', description: 'The signing secret is never shown again.', params: endpointParams,
      response: responses(200, webhookEndpointObject, { errors: [404] }),
    },
  }, async (req) => webhooks.retrieveEndpoint(req.auth!, req.params.id));

  app.delete<{ Params: { id: string } }>('/v1/webhook_endpoints/:id', {
    schema: {
      tags, operationId: 'deleteWebhookEndpoint', summary: 'Delete a webhook endpoint',
      description: 'Nothing more is sent to it: deliveries still pending are ended as failed. Its delivery history stays visible on the events.',
      params: endpointParams,
      response: responses(200, deletedWebhookEndpointObject, { errors: [404] }),
    },
  }, async (req) => webhooks.deleteEndpoint(req.auth!, req.params.id));

  app.get<{ Querystring: ListEventsInput & { limit: number } }>('/v1/events', {
    schema: {
      tags, operationId: 'listEvents', summary: 'List events, newest first',
      description: 'Each event is exactly the JSON that is delivered to webhook endpoints.',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          ...listQuerySchema,
          type: { type: 'string', enum: [...EVENT_TYPES] },
          object_id: { type: 'string', minLength: 1, maxLength: 100, description: 'Only events about this object: the id of the payment or refund in data.object' },
          delivery_status: { type: 'string', enum: ['pending', 'succeeded', 'failed'], description: 'Only events with at least one webhook delivery in this status' },
        },
      },
      response: responses(200, listOf(eventObject)),
    },
  }, async (req) => webhooks.listEvents(req.auth!, req.query));

  app.get<{ Params: { id: string } }>('/v1/events/:id', {
    schema: {
      tags, operationId: 'retrieveEvent', summary: 'Retrieve an event with its delivery attempts',
      description: 'The event plus `delivery_attempts` (every POST made, oldest first) and `deliveries` (one per endpoint: status, attempts, next_attempt_at).',
      params: eventParams,
      response: responses(200, eventWithDeliveriesObject, { errors: [404] }),
    },
  }, async (req) => webhooks.retrieveEvent(req.auth!, req.params.id));

  app.post<{ Params: { id: string } }>('/v1/events/:id/redeliver', {
    schema: {
      tags, operationId: 'redeliverEvent', summary: 'Deliver an event again',
      description: 'Sends the event again, now, to every enabled endpoint of this merchant and mode that subscribes to its type (including endpoints created after the event), with a fresh retry schedule. Answers with the event as retrieved.',
      params: eventParams,
      // no parameters; an empty body or none is accepted, unknown fields are refused
      body: { type: ['object', 'null'], additionalProperties: false, properties: {} },
      response: responses(200, eventWithDeliveriesObject, { errors: [404, 409, 413, 422] }),
    },
  }, async (req) => webhooks.redeliver(req.auth!, req.params.id));
}
