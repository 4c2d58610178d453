/**
 * Payments left in `processing` (the PSP's answer to the authorization was lost, or the process
 * died before it came) are found by the recovery pass through the `payments_processing` index and
 * authorized again under the same PSP key. On both databases: the pass recovers such a payment,
 * leaves the others alone, and clears what a process of the previous release left set. On
 * PostgreSQL: the pass reads the index, not every payment, and no index of `payments` reads a
 * column a refund changes (its payment update stays heap-only).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { paymentsRepository } from '../../src/modules/payments/payments.repository.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { controlledSandbox } from '../helpers/controlled-sandbox.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';
import { planOf, prepare, scans, statementOf } from '../helpers/plans.js';

const processingSince = async (h: Harness, id: string) =>
  (await h.db.query<{ processing_since: Date | null; status: string }>('SELECT processing_since, status FROM payments WHERE id = $1', [id])).rows[0];

for (const backend of ['pglite', 'postgres'] as const) {
  describe(`payment recovery (${backend})`, () => {
    const psp = new SandboxPsp();
    const { control, connectors } = controlledSandbox(psp);
    let h: Harness | undefined;
    before(async (t) => {
      if (backend === 'postgres' && !(await postgresOrSkip(t as never))) return;
      h = await createHarness(backend, { connectors });
    });
    after(async () => {
      await h?.close();
      psp.dispose();
    });

    test('a payment whose authorization answer was lost is authorized again by the recovery pass', async (t) => {
      if (!h) return t.skip('no postgres');
      const done = await pay(h, { amount: 2_000 });
      assert.equal((await processingSince(h, done.id)).processing_since, null, 'a payment that left processing is out of the index');

      control.loseNextAuthorizeAnswer = true;
      const lost = await h.call('POST', '/v1/payments', { key: h.merchant.testKey, body: { amount: 3_000, currency: 'USD', payment_method: 'pm_card_visa' } });
      assert.equal(lost.status, 502, lost.raw);
      const id = lost.body.error.payment_id as string;
      const stuck = await processingSince(h, id);
      assert.equal(stuck.status, 'processing');
      assert.ok(stuck.processing_since instanceof Date, 'a new payment starts with processing_since');

      // not yet old enough: left alone
      await h.rt.services.payments.recoverProcessing(60_000);
      assert.equal((await processingSince(h, id)).status, 'processing');

      await h.rt.services.payments.recoverProcessing(0);
      const recovered = await processingSince(h, id);
      assert.equal(recovered.status, 'succeeded');
      assert.equal(recovered.processing_since, null);
      const shown = await h.call('GET', `/v1/payments/${id}`, { key: h.merchant.testKey });
      assert.equal(shown.body.amount_captured, psp.totals(shown.body.connector_ref).amount_captured, 'booked as the PSP did it');
    });

    test('a refund leaves its payment out of the index; a leftover of the previous release is cleared and not authorized again', async (t) => {
      if (!h) return t.skip('no postgres');
      const p = await pay(h, { amount: 5_000 });
      assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: h.merchant.testKey, body: { amount: 1_000 } })).status, 201);
      assert.equal((await processingSince(h, p.id)).processing_since, null);

      // a process of the previous release moves a payment on without clearing the column
      await h.db.query("UPDATE payments SET processing_since = created_at WHERE id = $1", [p.id]);
      const before = await h.call('GET', `/v1/payments/${p.id}`, { key: h.merchant.testKey });
      await h.rt.services.payments.recoverProcessing(0);
      const after = await processingSince(h, p.id);
      assert.equal(after.processing_since, null);
      assert.equal(after.status, 'partially_refunded');
      assert.deepEqual((await h.call('GET', `/v1/payments/${p.id}`, { key: h.merchant.testKey })).body, before.body, 'nothing else changed');
    });
  });
}

describe('payments_processing on PostgreSQL', () => {
  let h: Harness | undefined;
  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    h = await createHarness('postgres');
  });
  after(async () => h?.close());

  test('the recovery pass reads the processing payments through their index, not every payment', async (t) => {
    if (!h) return t.skip('no postgres');
    // a table as a busy gateway has it: many payments, none processing
    const p = await pay(h, { amount: 1_000 });
    await h.db.query(
      `INSERT INTO payments (id, merchant_id, test_mode, amount, currency, status, capture_method, amount_capturable, amount_captured,
         connector, connector_account_id, connector_account_short_id, payment_method, metadata, line_items, processing_since)
       SELECT 'pay_seed' || i, merchant_id, test_mode, amount, currency, 'succeeded', capture_method, 0, amount, connector,
         connector_account_id, connector_account_short_id, payment_method, metadata, line_items, NULL
         FROM payments, generate_series(1, 20000) AS i WHERE id = $1`, [p.id]);
    await h.db.query('ANALYZE payments');

    const stmt = await statementOf((db) => paymentsRepository.staleProcessing(db, 0, 20));
    const c = new pg.Client({ connectionString: h.dbUrl });
    await c.connect();
    try {
      for (const mode of ['force_custom_plan', 'force_generic_plan'] as const) {
        const plan = await planOf(c, await prepare(c, 'stale', stmt, mode));
        const onPayments = scans(plan).filter((n) => n['Relation Name'] === 'payments');
        assert.ok(onPayments.length > 0);
        for (const n of onPayments) {
          assert.notEqual(n['Node Type'], 'Seq Scan', `${mode}: ${JSON.stringify(plan)}`);
          assert.equal(n['Index Name'], 'payments_processing', `${mode}: ${JSON.stringify(plan)}`);
        }
      }
    } finally {
      await c.end();
    }
  });

  test('no index of payments reads a column that a refund changes', async (t) => {
    if (!h) return t.skip('no postgres');
    // what the refund path writes back to its payment (paymentUpdateSql), apart from unchanged values
    const refundChanges = ['status', 'amount_refunded', 'amount_refund_pending', 'line_items', 'updated_at'];
    const indexes = await h.db.query<{ name: string; def: string }>(
      "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = 'payments'::regclass");
    assert.ok(indexes.rows.some((i) => i.name === 'payments_processing'));
    for (const { name, def } of indexes.rows) {
      const read = refundChanges.filter((col) => new RegExp(`\\b${col}\\b`).test(def.replace(/^.*? USING \w+ /, '')));
      assert.deepEqual(read, [], `${name} (${def}) reads ${read.join(', ')}: a refund's payment update could no longer be heap-only`);
    }
  });
});
