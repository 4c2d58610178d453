import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { errorSchemas } from '../../http/objects.js';
import { invalidParam } from '../../http/errors.js';
import type { Services } from '../../services.js';
import { EVENT_TYPES } from '../webhooks/events.repository.js';
import { RECONNECT_MS } from './event-stream.service.js';

const STREAM_DESCRIPTION = `The merchant's events of the key's mode as they happen, as server-sent events (\`text/event-stream\`): what \`settle listen\` forwards to a local server.

Each event is one message: \`id: <evt_…>\`, \`event: <type>\`, \`data: <the event JSON, exactly as delivered to webhook endpoints>\`. Lines starting with \`:\` are comments (a keep-alive every 15 s by default). Events come in the order they were committed, from every gateway process.

**Resuming.** Send the last id received as the \`Last-Event-ID\` header (an EventSource does it by itself): the stream continues right after that event, with nothing lost and nothing repeated. Without it, the stream starts now.

**Mode.** A test key streams test-mode events. A live key must say \`live=true\`, so that no development tool follows live events by accident.

The stream ends when the gateway shuts down; reconnect (with \`Last-Event-ID\`) to another process.`;

const SSE_EXAMPLE = 'retry: 1000\n\nid: evt_0mh3k2f9a00001aB3dE5gH7j\nevent: payment.succeeded\ndata: {"id":"evt_0mh3k2f9a00001aB3dE5gH7j","object":"event","type":"payment.succeeded","created_at":"2026-01-31T12:00:00.000Z","test_mode":true,"data":{"object":{"id":"pay_…","object":"payment"}}}\n\n';

export async function eventStreamRoutes(app: FastifyInstance, { eventStream }: Services): Promise<void> {
  // Connections that have not sent a request yet. Node's server.close() waits for them until its
  // headers timeout (60 s): an HTTP client that opened one ahead of need (EventSource and fetch
  // clients reconnecting do) would hold the shutdown that long. Closing them loses no request.
  const unused = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  app.server.on('request', (req: IncomingMessage) => unused.delete(req.socket));

  // open streams end first on shutdown, so that they never hold the server open
  app.addHook('preClose', async () => {
    const ended = eventStream.closeAll();
    if (ended > 0) app.log.info({ streams: ended }, 'shutting down: ended the open event streams');
    for (const socket of unused) socket.destroy();
  });

  app.get<{ Querystring: { types?: string; live?: boolean }; Headers: { 'last-event-id'?: string } }>('/v1/events/stream', {
    schema: {
      tags: ['webhooks'], operationId: 'streamEvents', summary: 'Stream events as they happen (server-sent events)',
      description: STREAM_DESCRIPTION,
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          types: { type: 'string', minLength: 1, maxLength: 1000, description: `Only these event types, comma-separated (e.g. \`refund.succeeded,refund.failed\`): ${EVENT_TYPES.map((t) => `\`${t}\``).join(', ')}` },
          live: { type: 'boolean', description: 'Required (`true`) with a live key: stream live-mode events' },
        },
      },
      headers: {
        type: 'object',
        properties: { 'last-event-id': { type: 'string', description: 'Resume right after this event (`evt_…`), as an EventSource sends it on reconnecting' } },
      },
      response: {
        200: {
          description: `A stream of server-sent events; \`retry: ${RECONNECT_MS}\` first.`,
          content: { 'text/event-stream': { schema: { type: 'string', description: 'Server-sent events; each `data` line holds one Event.', example: SSE_EXAMPLE, contentMediaType: 'text/event-stream' } } },
        },
        ...Object.fromEntries([400, 401, 403, 404, 429, 500, 503].map((s) => [s, errorSchemas.get(s)!])),
      },
    },
  }, async (req, reply) => {
    const auth = req.auth!;
    if (!auth.testMode && req.query.live !== true) {
      throw invalidParam('live', 'A live key streams live-mode events only with live=true.');
    }
    let types: Set<string> | undefined;
    if (req.query.types !== undefined) {
      types = new Set(req.query.types.split(',').map((t) => t.trim()));
      const unknown = [...types].find((t) => !(EVENT_TYPES as readonly string[]).includes(t));
      if (unknown !== undefined) throw invalidParam('types', `Invalid types: ${JSON.stringify(unknown)} is not an event type; use ${EVENT_TYPES.join(', ')}.`);
    }
    const lastEventId = req.headers['last-event-id'];
    const from = await eventStream.startPosition(auth.merchantId, auth.testMode, lastEventId === undefined || lastEventId === '' ? undefined : lastEventId);
    const out = new PassThrough();
    // At shutdown the stream ends, then its connection closes: a client that stopped reading without
    // closing it (an aborted fetch can leave the socket open) must not hold the server open.
    const closeConnection = () => {
      const socket = req.raw.socket as Socket | undefined;
      const destroy = () => {
        if (typeof socket?.destroy === 'function') socket.destroy();
      };
      if (reply.raw.writableFinished) return destroy();
      reply.raw.once('finish', destroy);
      setTimeout(destroy, 1000).unref();
    };
    eventStream.open({ merchantId: auth.merchantId, testMode: auth.testMode, types, from, out, closeConnection, log: req.log });
    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      .header('x-accel-buffering', 'no')
      // a stream's connection is never reused: once the stream ends (shutdown included) it closes,
      // instead of idling in keep-alive and holding a closing server open
      .header('connection', 'close')
      .send(out);
  });
}
