/** How the sim's HTTP handlers answer: one reply value, sent as is or lost to a fault. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SimOp } from './faults.js';

export interface SimReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Runs one PSP operation under the fault configuration: latency, then maybe never answer, answer
 *  500 without applying, or apply and drop the response. */
export type Faulted = (op: SimOp, request: FastifyRequest, reply: FastifyReply, apply: () => SimReply, injectedError?: SimReply) => Promise<unknown>;

/** The sandbox wire's answer to an injected `error` fault. */
export const INJECTED_ERROR: SimReply = {
  status: 500,
  body: { error: { code: 'sim_injected_error', message: 'Injected failure; the operation was not applied.' } },
};

/** Sandbox wire: HTTP status for each definite refusal; anything unlisted is a 400. */
const STATUS_BY_CODE: Record<string, number> = {
  card_declined: 402,
  invalid_payment_method: 402,
  invalid_api_key: 401,
  payment_not_found: 404,
  refund_not_found: 404,
  route_not_found: 404,
  payment_already_captured: 409,
  payment_canceled: 409,
  payment_declined: 409,
  payment_not_refundable: 409,
  refund_failed: 409,
  payment_not_captured: 409,
  payment_has_refunds: 409,
};

/** A sandbox-wire error: `{"error": {"code", "message", …extra}}` with the code's status. */
export const errorReply = (code: string, message: string, extra: Record<string, unknown> = {}): SimReply => ({
  status: STATUS_BY_CODE[code] ?? 400,
  body: { error: { code, message, ...extra } },
});

export function send(reply: FastifyReply, r: SimReply): FastifyReply {
  if (r.headers) void reply.headers(r.headers);
  return reply.code(r.status).send(r.body);
}
