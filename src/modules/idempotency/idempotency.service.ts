import type { Db } from '../../db/db.js';
import { AppError, invalidParam } from '../../http/errors.js';
import { sha256Hex, type SecretBox } from '../../lib/crypto.js';

/** 1–255 printable ASCII characters (contract section 3). */
const KEY_RE = /^[\x20-\x7e]{1,255}$/;

export interface IdempotencyScope {
  merchantId: string;
  testMode: boolean;
  key: string;
}

export interface StoredResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** Marks a stored body sealed with the encryption key (a JSON body never starts with it). */
export const SEALED = 'sealed:';

/**
 * An idempotency key claimed by the first transaction of the work it guards, and answered by the
 * transaction that finishes that work, instead of by statements of its own: a refund commits
 * twice instead of four times. The claim is a CTE of the work's first write (`claimCte`); a key
 * already there makes that write write nothing, the work stops there (`state` stays
 * `unclaimed`), and the request is then answered as the key's usual path would (`IdempotencyService.begin`:
 * the stored response, 409, 422, or the work run again under a key claimed on its own). The
 * response is stored by a CTE of the final write (`storeCte`), so a refund's outcome and its
 * replayable answer commit together.
 */
export class TransactionalKey {
  /** `claimed`: the claim committed; `stored`: so did the response, which is `response`. */
  state: 'unclaimed' | 'claimed' | 'stored' = 'unclaimed';
  response?: StoredResponse;
  /** How a result becomes the response to store and send (the route's serializer). */
  render?: (result: unknown) => StoredResponse;

  constructor(
    readonly scope: IdempotencyScope,
    readonly method: string,
    readonly path: string,
    readonly hash: string,
    readonly leaseMs: number,
  ) {}

  /** The response a transaction about to store `result` writes (see `storeParams`). */
  respond(result: unknown): StoredResponse {
    if (!this.render) throw new Error('TransactionalKey: no renderer set');
    return this.render(result);
  }
}

/**
 * The claim of a `TransactionalKey` as a CTE named `claim`, 7 parameters from `$first`
 * (`claimParams`): one row when the key was claimed, none when it was already taken (a key
 * another open transaction is claiming is waited for, then taken or claimed as that transaction
 * ends). The statement's writes are made `FROM claim`, so a taken key writes nothing.
 */
export function claimCte(first: number): string {
  const $ = (i: number) => `$${first + i}`;
  return `claim AS (
         INSERT INTO idempotency_keys (merchant_id, test_mode, key, method, path, request_hash, state, locked_until)
         VALUES (${$(0)}, ${$(1)}, ${$(2)}, ${$(3)}, ${$(4)}, ${$(5)}, 'in_flight', now() + (${$(6)}::int * interval '1 millisecond'))
         ON CONFLICT DO NOTHING
         RETURNING 1 AS claimed)`;
}

export function claimParams(k: TransactionalKey): unknown[] {
  return [k.scope.merchantId, k.scope.testMode, k.scope.key, k.method, k.path, k.hash, k.leaseMs];
}

/** The response of a claimed `TransactionalKey` as a CTE named `stored`, 6 parameters from `$first`. */
export function storeCte(first: number): string {
  const $ = (i: number) => `$${first + i}`;
  return `stored AS (
         UPDATE idempotency_keys SET state = 'done', locked_until = NULL, response_status = ${$(3)}, response_body = ${$(4)},
           response_headers = ${$(5)}
         WHERE merchant_id = ${$(0)} AND test_mode = ${$(1)} AND key = ${$(2)} AND state = 'in_flight'
         RETURNING 1)`;
}

export function storeParams(scope: IdempotencyScope, response: StoredResponse): unknown[] {
  return [scope.merchantId, scope.testMode, scope.key, response.status, response.body, JSON.stringify(response.headers)];
}

const COMPLETE_SQL = `WITH ${storeCte(1)} SELECT count(*)::int AS stored FROM stored`;

export type BeginResult =
  | { kind: 'proceed'; scope: IdempotencyScope; recovered: boolean }
  | { kind: 'replay'; response: StoredResponse };

export function validateKey(raw: string | string[] | undefined, header: string): string | undefined {
  if (raw === undefined) return undefined;
  const key = Array.isArray(raw) ? raw[0] : raw;
  if (key === undefined || !KEY_RE.test(key)) {
    throw invalidParam(header, `${header} must be 1 to 255 printable ASCII characters.`);
  }
  return key;
}

/** JSON with object keys sorted: two bodies that mean the same hash the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** No body, `null` and `{}` are one request: every create takes an object, and an empty one asks
 *  for the defaults exactly as no body does (a refund of the whole balance). */
export function requestHash(method: string, path: string, body: unknown): string {
  return sha256Hex(`${method}\n${path}\n${isEmptyBody(body) ? '' : canonicalJson(body)}`);
}

function isEmptyBody(body: unknown): boolean {
  return body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0);
}

/**
 * Idempotency keys in the database (scope: merchant + mode). A key is claimed as `in_flight`
 * with a lease; the response is stored when the request ends. A lease that runs out means its
 * owner died (crash): the next retry takes the key over and the work resumes (the payment and
 * refund services find the objects the first attempt created by the same key).
 *
 * A response that shows a secret once (an API key, a webhook signing secret) is replayed with
 * that secret, as Stripe does, but kept sealed (AES-256-GCM, bound to its key's scope) while it
 * waits for a retry: the database never holds it in clear.
 */
export class IdempotencyService {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly opts: { lockMs: number; retentionHours: number },
  ) {}

  async begin(scope: IdempotencyScope, method: string, path: string, hash: string): Promise<BeginResult> {
    // One round trip: claim the key, or else read the request that holds it. The read shares the
    // insert's snapshot, so a holder that committed after it started is not seen: that case is
    // the same as a key released between two statements, and is simply tried again.
    const r = await this.db.query<{
      claimed: boolean; method: string; path: string; request_hash: string; state: string; expired: boolean;
      response_status: number | null; response_body: string | null; response_headers: Record<string, string> | null;
    }>(
      `WITH claim AS (
         INSERT INTO idempotency_keys (merchant_id, test_mode, key, method, path, request_hash, state, locked_until)
         VALUES ($1, $2, $3, $4, $5, $6, 'in_flight', now() + ($7::int * interval '1 millisecond'))
         ON CONFLICT DO NOTHING
         RETURNING true AS claimed)
       SELECT claimed, NULL AS method, NULL AS path, NULL AS request_hash, NULL AS state, NULL::boolean AS expired,
              NULL::integer AS response_status, NULL AS response_body, NULL::jsonb AS response_headers
       FROM claim
       UNION ALL
       SELECT false, method, path, request_hash, state, locked_until < now(), response_status, response_body, response_headers
       FROM idempotency_keys
       WHERE merchant_id = $1 AND test_mode = $2 AND key = $3 AND NOT EXISTS (SELECT 1 FROM claim)`,
      [scope.merchantId, scope.testMode, scope.key, method, path, hash, this.opts.lockMs],
    );
    if (r.rows[0]?.claimed) return { kind: 'proceed', scope, recovered: false };

    const row = r.rows[0];
    if (!row) return this.begin(scope, method, path, hash); // released between our two statements
    if (row.method !== method || row.path !== path || row.request_hash !== hash) {
      throw new AppError('idempotency_key_reused',
        'This Idempotency-Key was already used with a different request (method, path or body). Use a new key for a new request.');
    }
    if (row.state === 'done') {
      const stored = row.response_body!;
      const body = stored.startsWith(SEALED) ? this.box.open(stored.slice(SEALED.length), sealContext(scope)) : stored;
      return { kind: 'replay', response: { status: row.response_status!, body, headers: row.response_headers ?? {} } };
    }
    if (!row.expired) {
      throw new AppError('idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed; retry later.');
    }
    const taken = await this.db.query(
      `UPDATE idempotency_keys SET locked_until = now() + ($4::int * interval '1 millisecond')
       WHERE merchant_id = $1 AND test_mode = $2 AND key = $3 AND state = 'in_flight' AND locked_until < now()`,
      [scope.merchantId, scope.testMode, scope.key, this.opts.lockMs],
    );
    if (taken.rowCount !== 1) {
      throw new AppError('idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed; retry later.');
    }
    return { kind: 'proceed', scope, recovered: true };
  }

  /** A key to be claimed inside the transaction of the work it guards (see `TransactionalKey`). */
  transactionalKey(scope: IdempotencyScope, method: string, path: string, hash: string): TransactionalKey {
    return new TransactionalKey(scope, method, path, hash, this.opts.lockMs);
  }

  /** Stores the response for replays; `seal` for one that carries a secret. */
  async complete(scope: IdempotencyScope, response: StoredResponse, seal = false): Promise<void> {
    const body = seal ? SEALED + this.box.seal(response.body, sealContext(scope)) : response.body;
    await this.db.query(COMPLETE_SQL, storeParams(scope, { ...response, body }));
  }

  /** Forgets a key whose request must not be replayed (400, 429, 5xx): a retry runs again. */
  async release(scope: IdempotencyScope): Promise<void> {
    await this.db.query(
      `DELETE FROM idempotency_keys WHERE merchant_id = $1 AND test_mode = $2 AND key = $3 AND state = 'in_flight'`,
      [scope.merchantId, scope.testMode, scope.key],
    );
  }

  /**
   * Deletes stored responses past the retention window, and detaches their keys from the
   * payments and refunds they made: after its retention a key is a new key, and a request
   * reusing it must never be answered with (or resume) the object of the request that used it
   * first. Returns how many keys were purged.
   */
  async purgeExpired(batch = 1000): Promise<number> {
    const r = await this.db.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM idempotency_keys WHERE ctid IN (
           SELECT ctid FROM idempotency_keys
           WHERE created_at < now() - ($1::int * interval '1 hour')
             -- an in-flight key is purged only once its lease ran out (its owner died)
             AND (state = 'done' OR locked_until < now()) LIMIT $2)
         RETURNING merchant_id, test_mode, key),
       payments_detached AS (
         UPDATE payments p SET idempotency_key = NULL FROM gone
         WHERE p.merchant_id = gone.merchant_id AND p.test_mode = gone.test_mode AND p.idempotency_key = gone.key RETURNING 1),
       refunds_detached AS (
         UPDATE refunds r SET idempotency_key = NULL FROM gone
         WHERE r.merchant_id = gone.merchant_id AND r.test_mode = gone.test_mode AND r.idempotency_key = gone.key RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [this.opts.retentionHours, batch],
    );
    return r.rows[0].n;
  }
}

/** Ties a sealed response to its key: it cannot be opened as another key's answer. */
export const sealContext = (scope: IdempotencyScope): string => `idempotency:${scope.merchantId}:${scope.testMode ? 'test' : 'live'}:${scope.key}`;
