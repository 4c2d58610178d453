import type { Queryable } from '../../db/db.js';
import type { Cursor } from '../../http/pagination.js';
import type { WebhookDialect } from './dialects.js';
import type { EventRow } from './events.repository.js';

export interface WebhookEndpointRow {
  id: string;
  merchant_id: string;
  test_mode: boolean;
  url: string;
  enabled_events: string[];
  /** `settle`, or a compatibility surface's event dialect (see dialects.ts). */
  dialect: WebhookDialect;
  description: string | null;
  status: 'enabled' | 'disabled';
  secret_sealed: string;
  created_at: Date;
  deleted_at: Date | null;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';

export interface DeliveryRow {
  id: string;
  event_id: string;
  endpoint_id: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  last_http_status: number | null;
  last_error: string | null;
}

/**
 * What became of one attempt, as the merchant sees it: the receiver answered (`http_status`, the
 * status says which), or why it could not be reached. Never the raw socket error or a body.
 */
export const ATTEMPT_CATEGORIES = ['http_status', 'timeout', 'connection_refused', 'connection_failed', 'dns', 'tls', 'blocked_address'] as const;
export type AttemptCategory = (typeof ATTEMPT_CATEGORIES)[number];

export interface AttemptRow {
  delivery_id: string;
  event_id: string;
  endpoint_id: string;
  attempt: number;
  http_status: number | null;
  /** Null only for attempts recorded before categories existed. */
  category: AttemptCategory | null;
  error: string | null;
  duration_ms: number;
  attempted_at: Date;
}

/** A delivery claimed by one worker, with everything needed to send it. */
export interface ClaimedDelivery {
  id: string;
  event_id: string;
  endpoint_id: string;
  merchant_id: string;
  /** The number of this attempt (1-based, counted since the delivery was last (re)scheduled). */
  attempts: number;
  /** `locked_until` as text: the fencing token that the worker must present to record a result. */
  lease: string;
  body: string;
  url: string;
  secret_sealed: string;
  test_mode: boolean;
  dialect: WebhookDialect;
}

/** Arbitrary constant: the advisory lock that serializes delivery claims (see `claimDue`). */
const CLAIM_LOCK = 727_274_005;

export const webhooksRepository = {
  async insertEndpoint(
    db: Queryable,
    row: Pick<WebhookEndpointRow, 'id' | 'merchant_id' | 'test_mode' | 'url' | 'enabled_events' | 'dialect' | 'description' | 'secret_sealed'>,
  ): Promise<WebhookEndpointRow> {
    // created_at truncated to milliseconds: list cursors carry a JS Date, and a microsecond
    // remainder would make keyset pagination skip rows created within the same millisecond
    const r = await db.query<WebhookEndpointRow>(
      `INSERT INTO webhook_endpoints (id, merchant_id, test_mode, url, enabled_events, description, status, secret_sealed, created_at, dialect)
       VALUES ($1, $2, $3, $4, $5::text[], $6, 'enabled', $7, date_trunc('milliseconds', now()), $8)
       RETURNING *`,
      [row.id, row.merchant_id, row.test_mode, row.url, row.enabled_events, row.description, row.secret_sealed, row.dialect],
    );
    return r.rows[0];
  },

  /** Not deleted; scoped to merchant and mode. */
  async findEndpoint(db: Queryable, merchantId: string, testMode: boolean, id: string, lock = false): Promise<WebhookEndpointRow | undefined> {
    const r = await db.query<WebhookEndpointRow>(
      `SELECT * FROM webhook_endpoints
       WHERE id = $1 AND merchant_id = $2 AND test_mode = $3 AND deleted_at IS NULL${lock ? ' FOR UPDATE' : ''}`,
      [id, merchantId, testMode],
    );
    return r.rows[0];
  },

  async listEndpoints(db: Queryable, merchantId: string, testMode: boolean, limit: number, after?: Cursor): Promise<WebhookEndpointRow[]> {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    let where = '';
    if (after) {
      params.push(after.createdAt, after.id);
      where = 'AND (created_at, id) < ($4::timestamptz, $5)';
    }
    const r = await db.query<WebhookEndpointRow>(
      `SELECT * FROM webhook_endpoints
       WHERE merchant_id = $1 AND test_mode = $2 AND deleted_at IS NULL ${where}
       ORDER BY created_at DESC, id DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },

  /** How many endpoints (not deleted) the merchant has in this mode. */
  async countEndpoints(db: Queryable, merchantId: string, testMode: boolean): Promise<number> {
    const r = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM webhook_endpoints WHERE merchant_id = $1 AND test_mode = $2 AND deleted_at IS NULL',
      [merchantId, testMode],
    );
    return r.rows[0].n;
  },

  async softDeleteEndpoint(db: Queryable, id: string): Promise<void> {
    await db.query(`UPDATE webhook_endpoints SET deleted_at = COALESCE(deleted_at, now()) WHERE id = $1`, [id]);
  },

  /** Ends every pending delivery to an endpoint; a worker holding one of them will find it no
   *  longer pending and leave it alone. */
  async failPendingDeliveries(db: Queryable, endpointId: string, reason: string): Promise<number> {
    const r = await db.query(
      `UPDATE webhook_deliveries SET status = 'failed', locked_until = NULL, last_error = $2, updated_at = now()
       WHERE endpoint_id = $1 AND status = 'pending'`,
      [endpointId, reason],
    );
    return r.rowCount;
  },

  async listEvents(
    db: Queryable,
    merchantId: string,
    testMode: boolean,
    limit: number,
    after?: Cursor,
    type?: string,
    filter: { objectId?: string; deliveryStatus?: string } = {},
  ): Promise<Pick<EventRow, 'id' | 'body' | 'created_at'>[]> {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    const where: string[] = [];
    if (type !== undefined) {
      params.push(type);
      where.push(`type = $${params.length}`);
    }
    if (filter.objectId !== undefined) {
      params.push(filter.objectId);
      where.push(`object_id = $${params.length}`);
    }
    if (filter.deliveryStatus !== undefined) {
      params.push(filter.deliveryStatus);
      where.push(`EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status = $${params.length})`);
    }
    if (after) {
      params.push(after.createdAt, after.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    const r = await db.query<Pick<EventRow, 'id' | 'body' | 'created_at'>>(
      `SELECT id, body, created_at FROM events
       WHERE merchant_id = $1 AND test_mode = $2 ${where.map((w) => `AND ${w}`).join(' ')}
       ORDER BY created_at DESC, id DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },

  async findEvent(db: Queryable, merchantId: string, testMode: boolean, id: string): Promise<EventRow | undefined> {
    const r = await db.query<EventRow>('SELECT * FROM events WHERE id = $1 AND merchant_id = $2 AND test_mode = $3', [id, merchantId, testMode]);
    return r.rows[0];
  },

  async attemptsForEvent(db: Queryable, eventId: string): Promise<AttemptRow[]> {
    const r = await db.query<AttemptRow>(
      `SELECT delivery_id, event_id, endpoint_id, attempt, http_status, category, error, duration_ms, attempted_at
       FROM webhook_attempts WHERE event_id = $1 ORDER BY attempted_at, id`,
      [eventId],
    );
    return r.rows;
  },

  async deliveriesForEvent(db: Queryable, eventId: string): Promise<DeliveryRow[]> {
    const r = await db.query<DeliveryRow>(
      `SELECT id, event_id, endpoint_id, status, attempts, next_attempt_at, last_http_status, last_error
       FROM webhook_deliveries WHERE event_id = $1 ORDER BY created_at, endpoint_id`,
      [eventId],
    );
    return r.rows;
  },

  /**
   * Makes the event due now for every enabled endpoint of its merchant and mode that subscribes
   * to its type: existing deliveries start a fresh retry cycle, missing ones (endpoints created
   * after the event) are created with the id scheme of the outbox writer.
   */
  async scheduleRedelivery(db: Queryable, eventId: string): Promise<number> {
    const r = await db.query(
      `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at)
       SELECT 'whd_' || md5(e.id || w.id), e.id, w.id, 'pending', now()
       FROM events e JOIN webhook_endpoints w
         ON w.merchant_id = e.merchant_id AND w.test_mode = e.test_mode AND w.deleted_at IS NULL AND w.status = 'enabled'
        AND ('*' = ANY (w.enabled_events) OR e.type = ANY (w.enabled_events))
       WHERE e.id = $1
       ON CONFLICT (event_id, endpoint_id) DO UPDATE SET
         status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL,
         last_http_status = NULL, last_error = NULL, updated_at = now()`,
      [eventId],
    );
    return r.rowCount;
  },

  /**
   * Claims up to `limit` due deliveries for one worker, fairly between merchants. SKIP LOCKED keeps
   * concurrent claimers off each other's rows, and pushing `next_attempt_at` forward by the lease
   * keeps the rows invisible to later claims after this transaction commits, while the worker is
   * sending. If the worker dies, the rows become due again when the lease ends. The attempt
   * counter is bumped here, so an attempt whose outcome was lost in a crash still counts against
   * the retry schedule.
   *
   * Fairness: a merchant never has more than `perMerchant` deliveries leased (being sent) at once,
   * over all workers and processes (claims are serialized by an advisory lock, so the count of
   * leased rows each claim sees is exact), and the claim takes the merchants' due deliveries
   * round-robin: every merchant's oldest one first, then every merchant's second, and so on. A
   * merchant with a backlog to a slow endpoint fills its own slots only. Each endpoint offers at
   * most `perMerchant` of its oldest due deliveries, so the work per claim is bounded by the
   * number of endpoints, not by the size of a backlog.
   */
  async claimDue(db: Queryable, limit: number, leaseMs: number, perMerchant: number): Promise<ClaimedDelivery[]> {
    // an idle poll costs one probe of the due index, and takes no lock
    const any = await db.query(`SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now() LIMIT 1`);
    if (any.rowCount === 0) return [];
    await db.query('SELECT pg_advisory_xact_lock($1)', [CLAIM_LOCK]);
    const r = await db.query<ClaimedDelivery>(
      `WITH leased AS (
         SELECT w.merchant_id, count(*)::int AS n
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.locked_until IS NOT NULL AND d.locked_until > now()
         GROUP BY w.merchant_id),
       candidates AS (
         SELECT c.id, c.next_attempt_at, w.merchant_id
         FROM webhook_endpoints w
         CROSS JOIN LATERAL (
           SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
           WHERE d.endpoint_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= now()
           ORDER BY d.next_attempt_at
           LIMIT $3) c
         WHERE w.deleted_at IS NULL AND w.status = 'enabled'),
       ranked AS (
         SELECT c.id, c.next_attempt_at,
                COALESCE(l.n, 0) + row_number() OVER (PARTITION BY c.merchant_id ORDER BY c.next_attempt_at, c.id) AS slot
         FROM candidates c LEFT JOIN leased l ON l.merchant_id = c.merchant_id),
       due AS (
         SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id
         WHERE r.slot <= $3 AND d.status = 'pending' AND d.next_attempt_at <= now()
         ORDER BY r.slot, r.next_attempt_at
         LIMIT $1
         FOR UPDATE OF d SKIP LOCKED)
       UPDATE webhook_deliveries d
          SET attempts = d.attempts + 1,
              next_attempt_at = now() + make_interval(secs => $2::float8 / 1000),
              locked_until = now() + make_interval(secs => $2::float8 / 1000),
              updated_at = now()
         FROM due, events e, webhook_endpoints w
        WHERE d.id = due.id AND e.id = d.event_id AND w.id = d.endpoint_id
       RETURNING d.id, d.event_id, d.endpoint_id, w.merchant_id, d.attempts, d.locked_until::text AS lease,
                 e.body, w.url, w.secret_sealed, w.test_mode, w.dialect`,
      [limit, leaseMs, perMerchant],
    );
    return r.rows;
  },

  async insertAttempt(db: Queryable, a: Omit<AttemptRow, 'attempted_at'> & { attempted_at: Date }): Promise<void> {
    await db.query(
      `INSERT INTO webhook_attempts (delivery_id, event_id, endpoint_id, attempt, http_status, category, error, duration_ms, attempted_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [a.delivery_id, a.event_id, a.endpoint_id, a.attempt, a.http_status, a.category, a.error, a.duration_ms, a.attempted_at.toISOString()],
    );
  },

  /**
   * Records the outcome of a claimed attempt. Applies only while the worker still holds the lease
   * (`locked_until` unchanged and still pending): a result that arrives after the lease was taken
   * over, after a redelivery reset, or after the endpoint was deleted is ignored.
   *
   * `retryInSeconds`: undefined on success; a number schedules the next attempt after that delay
   * with ±20% jitter; null marks the delivery failed (schedule exhausted).
   */
  async recordOutcome(
    db: Queryable,
    o: { id: string; lease: string; httpStatus: number | null; error: string | null; retryInSeconds: number | null | undefined },
  ): Promise<boolean> {
    const status: DeliveryStatus = o.retryInSeconds === undefined ? 'succeeded' : o.retryInSeconds === null ? 'failed' : 'pending';
    const r = await db.query(
      `UPDATE webhook_deliveries
          SET status = $3,
              next_attempt_at = CASE WHEN $3 = 'pending'
                                     THEN now() + make_interval(secs => $4::float8 * (0.8 + random() * 0.4))
                                     ELSE next_attempt_at END,
              locked_until = NULL, last_http_status = $5, last_error = $6, updated_at = now()
        WHERE id = $1 AND status = 'pending' AND locked_until = $2::timestamptz`,
      [o.id, o.lease, status, o.retryInSeconds ?? 0, o.httpStatus, o.error],
    );
    return r.rowCount === 1;
  },
};
