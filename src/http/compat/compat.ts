/**
 * Compatibility surfaces: other gateways' refund APIs, wire-exact to their documents, served
 * under `/compat/<name>/` so that a client of one of them switches by changing only its base URL
 * (docs/compat.md). A surface is a translation at the edge: its routes turn the seed's request
 * into the native service call (the same refund service, so the same idempotency, locking,
 * ledger, PSP routing, kill switch and events) and the native answer into the seed's response.
 * Errors are the native ones, renamed by one table per surface; no rule is written twice.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { REFUNDS_FEATURE } from '../../modules/features/features.service.js';
import type { CreateRefundInput, RefundView } from '../../modules/refunds/refunds.service.js';
import type { Services } from '../../services.js';
import { asAppError, errorBody, type ErrorCode } from '../errors.js';

export const COMPAT_TAG = 'compatibility';

/** How a surface names a native error: its own code and HTTP status. */
export interface SeedError {
  status: number;
  code: string;
}

export interface SurfaceDefinition {
  /** The path segment: the surface is served under `/compat/<name>`. */
  name: string;
  /** The seed's code and status for each native error it names; any other stays native. */
  errors: Partial<Record<ErrorCode, SeedError>>;
  /** The seed's name for a native parameter named in an error's `param` (`payment_id` → `paymentId`). */
  params?: Record<string, string>;
  routes: (scope: FastifyInstance, services: Services) => Promise<void>;
}

/** Route options every refund-creating surface route shares with the native refund routes. */
export const refundRouteConfig = { auth: 'merchant', feature: REFUNDS_FEATURE } as const;
/** Route options of a surface's read routes. */
export const readRouteConfig = { auth: 'merchant' } as const;

/**
 * Registers a surface under its prefix, with an error handler that answers in the native
 * envelope with the surface's codes, statuses and parameter names. Errors raised before the
 * route (authentication, the kill switch, validation, a reused Idempotency-Key) go through it too,
 * and the idempotency layer stores and replays what it sends, as on the native routes.
 */
export async function registerSurface(app: FastifyInstance, services: Services, surface: SurfaceDefinition): Promise<void> {
  await app.register(async (scope) => {
    scope.setErrorHandler((raw: Error & { statusCode?: number; code?: string }, req, reply) => {
      const err = asAppError(raw, req);
      const seed = surface.errors[err.code];
      const body = errorBody(err, req.id);
      if (seed) body.error.code = seed.code as ErrorCode;
      if (body.error.param !== undefined) body.error.param = renameParam(body.error.param, surface.params ?? {});
      if (err.headers) for (const [h, v] of Object.entries(err.headers)) reply.header(h, v);
      return reply.code(seed?.status ?? err.status).type('application/json; charset=utf-8').send(body);
    });
    await surface.routes(scope, services);
  }, { prefix: `/compat/${surface.name}` });
}

/** `line_items[1].quantity` → `lineItems[1].quantity` with `{line_items: 'lineItems'}`. */
function renameParam(param: string, names: Record<string, string>): string {
  const m = /^([^.[]+)(.*)$/.exec(param);
  if (!m) return param;
  return (names[m[1]] ?? m[1]) + m[2];
}

/**
 * The native refund create, as a surface calls it: the request's Idempotency-Key (or
 * X-Idempotency-Key) and X-Connector-Account header are honoured exactly as on `/v1/refunds`.
 * The key is claimed before the handler runs and the surface's answer is what it stores.
 */
export function createRefund(services: Services, req: FastifyRequest, input: CreateRefundInput): Promise<RefundView> {
  const header = req.headers['x-connector-account'];
  return services.refunds.create(req.auth!, input, {
    idempotencyKey: req.idem?.key,
    connectorAccountHeader: Array.isArray(header) ? header[0] : header,
  });
}

/** Sends a surface's answer. */
export function answer(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** Drops `undefined` fields, so an omitted seed field stays omitted in the native input. */
export function defined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The error envelope, for the surfaces' OpenAPI responses (codes are the surface's own). */
export function compatErrorSchema(codes: string[]) {
  return {
    type: 'object',
    description: codes.length
      ? `The error envelope of contract section 2, with this surface's codes (${codes.join(', ')}) and the native codes for errors its document does not name.`
      : 'The error envelope of contract section 2, with the native codes: this surface\'s document names no errors.',
    properties: {
      error: {
        type: 'object',
        properties: {
          type: { type: 'string' },
          code: { type: 'string' },
          message: { type: 'string' },
          param: { type: 'string' },
          permission: { type: 'string', description: 'The permission a restricted key lacks (insufficient_permissions)' },
          request_id: { type: 'string' },
        },
      },
    },
  } as const;
}
