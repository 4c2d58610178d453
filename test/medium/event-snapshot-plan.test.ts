/**
 * The event snapshot of a payment (its newest transactions) must cost the same for the 1,000th
 * refund as for the 1st. A prepared statement runs on a generic plan after a few executions,
 * made without the payment id; the plan must still read only the newest rows from the index.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Queryable, QueryResult } from '../../src/db/db.js';
import { paymentsRepository } from '../../src/modules/payments/payments.repository.js';
import { EVENT_TRANSACTIONS_LIMIT } from '../../src/modules/payments/payments.service.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';
import { scans, type PlanNode } from '../helpers/plans.js';

describe('event snapshot on PostgreSQL', () => {
  let h: Harness | undefined;
  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    h = await createHarness('postgres');
  });
  after(async () => h?.close());

  test('a generic plan reads only the newest transactions of a payment with many refunds', async (t) => {
    if (!h) return t.skip('no postgres');
    // statistics as a busy database has them: many payments with one refund each
    for (let i = 0; i < 60; i++) {
      const q = await pay(h, { amount: 1000 });
      assert.equal((await h.call('POST', `/v1/payments/${q.id}/refunds`, { key: h.merchant.testKey, body: {} })).status, 201);
    }
    await h.db.query('ANALYZE');
    const p = await pay(h, { amount: 1_000_000 });
    const refunds = 300;
    for (let i = 0; i < refunds; i++) {
      assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: h.merchant.testKey, body: { amount: 10 } })).status, 201);
    }

    // the statement exactly as the gateway sends it
    let sent: { sql: string; params: readonly unknown[] } | undefined;
    const capture: Queryable = {
      async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
        sent = { sql, params };
        return { rows: [], rowCount: 0 };
      },
    };
    await paymentsRepository.transactions(capture, [p.id], EVENT_TRANSACTIONS_LIMIT);
    assert.ok(sent);

    const c = new pg.Client({ connectionString: h.dbUrl });
    await c.connect();
    try {
      await c.query('SET plan_cache_mode = force_generic_plan');
      await c.query(`PREPARE snapshot AS ${sent.sql}`);
      const args = sent.params.map((v) => (typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`)).join(', ');
      const explained = await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE snapshot(${args})`);
      const refundScans = scans(explained.rows[0]['QUERY PLAN'][0].Plan).filter((n) => n['Relation Name'] === 'refunds');
      assert.equal(refundScans.length, 1);
      const read = refundScans[0]['Actual Rows'];
      assert.ok(read !== undefined && read <= EVENT_TRANSACTIONS_LIMIT,
        `the refunds scan read ${read} of the payment's ${refunds} refunds`);
      const rows = await c.query<{ refund_id: string | null }>(`EXECUTE snapshot(${args})`);
      assert.equal(rows.rowCount, EVENT_TRANSACTIONS_LIMIT);
      const newest = await c.query<{ id: string }>('SELECT id FROM refunds WHERE payment_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1', [p.id]);
      assert.equal(rows.rows.at(-1)!.refund_id, newest.rows[0].id, 'the newest refund is the last entry');
    } finally {
      await c.end();
    }
  });
});
