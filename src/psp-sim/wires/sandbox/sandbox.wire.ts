/**
 * The sandbox wire: the PSP API (`/v1/*`) that the gateway's sandbox connector calls over HTTP.
 * JSON in and out, `Authorization: Bearer sk_…`, `Sandbox-Account` to scope the account, and an
 * `Idempotency-Key` on every POST. Documented in docs/psp-sim.md.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ActionResult, AuthorizeResult, RefundResult } from '../../../connectors/connector.js';
import type { SandboxPsp } from '../../psp-model.js';
import type { SimFaultState } from '../../faults.js';
import { errorReply, send, type Faulted, type SimReply } from '../../replies.js';

const amountSchema = { type: 'integer', minimum: 1, maximum: 999_999_999_999 } as const;
const nullableString = { anyOf: [{ type: 'string', maxLength: 500 }, { type: 'null' }] } as const;
const refParams = { type: 'object', required: ['ref'], properties: { ref: { type: 'string', minLength: 1 } } } as const;

export interface WireContext {
  psp: SandboxPsp;
  faults: SimFaultState;
  /** Runs one PSP operation under the fault configuration. */
  faulted: Faulted;
}

export function registerSandboxWire(app: FastifyInstance, { psp, faults, faulted }: WireContext): void {
  app.register(async (api) => {
    api.addHook('onRequest', async (request, reply) => {
      if (!/^Bearer sk_\S+$/.test(request.headers.authorization ?? '')) {
        return send(reply, errorReply('invalid_api_key', 'Missing or invalid API key (expected "Authorization: Bearer sk_…").'));
      }
      if (request.method === 'POST' && !idempotencyKey(request)) {
        return send(reply, errorReply('idempotency_key_required', 'The Idempotency-Key header is required.'));
      }
    });

    api.post<{
      Body: { amount: number; currency: string; payment_method: string; capture: boolean; reference: string | null };
    }>(
      '/v1/payments',
      {
        schema: {
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['amount', 'currency', 'payment_method'],
            properties: {
              amount: amountSchema,
              currency: { type: 'string', pattern: '^[A-Za-z]{3}$' },
              payment_method: { type: 'string', minLength: 1, maxLength: 100 },
              capture: { type: 'boolean', default: true },
              reference: nullableString,
            },
          },
        },
      },
      (request, reply) =>
        faulted('authorize', request, reply, () => {
          const b = request.body;
          const result = psp.authorize({
            amount: b.amount,
            currency: b.currency,
            paymentMethod: b.payment_method,
            capture: b.capture,
            reference: b.reference ?? null,
            idempotencyKey: idempotencyKey(request),
            accountId: account(request),
          });
          return authorizeReply(psp, result);
        }),
    );

    api.post<{ Params: { ref: string }; Body: { amount?: number; currency?: string } | undefined }>(
      '/v1/payments/:ref/capture',
      {
        schema: {
          params: refParams,
          body: {
            type: ['object', 'null'],
            additionalProperties: false,
            properties: { amount: amountSchema, currency: { type: 'string', pattern: '^[A-Za-z]{3}$' } },
          },
        },
      },
      (request, reply) =>
        faulted('capture', request, reply, () => {
          const { ref } = request.params;
          const result = psp.capture({
            connectorRef: ref,
            // No amount → capture everything authorized.
            amount: request.body?.amount ?? psp.ensurePayment(ref, account(request))?.amount ?? 0,
            currency: request.body?.currency,
            idempotencyKey: idempotencyKey(request),
            accountId: account(request),
          });
          return actionReply(psp, result);
        }),
    );

    api.post<{ Params: { ref: string } }>(
      '/v1/payments/:ref/cancel',
      { schema: { params: refParams, body: { type: ['object', 'null'], additionalProperties: false, properties: {} } } },
      (request, reply) =>
        faulted('cancel', request, reply, () =>
          actionReply(
            psp,
            psp.cancel({ connectorRef: request.params.ref, idempotencyKey: idempotencyKey(request), accountId: account(request) }),
          ),
        ),
    );

    api.post<{
      Body: {
        payment_ref: string;
        amount: number;
        currency?: string;
        reason?: string | null;
        reference?: string | null;
        pending_delay_ms?: number;
      };
    }>(
      '/v1/refunds',
      {
        schema: {
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['payment_ref', 'amount'],
            properties: {
              payment_ref: { type: 'string', minLength: 1 },
              amount: amountSchema,
              currency: { type: 'string', pattern: '^[A-Za-z]{3}$' },
              reason: nullableString,
              reference: nullableString,
              pending_delay_ms: { type: 'integer', minimum: 0, maximum: 3_600_000 },
            },
          },
        },
      },
      (request, reply) =>
        faulted('refund', request, reply, () => {
          const b = request.body;
          const result = psp.refund({
            paymentRef: b.payment_ref,
            amount: b.amount,
            currency: b.currency,
            reason: b.reason ?? null,
            reference: b.reference ?? null,
            idempotencyKey: idempotencyKey(request),
            accountId: account(request),
            pendingDelayMs: faults.current.pending_delay_ms ?? b.pending_delay_ms,
            forcePending: faults.current.force_pending,
          });
          return refundReply(psp, result);
        }),
    );

    // What the PSP did for one payment (reconciliation): always 200 with a payment_state object,
    // whose status says `unknown` when the sim lost the payment's history and `not_found` for a
    // ref that is not the sim's.
    api.get<{ Params: { ref: string } }>('/v1/payments/:ref', { schema: { params: refParams } }, (request, reply) =>
      faulted('payment_state', request, reply, () => ({ status: 200, body: psp.paymentState(request.params.ref, account(request)) })),
    );

    const statusQuery = {
      type: 'object',
      properties: { idempotency_key: { type: 'string', minLength: 1 }, payment_ref: { type: 'string', minLength: 1 } },
    } as const;

    api.get<{ Querystring: { idempotency_key?: string; payment_ref?: string } }>(
      '/v1/refunds',
      { schema: { querystring: { ...statusQuery, required: ['idempotency_key', 'payment_ref'] } } },
      (request, reply) =>
        faulted('refund_status', request, reply, () => {
          const { idempotency_key: key = '', payment_ref: paymentRef = '' } = request.query;
          return refundReply(psp, psp.refundStatus({ paymentRef, idempotencyKey: key, accountId: account(request) }));
        }),
    );

    api.get<{ Params: { ref: string }; Querystring: { idempotency_key?: string; payment_ref?: string } }>(
      '/v1/refunds/:ref',
      { schema: { params: refParams, querystring: statusQuery } },
      (request, reply) =>
        faulted('refund_status', request, reply, () => {
          const { ref } = request.params;
          const { idempotency_key: key, payment_ref: paymentRef } = request.query;
          // With key and payment, the same lookup as the in-process connector (ref, then key).
          if (key && paymentRef) {
            return refundReply(psp, psp.refundStatus({ connectorRef: ref, paymentRef, idempotencyKey: key, accountId: account(request) }));
          }
          const view = psp.refundView(ref);
          if (!view || (paymentRef && view.payment_ref !== paymentRef)) return errorReply('refund_not_found', `No such refund: ${ref}.`);
          return { status: 200, body: view };
        }),
    );
  });
}

function idempotencyKey(request: FastifyRequest): string {
  const value = request.headers['idempotency-key'];
  return typeof value === 'string' ? value.trim() : '';
}

function account(request: FastifyRequest): string {
  const value = request.headers['sandbox-account'];
  return typeof value === 'string' ? value : '';
}

function authorizeReply(psp: SandboxPsp, result: AuthorizeResult): SimReply {
  if (result.outcome === 'declined') {
    return errorReply(result.code, result.message, result.connectorRef ? { payment_ref: result.connectorRef } : {});
  }
  return { status: 200, body: psp.paymentView(result.connectorRef) };
}

function actionReply(psp: SandboxPsp, result: ActionResult): SimReply {
  if (result.outcome === 'rejected') return errorReply(result.code, result.message);
  return { status: 200, body: result.connectorRef ? psp.paymentView(result.connectorRef) : {} };
}

/** A refund that exists is answered as a refund object (even a failed one); a refusal as an error. */
function refundReply(psp: SandboxPsp, result: RefundResult): SimReply {
  const view = result.connectorRef ? psp.refundView(result.connectorRef) : undefined;
  if (view) return { status: 200, body: view };
  if (result.status === 'failed') return errorReply(result.code, result.message);
  return errorReply('refund_not_found', 'The refund disappeared.');
}
