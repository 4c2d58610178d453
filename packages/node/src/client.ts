import { randomUUID } from 'node:crypto';
import createClient, { type Client, type FetchResponse } from 'openapi-fetch';
import type { components, paths } from './schema.js';

export type Schemas = components['schemas'];
export type Payment = Schemas['Payment'];
export type Refund = Schemas['Refund'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type SettleEvent = Schemas['Event'];
/** Any error envelope the API answers with. */
export type ApiErrorBody = Schemas[Extract<keyof Schemas, `${string}Error`>];

export interface SettleClientOptions {
  /** A secret key (sk_test_…, sk_live_…), a restricted key (rk_…) or, for /v1/admin, the admin key. */
  apiKey: string;
  /** Where the gateway runs. Default `http://localhost:8080`. */
  baseUrl?: string;
  /** Retries after the first attempt (network errors, 409 idempotency_key_in_use, 429, 5xx). Default 3. */
  maxRetries?: number;
  /** First backoff delay in ms, doubled on each retry (with jitter), at most `maxDelayMs`. Default 250. */
  retryBaseMs?: number;
  /** Largest wait between attempts, Retry-After included. Default 20000. */
  maxDelayMs?: number;
  /** The fetch to use. Default the global fetch. */
  fetch?: typeof fetch;
}

export type SettleClient = Client<paths> & {
  /** Makes an Idempotency-Key, for a logical operation you may repeat later (e.g. after a crash). */
  newIdempotencyKey(): string;
};

/**
 * A typed client: `settle.POST('/v1/payments', { body })` checks the path, the body and the
 * answer against the gateway's OpenAPI document. Every POST carries an Idempotency-Key (yours,
 * given in `headers`, or one made for the call), the same on every retry of that call, so a retry
 * never creates or refunds twice.
 */
export function createSettleClient(opts: SettleClientOptions): SettleClient {
  const client = createClient<paths>({
    baseUrl: (opts.baseUrl ?? 'http://localhost:8080').replace(/\/$/, ''),
    headers: { authorization: `Bearer ${opts.apiKey}` },
    fetch: retryingFetch(opts),
  });
  return Object.assign(client, { newIdempotencyKey });
}

function newIdempotencyKey(): string {
  return `settle-node-${randomUUID()}`;
}

/**
 * A fetch that adds the Idempotency-Key to a POST and retries what is safe to retry: a network
 * error, 409 idempotency_key_in_use (the first attempt is still running), 429 (after its
 * Retry-After) and 5xx. With the same key, the gateway answers a retry with the stored answer of
 * a request that had completed, or finishes the work where it stopped.
 */
function retryingFetch(opts: SettleClientOptions) {
  const base = opts.fetch ?? globalThis.fetch;
  const maxRetries = opts.maxRetries ?? 3;
  const retryBaseMs = opts.retryBaseMs ?? 250;
  const maxDelayMs = opts.maxDelayMs ?? 20_000;
  return async (input: Request): Promise<Response> => {
    const headers = new Headers(input.headers);
    if (input.method === 'POST' && !headers.has('idempotency-key')) headers.set('idempotency-key', newIdempotencyKey());
    const body = input.body ? await input.arrayBuffer() : undefined;
    for (let attempt = 0; ; attempt++) {
      let response: Response | undefined;
      let failure: unknown;
      try {
        response = await base(new Request(input.url, { method: input.method, headers, body, signal: input.signal }));
      } catch (err) {
        if (input.signal?.aborted) throw err;
        failure = err;
      }
      const retryable = response === undefined || (await isRetryable(response));
      if (!retryable || attempt >= maxRetries) {
        if (response) return response;
        throw failure;
      }
      const backoff = Math.min(maxDelayMs, retryBaseMs * 2 ** attempt) * (0.5 + Math.random() / 2);
      const after = retryAfterMs(response);
      await new Promise((r) => setTimeout(r, Math.min(maxDelayMs, after ?? backoff)));
    }
  };
}

async function isRetryable(res: Response): Promise<boolean> {
  if (res.status === 429 || res.status >= 500) return true;
  if (res.status !== 409) return false;
  const body = (await res.clone().json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
  return body?.error?.code === 'idempotency_key_in_use';
}

function retryAfterMs(res: Response | undefined): number | undefined {
  const value = res?.headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** A non-2xx answer, thrown by `unwrap`: the API's error envelope, typed. */
export class SettleApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string;
  readonly param?: string;
  readonly requestId: string;
  constructor(status: number, readonly body: ApiErrorBody) {
    super(body.error.message);
    this.name = 'SettleApiError';
    this.status = status;
    this.type = body.error.type;
    this.code = body.error.code;
    this.param = 'param' in body.error ? body.error.param : undefined;
    this.requestId = body.error.request_id;
  }
}

/**
 * The answer's data, or a thrown SettleApiError:
 * `const refund = await unwrap(settle.POST('/v1/payments/{id}/refunds', { params: { path: { id } }, body: {} }))`.
 */
export async function unwrap<T extends Record<string | number, any>, O, M extends `${string}/${string}`>(
  call: Promise<FetchResponse<T, O, M>>,
): Promise<NonNullable<FetchResponse<T, O, M>['data']>> {
  const { data, error, response } = await call;
  if (error !== undefined) throw new SettleApiError(response.status, error as ApiErrorBody);
  return data as NonNullable<FetchResponse<T, O, M>['data']>;
}
