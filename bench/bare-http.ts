/**
 * F_http, the HTTP floor: a bare Fastify app with one POST route that answers a small JSON
 * object — what the gateway would cost if a refund were free. Same framework, same JSON body
 * parsing, same 201, no hooks, no logging, no database.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post<{ Params: { id: string } }>('/v1/payments/:id/refunds', async (req, reply) =>
  reply.code(201).send({ id: 're_bare', object: 'refund', payment_id: req.params.id, amount: 10_000, currency: 'USD', status: 'succeeded' }),
);
const address = await app.listen({ port: 0, host: '127.0.0.1' });
console.log(`bare listening on ${address}`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
