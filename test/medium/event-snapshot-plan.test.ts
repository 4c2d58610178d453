/**
 * The event snapshot of a payment (its newest transactions) must cost the same for the 1,000th
 * refund as for the 1st. A prepared statement runs on a generic plan after a few executions,
 * made without the payment id; the plan must still read only the newest rows from the index.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { paymentsRepository } from '../../src/modules/payments/payments.repository.js';
import { EVENT_TRANSACTIONS_LIMIT } from '../../src/modules/payments/payments.service.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';
import { planOf, prepare, scans, statementOf } from '../helpers/plans.js';

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

    const stmt = await statementOf((db) => paymentsRepository.transactions(db, [p.id], EVENT_TRANSACTIONS_LIMIT));
    const c = new pg.Client({ connectionString: h.dbUrl });
    await c.connect();
    try {
      const execute = await prepare(c, 'snapshot', stmt, 'force_generic_plan');
      const plan = await planOf(c, execute, { analyze: true });
      const refundScans = scans(plan).filter((n) => n['Relation Name'] === 'refunds');
      assert.equal(refundScans.length, 1);
      const read = refundScans[0]['Actual Rows'];
      assert.ok(read !== undefined && read <= EVENT_TRANSACTIONS_LIMIT,
        `the refunds scan read ${read} of the payment's ${refunds} refunds`);
      const rows = await c.query<{ refund_id: string | null }>(execute);
      assert.equal(rows.rowCount, EVENT_TRANSACTIONS_LIMIT);
      const newest = await c.query<{ id: string }>('SELECT id FROM refunds WHERE payment_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1', [p.id]);
      assert.equal(rows.rows.at(-1)!.refund_id, newest.rows[0].id, 'the newest refund is the last entry');
    } finally {
      await c.end();
    }
  });
});
