import type { Queryable, Tx } from '../../db/db.js';
import type { ConnectorAccountRow } from '../connector-accounts/connector-accounts.repository.js';
import { bookingParams, bookingSql, type Booking } from '../ledger/ledger.repository.js';
import { PAYMENT_COLUMNS, paymentUpdateParams, paymentUpdateSql, type PaymentRow } from '../payments/payments.repository.js';
import { outboxParams, outboxRows, outboxSql, type NewEvent } from '../webhooks/events.repository.js';
import { claimCte, claimParams, storeCte, storeParams, type StoredResponse, type TransactionalKey } from '../idempotency/idempotency.service.js';

export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface RefundLineItem {
  id: string;
  quantity: number;
  amount: number;
}

export interface RefundRow {
  id: string;
  txn_id: string;
  merchant_id: string;
  test_mode: boolean;
  payment_id: string;
  amount: number;
  currency: string;
  status: RefundStatus;
  reason: string | null;
  description: string | null;
  reference: string | null;
  metadata: Record<string, string>;
  line_items: RefundLineItem[];
  order_id: string | null;
  connector: string;
  connector_account_id: string;
  connector_account_short_id: string;
  connector_ref: string | null;
  failure_code: string | null;
  failure_message: string | null;
  source: 'api' | 'connector';
  idempotency_key: string | null;
  psp_idempotency_key: string;
  next_sync_at: Date | null;
  sync_attempts: number;
  created_at: Date;
  updated_at: Date;
}

export type NewRefund = Omit<RefundRow, 'created_at' | 'updated_at' | 'sync_attempts' | 'next_sync_at'> & {
  /** Delay before the sync worker first looks at a pending refund, in ms. */
  syncDelayMs: number;
};

/** Every column of `refunds`, in table order. */
const REFUND_COLUMNS = [
  'id', 'txn_id', 'merchant_id', 'test_mode', 'payment_id', 'amount', 'currency', 'status', 'reason', 'description',
  'reference', 'metadata', 'line_items', 'order_id', 'connector', 'connector_account_id', 'connector_account_short_id',
  'connector_ref', 'failure_code', 'failure_message', 'source', 'idempotency_key', 'psp_idempotency_key', 'next_sync_at',
  'sync_attempts', 'created_at', 'updated_at',
] as const satisfies readonly (keyof RefundRow)[];

const ACCOUNT_COLUMNS = [
  'id', 'short_id', 'merchant_id', 'test_mode', 'connector', 'name', 'status', 'is_default', 'settings',
  'credentials_sealed', 'webhook_secret_sealed', 'created_at', 'deleted_at',
] as const satisfies readonly (keyof ConnectorAccountRow)[];

/** `a.x AS pre_x, …`: one table's columns in a joined row, kept apart by a prefix. */
const selectAs = (alias: string, columns: readonly string[], prefix: string) => columns.map((c) => `${alias}.${c} AS ${prefix}${c}`).join(', ');

function pick<T>(row: Record<string, unknown>, columns: readonly string[], prefix = ''): T {
  const out: Record<string, unknown> = {};
  for (const c of columns) out[c] = row[prefix + c];
  return out as T;
}

/**
 * A JSON value as a `jsonb` column gives it back: object keys ordered shorter first, then
 * bytewise (PostgreSQL's jsonb key order). Rows the gateway renders without reading them back
 * (it knows what it just wrote) thereby serialize exactly as rows read from the database.
 */
export function storedJson<T>(value: T): T {
  const text = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(text).join(',')}]`;
    if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
    const keys = Object.keys(v)
      .map((k) => ({ k, utf8: Buffer.from(k) }))
      .sort((a, b) => a.utf8.length - b.utf8.length || Buffer.compare(a.utf8, b.utf8))
      .map(({ k }) => k);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${text((v as Record<string, unknown>)[k])}`).join(',')}}`;
  };
  return JSON.parse(text(value)) as T;
}

/** The refund insert (24 parameters from `$first`, see `insertParams`); with `gate`, only if that CTE returned a row. */
function insertSql(first: number, gate?: string): string {
  const $ = (i: number) => `$${first + i}`;
  const values = `${Array.from({ length: 23 }, (_, i) => $(i)).join(', ')},
         CASE WHEN ${$(7)} = 'pending' THEN now() + (${$(23)}::int * interval '1 millisecond') END`;
  return `INSERT INTO refunds (id, txn_id, merchant_id, test_mode, payment_id, amount, currency, status, reason, description,
         reference, metadata, line_items, order_id, connector, connector_account_id, connector_account_short_id,
         connector_ref, failure_code, failure_message, source, idempotency_key, psp_idempotency_key, next_sync_at)
       ${gate ? `SELECT ${values} FROM ${gate}` : `VALUES (${values})`}`;
}

function insertParams(r: NewRefund): unknown[] {
  return [r.id, r.txn_id, r.merchant_id, r.test_mode, r.payment_id, r.amount, r.currency, r.status, r.reason, r.description,
    r.reference, JSON.stringify(r.metadata), JSON.stringify(r.line_items), r.order_id, r.connector,
    r.connector_account_id, r.connector_account_short_id, r.connector_ref, r.failure_code, r.failure_message,
    r.source, r.idempotency_key, r.psp_idempotency_key, r.syncDelayMs];
}

/** The write of a refund's final (or pending) state, 5 parameters from `$first`. */
function updateSql(first: number): string {
  const $ = (i: number) => `$${first + i}`;
  return `UPDATE refunds SET status = ${$(1)}, connector_ref = ${$(2)}, failure_code = ${$(3)}, failure_message = ${$(4)},
         next_sync_at = CASE WHEN ${$(1)} = 'pending' THEN next_sync_at END, updated_at = now()
       WHERE id = ${$(0)}`;
}

const updateParams = (r: RefundRow): unknown[] => [r.id, r.status, r.connector_ref, r.failure_code, r.failure_message];

const INSERT_SQL = `${insertSql(1)} RETURNING *`;
const UPDATE_SQL = `${updateSql(1)} RETURNING *`;

// The connector account is read FOR KEY SHARE (the nullable side of an outer join cannot be
// locked, hence the lateral sub-select): a hard delete of the account (which locks it FOR UPDATE
// before counting its pending refunds) either waits for this refund to commit and sees it, or
// commits first and this read finds no account. A pending refund can never be left on a deleted
// account. The share lock does not block other refunds or payments of the account.
const LOCK_PAYMENT_SQL = `SELECT now() AS tx_now, p.*, ${selectAs('a', ACCOUNT_COLUMNS, 'ca_')}
       FROM payments p
       LEFT JOIN LATERAL (SELECT * FROM connector_accounts WHERE id = p.connector_account_id AND merchant_id = p.merchant_id FOR KEY SHARE) a ON true
       WHERE p.id = $1 AND p.merchant_id = $2 AND p.test_mode = $3
       FOR UPDATE OF p`;

// FOR UPDATE OF p, r locks in that order (the order of the locking clause): the payment, then
// the refund, as everywhere else.
const LOCK_REFUND_SQL = `SELECT now() AS tx_now, r.*, ${selectAs('p', PAYMENT_COLUMNS, 'p_')}
       FROM refunds r JOIN payments p ON p.id = r.payment_id
       WHERE r.id = $1
       FOR UPDATE OF p, r`;

const HOLD_OUTBOX = outboxSql(35);
const HOLD_CLAIM_OUTBOX = outboxSql(35, 'claim');
/** Phase 1's write, without an idempotency key to claim. */
const HOLD_SQL = `WITH refund AS (${insertSql(1)}),
       payment AS (${paymentUpdateSql(25)}),
       ${HOLD_OUTBOX.cte}
     ${HOLD_OUTBOX.insert}`;
/**
 * Phase 1's write claiming the request's idempotency key (see `TransactionalKey`): every write is
 * made only if the claim is, and the statement answers whether it was. A key already taken
 * writes nothing, and fails nothing: the transaction, and the group it may share, goes on.
 */
const HOLD_CLAIM_SQL = `WITH ${claimCte(42)},
       refund AS (${insertSql(1, 'claim')}),
       payment AS (${paymentUpdateSql(25, 'claim')}),
       ${HOLD_CLAIM_OUTBOX.cte},
       deliveries AS (${HOLD_CLAIM_OUTBOX.insert})
     SELECT count(*)::int AS claimed FROM claim`;

const FINISH_BOOKED_OUTBOX = outboxSql(26);
const FINISH_OUTBOX = outboxSql(16);
/** A refund's outcome with its booking (or, below, without), storing the request's response or not. */
const finishBookedSql = (store: boolean) => `WITH ${bookingSql(1)},
       payment AS (${paymentUpdateSql(11)}),
       refund AS (${updateSql(21)}),${store ? `\n       ${storeCte(33)},` : ''}
       ${FINISH_BOOKED_OUTBOX.cte}
     ${FINISH_BOOKED_OUTBOX.insert}`;
const finishUnbookedSql = (store: boolean) => `WITH payment AS (${paymentUpdateSql(1)}),
       refund AS (${updateSql(11)}),${store ? `\n       ${storeCte(23)},` : ''}
       ${FINISH_OUTBOX.cte}
     ${FINISH_OUTBOX.insert}`;
const FINISH_BOOKED = finishBookedSql(false);
const FINISH_BOOKED_STORE = finishBookedSql(true);
const FINISH_UNBOOKED = finishUnbookedSql(false);
const FINISH_UNBOOKED_STORE = finishUnbookedSql(true);

/** What phase 1 of a refund reads, under the payment's row lock. */
export interface LockedPayment {
  payment: PaymentRow;
  /** The payment's originating connector account; undefined when it was hard-deleted. */
  account: ConnectorAccountRow | undefined;
  /** This transaction's now(): the timestamp every row it writes gets. */
  now: Date;
}

export interface LockedRefund {
  refund: RefundRow;
  payment: PaymentRow;
  now: Date;
}

export interface RefundFilter {
  paymentId?: string;
  status?: string;
  after?: { createdAt: string; id: string };
}

export const refundsRepository = {
  async insert(db: Queryable, r: NewRefund): Promise<RefundRow> {
    const res = await db.query<RefundRow>(INSERT_SQL, insertParams(r));
    return res.rows[0];
  },

  /** Locks a payment (scoped to merchant and mode) and reads its originating connector account. */
  async lockPayment(db: Queryable, merchantId: string, testMode: boolean, paymentId: string): Promise<LockedPayment | undefined> {
    const row = (await db.query<Record<string, unknown>>(LOCK_PAYMENT_SQL, [paymentId, merchantId, testMode])).rows[0];
    if (!row) return undefined;
    return {
      payment: pick<PaymentRow>(row, PAYMENT_COLUMNS),
      account: row.ca_id === null ? undefined : pick<ConnectorAccountRow>(row, ACCOUNT_COLUMNS, 'ca_'),
      now: row.tx_now as Date,
    };
  },

  /**
   * Phase 1's writes in one statement: the pending refund, the payment holding its amount, and the
   * events — and the request's idempotency key when the refund claims it. `refund` and `payment`
   * are the rows as they will be (see `storedJson`). The last statement of phase 1: it commits.
   * False when the key was already taken: then nothing was written.
   */
  async hold(tx: Tx, refund: NewRefund, payment: PaymentRow, events: NewEvent[], key?: TransactionalKey): Promise<boolean> {
    const outbox = outboxRows(refund.test_mode, events);
    const params = [...insertParams(refund), ...paymentUpdateParams(payment), ...outboxParams(refund.merchant_id, refund.test_mode, outbox)];
    if (!key) {
      await tx.lastQuery(HOLD_SQL, params);
      return true;
    }
    const r = await tx.lastQuery<{ claimed: number }>(HOLD_CLAIM_SQL, [...params, ...claimParams(key)]);
    return r.rows[0].claimed === 1;
  },

  /** Locks a refund's payment, then the refund (the lock order everywhere). */
  async lockWithPayment(db: Queryable, refundId: string): Promise<LockedRefund | undefined> {
    const row = (await db.query<Record<string, unknown>>(LOCK_REFUND_SQL, [refundId])).rows[0];
    if (!row) return undefined;
    return { refund: pick<RefundRow>(row, REFUND_COLUMNS), payment: pick<PaymentRow>(row, PAYMENT_COLUMNS, 'p_'), now: row.tx_now as Date };
  },

  /**
   * A refund's outcome in one statement: its booking (when it succeeded), the payment, the refund
   * and the events — and the request's response, when its idempotency key is answered here. The
   * caller holds both row locks. With `last`, the transaction's last statement: it commits.
   */
  async finalize(tx: Tx, refund: RefundRow, payment: PaymentRow, booking: Booking | undefined, events: NewEvent[],
    answer: { key: TransactionalKey; response: StoredResponse } | undefined, last: boolean): Promise<void> {
    const outbox = outboxParams(refund.merchant_id, refund.test_mode, outboxRows(refund.test_mode, events));
    const stored = answer ? storeParams(answer.key.scope, answer.response) : [];
    const [sql, params] = booking
      ? [answer ? FINISH_BOOKED_STORE : FINISH_BOOKED, [...bookingParams(booking), ...paymentUpdateParams(payment), ...updateParams(refund), ...outbox, ...stored]]
      : [answer ? FINISH_UNBOOKED_STORE : FINISH_UNBOOKED, [...paymentUpdateParams(payment), ...updateParams(refund), ...outbox, ...stored]];
    await (last ? tx.lastQuery(sql, params) : tx.query(sql, params));
  },

  async find(db: Queryable, merchantId: string, testMode: boolean, id: string): Promise<RefundRow | undefined> {
    const r = await db.query<RefundRow>('SELECT * FROM refunds WHERE id = $1 AND merchant_id = $2 AND test_mode = $3', [id, merchantId, testMode]);
    return r.rows[0];
  },

  async findById(db: Queryable, id: string, lock = false): Promise<RefundRow | undefined> {
    return (await db.query<RefundRow>(`SELECT * FROM refunds WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id])).rows[0];
  },

  async findByIdempotencyKey(db: Queryable, merchantId: string, testMode: boolean, key: string): Promise<RefundRow | undefined> {
    const r = await db.query<RefundRow>(
      'SELECT * FROM refunds WHERE merchant_id = $1 AND test_mode = $2 AND idempotency_key = $3',
      [merchantId, testMode, key],
    );
    return r.rows[0];
  },

  async findByConnectorRef(db: Queryable, connectorAccountId: string, connectorRef: string): Promise<RefundRow | undefined> {
    const r = await db.query<RefundRow>('SELECT * FROM refunds WHERE connector_account_id = $1 AND connector_ref = $2', [connectorAccountId, connectorRef]);
    return r.rows[0];
  },

  async forPayment(db: Queryable, paymentId: string): Promise<RefundRow[]> {
    return (await db.query<RefundRow>('SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at, id', [paymentId])).rows;
  },

  /** Moves a refund to its final state (or records a pending answer) — the caller holds the locks. */
  async update(db: Queryable, r: RefundRow): Promise<RefundRow> {
    const res = await db.query<RefundRow>(UPDATE_SQL, updateParams(r));
    return res.rows[0];
  },

  /**
   * Schedules the next sync of a pending refund with exponential backoff and jitter, computed in
   * SQL from the attempts so far: base × 2^attempts, capped, times a random factor in [0.5, 1).
   * Returns the refund as updated, or undefined when it is no longer pending.
   */
  async scheduleSync(db: Queryable, id: string, baseMs: number, maxMs: number, connectorRef: string | null): Promise<RefundRow | undefined> {
    const r = await db.query<RefundRow>(
      `UPDATE refunds SET
         connector_ref = COALESCE(connector_ref, $4),
         next_sync_at = now() + (least($3::float8, $2::float8 * power(2, least(sync_attempts, 30)))
                                 * (0.5 + random() / 2)) * interval '1 millisecond',
         sync_attempts = sync_attempts + 1, updated_at = now()
       WHERE id = $1 AND status = 'pending'
       RETURNING *`,
      [id, baseMs, maxMs, connectorRef],
    );
    return r.rows[0];
  },

  /**
   * Claims due pending refunds for one sync pass: pushes their next_sync_at out by a lease so no
   * other worker (or process) takes the same refund meanwhile; SKIP LOCKED keeps workers apart.
   */
  async claimDue(db: Queryable, limit: number, leaseMs: number): Promise<RefundRow[]> {
    const r = await db.query<RefundRow>(
      `UPDATE refunds SET next_sync_at = now() + ($2::int * interval '1 millisecond')
       WHERE id IN (SELECT id FROM refunds WHERE status = 'pending' AND next_sync_at <= now()
                    ORDER BY next_sync_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [limit, leaseMs],
    );
    return r.rows;
  },

  async list(db: Queryable, merchantId: string, testMode: boolean, limit: number, f: RefundFilter): Promise<RefundRow[]> {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    const where: string[] = [];
    if (f.paymentId) {
      params.push(f.paymentId);
      where.push(`payment_id = $${params.length}`);
    }
    if (f.status) {
      params.push(f.status);
      where.push(`status = $${params.length}`);
    }
    if (f.after) {
      params.push(f.after.createdAt, f.after.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    const r = await db.query<RefundRow>(
      `SELECT * FROM refunds WHERE merchant_id = $1 AND test_mode = $2 ${where.map((w) => `AND ${w}`).join(' ')}
       ORDER BY created_at DESC, id DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },
};
