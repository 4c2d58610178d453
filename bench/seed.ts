/**
 * Bench data: a merchant with a sandbox connector account (through the gateway's own services),
 * then captured payments inserted in bulk with SQL, each exactly as the gateway would have left
 * it after an automatic-capture payment: status `succeeded`, `amount_captured` = amount, an
 * authorization and a capture transaction, and a balanced capture booking in the ledger (so
 * `ledger verify` holds). The `payment.succeeded` outbox events are not written: nothing reads
 * them here and no invariant involves them.
 *
 * Connector refs have the sandbox's self-describing shape (`sbx_pay_<amount>_USD_visa_<random>`),
 * so the gateway's in-process sandbox PSP rebuilds any of them as captured on first use.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { createRuntime } from '../src/bootstrap.js';
import { loadConfig } from '../src/config.js';
import type { Db } from '../src/db/db.js';
import { createLogger } from '../src/lib/logger.js';
import { verifyLedger } from '../src/modules/ledger/ledger.verify.js';
import { createDatabaseOn, type TempDatabase } from '../test/helpers/databases.js';
import { ADMIN_KEY, ENCRYPTION_KEY } from './processes.js';

export interface BenchMerchant {
  merchantId: string;
  key: string;
  account: { id: string; short_id: string };
}

/**
 * Migrates `db` and creates the bench merchant through the services the gateway uses. `settings`
 * go to its sandbox connector account (`base_url`: a psp-sim over HTTP instead of the in-process PSP).
 */
export async function createMerchant(db: Db, dataDir: string, settings?: Record<string, unknown>): Promise<BenchMerchant> {
  const config = loadConfig({ SETTLE_DATA_DIR: dataDir, SETTLE_ADMIN_KEY: ADMIN_KEY, SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY, LOG_LEVEL: 'silent' });
  const rt = await createRuntime(config, createLogger('silent'), { db });
  const { merchant, keys } = await rt.services.merchants.create('Bench Merchant');
  const account = await rt.services.connectorAccounts.create({ merchantId: merchant.id, testMode: true, keyPrefix: '' }, { connector: 'sandbox', name: 'bench', ...(settings ? { settings } : {}) });
  return { merchantId: merchant.id, key: keys.test, account: { id: account.id, short_id: account.short_id } };
}

export const paymentId = (tag: string, i: number) => `pay_${tag}${String(i).padStart(9, '0')}`;
export const paymentRef = (id: string, amount: number) => `sbx_pay_${amount}_USD_visa_${createHash('md5').update(id).digest('hex').slice(0, 12)}`;

const SEEDED_TABLES = ['payments', 'payment_transactions', 'ledger_transactions', 'ledger_entries'];

/**
 * Inserts payments `tag` number `from`..`to` (inclusive), each captured for `amount`, in chunks.
 * With `bulk`, the seeded tables' secondary indexes (those not backing a constraint) are dropped
 * first and rebuilt afterwards from their own definitions, which is several times faster for a
 * million rows; the schema ends exactly as the migration made it.
 */
export async function seedPayments(db: Db | string, m: BenchMerchant, tag: string, from: number, to: number, amount: number, bulk = false): Promise<void> {
  let client: pg.Client | undefined;
  let q: { query: (sql: string, params?: unknown[]) => Promise<unknown> };
  if (typeof db === 'string') {
    client = new pg.Client({ connectionString: db });
    await client.connect();
    // the seed is rebuilt on every run: nothing is lost if the server crashes meanwhile
    await client.query('SET synchronous_commit = off');
    await client.query(`SET maintenance_work_mem = '256MB'`);
    // The rows are consistent by construction (merchant, account and payment exist before what
    // references them); skipping the per-row foreign-key triggers makes the seed several times
    // faster. Needs a superuser, as the bench's own server has; otherwise they simply run.
    await client.query(`SET session_replication_role = replica`).catch(() => {});
    q = client;
  } else {
    q = db;
  }
  let indexes: { indexname: string; indexdef: string }[] = [];
  try {
    if (bulk && client) {
      indexes = (await client.query<{ indexname: string; indexdef: string }>(
        `SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = 'public' AND i.tablename = ANY ($1::text[])
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)`,
        [SEEDED_TABLES],
      )).rows;
      for (const ix of indexes) await client.query(`DROP INDEX ${pg.escapeIdentifier(ix.indexname)}`);
    }
    await insertChunks(q, m, tag, from, to, amount);
  } finally {
    for (const ix of indexes) await client!.query(ix.indexdef);
    await client?.end();
  }
}

async function insertChunks(q: { query: (sql: string, params?: unknown[]) => Promise<unknown> }, m: BenchMerchant, tag: string, from: number, to: number, amount: number) {
  const CHUNK = 50_000;
  for (let start = from; start <= to; start += CHUNK) {
    const end = Math.min(to, start + CHUNK - 1);
    await q.query(
      `WITH g AS (
         SELECT $1 || lpad(i::text, 9, '0') AS id FROM generate_series($2::int, $3::int) AS i
       ), p AS (
         INSERT INTO payments (id, merchant_id, test_mode, amount, currency, status, capture_method, amount_capturable,
           amount_captured, connector, connector_account_id, connector_account_short_id, connector_ref, payment_method, processing_since)
         SELECT id, $4, true, $5::bigint, 'USD', 'succeeded', 'automatic', 0, $5::bigint, 'sandbox', $6::uuid, $7,
           'sbx_pay_' || $5::bigint || '_USD_visa_' || substr(md5(id), 1, 12), 'pm_card_visa', NULL
         FROM g
         RETURNING id, connector_ref
       ), pt AS (
         INSERT INTO payment_transactions (id, payment_id, type, amount, status, connector_ref)
         SELECT 'txn_' || left(t.type, 1) || substr(p.id, 5), p.id, t.type, $5::bigint, 'succeeded', p.connector_ref
         FROM p, (VALUES ('authorization'), ('capture')) AS t(type)
       ), lt AS (
         INSERT INTO ledger_transactions (id, merchant_id, test_mode, type, payment_id, refund_id, currency)
         SELECT 'txn_l' || substr(p.id, 5), $4, true, 'capture', p.id, NULL, 'USD' FROM p
         RETURNING id
       )
       INSERT INTO ledger_entries (transaction_id, merchant_id, test_mode, account, direction, amount, currency)
       SELECT lt.id, $4, true, e.account, e.direction, $5::bigint, 'USD'
       FROM lt, (VALUES ($8::text, 'debit'), ('merchant_balance', 'credit')) AS e(account, direction)`,
      [`pay_${tag}`, start, end, m.merchantId, amount, m.account.id, m.account.short_id, `connector_clearing:${m.account.short_id}`],
    );
  }
}

// ------------------------------------------------------------------ databases

export const BENCH_DATABASE_URL = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export const createTempDatabase = (label: string): Promise<TempDatabase> => createDatabaseOn(BENCH_DATABASE_URL, `settle_bench_${label}_`);

// ------------------------------------------------------------------ correctness

export interface Correctness {
  ok: boolean;
  /** `settle ledger verify`'s own checks. */
  ledgerViolations: string[];
  /** Payments whose non-failed refunds exceed what was captured. */
  overRefunded: number;
  /** Succeeded refunds without exactly one refund booking. */
  bookingMismatches: number;
  refunds: { succeeded: number; pending: number; failed: number };
  bookings: number;
  ms: number;
}

/** Ledger verify, refund totals ≤ captured, one booking per refund. */
export async function checkCorrectness(db: Db): Promise<Correctness> {
  const t0 = Date.now();
  const { violations } = await verifyLedger(db);
  const over = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (
       SELECT p.id FROM payments p JOIN refunds r ON r.payment_id = p.id AND r.status <> 'failed'
       GROUP BY p.id, p.amount_captured HAVING sum(r.amount) > p.amount_captured) x`,
  );
  const mismatched = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM refunds r
     WHERE r.status = 'succeeded'
       AND (SELECT count(*) FROM ledger_transactions t WHERE t.refund_id = r.id AND t.type = 'refund') <> 1`,
  );
  const counts = await db.query<{ succeeded: number; pending: number; failed: number; bookings: number }>(
    `SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE status = 'pending')::int AS pending,
            count(*) FILTER (WHERE status = 'failed')::int AS failed,
            (SELECT count(*) FROM ledger_transactions WHERE type = 'refund')::int AS bookings
     FROM refunds`,
  );
  const c = counts.rows[0];
  const result: Correctness = {
    ok: false,
    ledgerViolations: violations.map((v) => `${v.check}: ${v.detail}`),
    overRefunded: over.rows[0].n,
    bookingMismatches: mismatched.rows[0].n,
    refunds: { succeeded: c.succeeded, pending: c.pending, failed: c.failed },
    bookings: c.bookings,
    ms: Date.now() - t0,
  };
  result.ok = result.ledgerViolations.length === 0 && result.overRefunded === 0 && result.bookingMismatches === 0 && c.bookings === c.succeeded;
  return result;
}
