import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdempotencyService, StoredResponse, TransactionalKey } from '../modules/idempotency/idempotency.service.js';

const JSON_TYPE = 'application/json; charset=utf-8';

/** Sends a stored response again, marked as a replay. */
export function sendReplay(reply: FastifyReply, response: StoredResponse): FastifyReply {
  for (const [h, v] of Object.entries(response.headers)) reply.header(h, v);
  reply.header('Idempotent-Replayed', 'true');
  return reply.code(response.status).type(JSON_TYPE).send(response.body);
}

/**
 * Answers a create (201) on a route whose service claims the Idempotency-Key inside its own
 * transactions (`keyInTransaction`, see `TransactionalKey`). `run` gets the key to claim, or
 * none when the key is already claimed on its own (or there is no key).
 *
 * When `run` fails before its claim committed, nothing of it was written, and the key may be
 * another request's: the key is then settled as on any route — a stored response is replayed,
 * a key in flight or reused answers 409 or 422 — and, when it is free, `run` goes again under
 * the key claimed on its own, giving the same answer it gave without a key to claim.
 */
export async function sendCreated<T>(req: FastifyRequest, reply: FastifyReply, idempotency: IdempotencyService,
  run: (key: TransactionalKey | undefined) => Promise<T>): Promise<FastifyReply> {
  const key = req.txKey;
  if (!key) return reply.code(201).send(await run(undefined));
  key.render = (result) => ({ status: 201, body: reply.serializeInput(result as Record<string, unknown>, '201') as string, headers: {} });
  let result: T;
  try {
    result = await run(key);
  } catch (err) {
    if (key.state !== 'unclaimed') {
      req.idem = key.scope; // stored or released when the error is sent
      throw err;
    }
    const begun = await idempotency.begin(key.scope, key.method, key.path, key.hash);
    if (begun.kind === 'replay') return sendReplay(reply, begun.response);
    req.idem = begun.scope;
    return reply.code(201).send(await run(undefined));
  }
  if (key.state === 'stored') return reply.code(201).type(JSON_TYPE).send(key.response!.body);
  // claimed but not answered with the outcome (left pending, or finished by another path first)
  req.idem = key.scope;
  return reply.code(201).send(result);
}
