/**
 * The money paths at their edges, on PostgreSQL (real row locks): connector-reported refunds at
 * and past the refundable balance, failed and pending ones, reversals, line items, captures that
 * race or find their payment changed under the lock, and an idempotency key whose takeover is
 * lost. Each test names the behaviour a mutation of the code would break (test/mutation).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Db } from '../../src/db/db.js';
import { AppError } from '../../src/http/errors.js';
import { SecretBox } from '../../src/lib/crypto.js';
import { createLogger } from '../../src/lib/logger.js';
import { IdempotencyService } from '../../src/modules/idempotency/idempotency.service.js';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { paymentsRepository } from '../../src/modules/payments/payments.repository.js';
import { PaymentsService } from '../../src/modules/payments/payments.service.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { controlledSandbox } from '../helpers/controlled-sandbox.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';

/** `db` whose statements matching `pattern` first wait for `gate()`, inside its transactions too. */
function gatedOn(db: Db, pattern: RegExp, gate: () => Promise<void>): Db {
  const wrap = <T extends object>(handle: T): T => new Proxy(handle, {
    get(target, prop) {
      if (prop === 'transaction') {
        return (fn: (tx: unknown) => Promise<unknown>) => (target as unknown as Db).transaction((tx) => fn(wrap(tx)));
      }
      if (prop === 'query') {
        return async (sql: string, params?: unknown[]) => {
          if (pattern.test(sql)) await gate();
          return (target as unknown as Db).query(sql, params as never);
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return wrap(db);
}

/** `db` with every statement matching `pattern` held until `count` of them have arrived. */
function barrierOn(db: Db, pattern: RegExp, count: number): Db {
  let arrived = 0;
  let open = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return gatedOn(db, pattern, () => {
    arrived += 1;
    if (arrived >= count) open();
    return opened;
  });
}

describe('money paths at their edges (PostgreSQL)', () => {
  const psp = new SandboxPsp();
  const { control, connectors } = controlledSandbox(psp);
  let h: Harness;
  let skip = false;

  before(async (t) => {
    skip = !(await postgresOrSkip(t as never));
    if (!skip) h = await createHarness('postgres', { connectors, env: { SETTLE_REFUND_SYNC_BASE_MS: '60000' } });
  });
  after(async () => {
    await h?.close();
    psp.dispose();
  });

  const key = () => h.merchant.testKey;
  const payment = async (id: string) => (await h.call('GET', `/v1/payments/${id}`, { key: key() })).body;
  const refundsOf = async (id: string) => (await h.call('GET', `/v1/refunds?payment_id=${id}&limit=100`, { key: key() })).body.data;
  const ledger = async (paymentId: string) =>
    (await h.db.query<{ type: string; refund_id: string | null; account: string; direction: string; amount: string }>(
      `SELECT t.type, t.refund_id, e.account, e.direction, e.amount FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE t.payment_id = $1 ORDER BY t.created_at, e.direction`, [paymentId])).rows.map((r) => ({ ...r, amount: Number(r.amount) }));
  const events = async (objectId: string) =>
    (await h.db.query<{ type: string }>('SELECT type FROM events WHERE object_id = $1 ORDER BY created_at, id', [objectId])).rows.map((r) => r.type);
  /** Records a connector-reported refund as the inbound path does: in a transaction holding the payment's lock. */
  const report = (paymentId: string, r: Parameters<Harness['rt']['services']['refunds']['recordConnectorRefund']>[2]) =>
    h.db.transaction(async (tx) => {
      const p = (await paymentsRepository.findById(tx, paymentId, true))!;
      return h.rt.services.refunds.recordConnectorRefund(tx, p, r);
    });

  describe('connector-reported refunds', () => {
    it('a report larger than the refundable balance is refused with no_room and writes nothing', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000 });
      assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 3000 } })).body.status, 'succeeded');
      const before = await payment(p.id);
      assert.equal(await report(p.id, { connectorRef: 'psp_re_too_big', amount: 7001, status: 'succeeded' }), 'no_room');
      assert.equal(await report(p.id, { connectorRef: 'psp_re_too_big_pending', amount: 7001, status: 'pending' }), 'no_room');
      const after = await payment(p.id);
      assert.deepEqual([after.amount_refunded, after.amount_refundable, after.status], [before.amount_refunded, before.amount_refundable, before.status]);
      assert.equal((await refundsOf(p.id)).length, 1, 'no refund row for a report that does not fit');
      assert.equal((await ledger(p.id)).filter((e) => e.type === 'refund').length, 2, 'only the API refund is booked (two entries)');
    });

    it('a succeeded report exactly equal to the refundable balance is recorded, booked, and refunds the payment fully', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000 });
      assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 2500 } })).body.status, 'succeeded');
      const view = await report(p.id, { connectorRef: 'psp_re_exact', amount: 7500, status: 'succeeded' });
      assert.notEqual(view, 'no_room');
      if (view === 'no_room') return;
      assert.deepEqual([view.status, view.source, view.amount, view.connector_ref], ['succeeded', 'connector', 7500, 'psp_re_exact']);
      assert.deepEqual([view.payment.amount_refunded, view.payment.amount_refundable, view.payment.status], [10_000, 0, 'refunded']);
      const g = await payment(p.id);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [10_000, 0, 'refunded']);
      const booked = (await ledger(p.id)).filter((e) => e.refund_id === view.id);
      assert.deepEqual(booked.map((e) => [e.type, e.account, e.direction, e.amount]).sort(), [
        ['refund', 'merchant_balance', 'debit', 7500],
        ['refund', `connector_clearing:${p.connector_account_short_id}`, 'credit', 7500],
      ].sort());
      assert.deepEqual(await events(view.id), ['refund.created', 'refund.succeeded']);
    });

    it('a succeeded report leaves its transaction open: when that transaction rolls back, nothing of it stands', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 4000 });
      const before = await payment(p.id);
      const ledgerBefore = await ledger(p.id);
      await assert.rejects(h.db.transaction(async (tx) => {
        const locked = (await paymentsRepository.findById(tx, p.id, true))!;
        await h.rt.services.refunds.recordConnectorRefund(tx, locked, { connectorRef: 'sbx_re_dashboard_rolled_back', amount: 1500, status: 'succeeded' });
        throw new Error('the rest of the notification failed');
      }), /the rest of the notification failed/);
      assert.deepEqual(await refundsOf(p.id), []);
      assert.deepEqual(await payment(p.id), before);
      assert.deepEqual(await ledger(p.id), ledgerBefore);
    });

    it('a failed report is recorded failed with the default code and message, holding and booking nothing, even when larger than the balance', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000 });
      assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 6000 } })).body.status, 'succeeded');
      // a failed refund moved no money: it is recorded whatever its amount
      const view = await report(p.id, { connectorRef: 'psp_re_failed', amount: 9000, status: 'failed' });
      assert.notEqual(view, 'no_room');
      if (view === 'no_room') return;
      assert.deepEqual([view.status, view.source, view.amount, view.failure_code, view.failure_message],
        ['failed', 'connector', 9000, 'refund_failed', 'The payment service provider reported the refund as failed.']);
      const stored = await h.db.query<{ status: string; next_sync_at: Date | null }>('SELECT status, next_sync_at FROM refunds WHERE id = $1', [view.id]);
      assert.deepEqual([stored.rows[0].status, stored.rows[0].next_sync_at], ['failed', null], 'a failed refund is never picked up by the sync worker');
      const g = await payment(p.id);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [6000, 4000, 'partially_refunded']);
      assert.equal((await ledger(p.id)).filter((e) => e.refund_id === view.id).length, 0);
      assert.deepEqual(await events(view.id), ['refund.failed']);

      const coded = await report(p.id, { connectorRef: 'psp_re_failed_coded', amount: 100, status: 'failed', failureCode: 'bank_rejected', failureMessage: 'No.' });
      assert.notEqual(coded, 'no_room');
      if (coded !== 'no_room') assert.deepEqual([coded.failure_code, coded.failure_message], ['bank_rejected', 'No.']);
    });

    it('a pending report holds its amount without booking, and is booked once the PSP reports it succeeded', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000 });
      const view = await report(p.id, { connectorRef: 'psp_re_pending', amount: 4000, status: 'pending' });
      assert.notEqual(view, 'no_room');
      if (view === 'no_room') return;
      assert.deepEqual([view.status, view.source, view.failure_code, view.payment.amount_refundable], ['pending', 'connector', null, 6000]);
      let g = await payment(p.id);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [0, 6000, 'succeeded']);
      assert.equal((await ledger(p.id)).filter((e) => e.refund_id === view.id).length, 0, 'nothing booked while pending');
      assert.deepEqual(await events(view.id), ['refund.created']);
      // the held amount counts against the next report
      assert.equal(await report(p.id, { connectorRef: 'psp_re_after_pending', amount: 6001, status: 'succeeded' }), 'no_room');

      const done = await h.rt.services.refunds.finish(view, { status: 'succeeded', connectorRef: 'psp_re_pending' });
      assert.equal(done.status, 'succeeded');
      g = await payment(p.id);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [4000, 6000, 'partially_refunded']);
      assert.equal((await ledger(p.id)).filter((e) => e.refund_id === view.id).length, 2);
    });
  });

  describe('failures and reversals', () => {
    it('a failure report of a refund still pending fails it and releases its hold and line items, booking nothing', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const lines = [{ id: 'li_1', name: 'One', quantity: 1, unit_amount: 1000 }, { id: 'li_2', name: 'Two', quantity: 4, unit_amount: 500 }];
      const p = await pay(h, { amount: 3000, payment_method: 'pm_card_refund_pending', line_items: lines });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_2', quantity: 3 }] } });
      assert.deepEqual([r.body.status, r.body.amount], ['pending', 1500]);
      assert.deepEqual((await payment(p.id)).line_items.map((li: any) => li.quantity_refunded), [0, 3]);
      const failed = await h.rt.services.refunds.reverse(r.body.id, 'bank_rejected', 'rejected while pending');
      assert.deepEqual([failed.status, failed.failure_code], ['failed', 'bank_rejected']);
      const g = await payment(p.id);
      assert.deepEqual(g.line_items.map((li: any) => li.quantity_refunded), [0, 0]);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [0, 3000, 'succeeded']);
      assert.equal((await ledger(p.id)).filter((e) => e.refund_id === r.body.id).length, 0);
      // a second report of the same failure changes nothing
      const again = await h.rt.services.refunds.reverse(r.body.id, 'other_code', 'a later report');
      assert.deepEqual([again.status, again.failure_code], ['failed', 'bank_rejected']);
      assert.deepEqual(await events(r.body.id), ['refund.created', 'refund.failed']);
    });

    it('reversing a succeeded refund books one reversal, restores the amounts and the status, and releases only its own line quantities', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const lines = [{ id: 'li_a', name: 'A', quantity: 2, unit_amount: 1000 }, { id: 'li_b', name: 'B', quantity: 3, unit_amount: 2000 }];
      const p = await pay(h, { amount: 8000, line_items: lines });
      const first = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_a', quantity: 1 }, { id: 'li_b', quantity: 1 }] } });
      const second = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_b', quantity: 2 }] } });
      assert.deepEqual([first.body.amount, second.body.amount, second.body.status], [3000, 4000, 'succeeded']);
      assert.deepEqual((await payment(p.id)).line_items.map((li: any) => li.quantity_refunded), [1, 3]);

      // the bank rejects the refund days later: the PSP marks it failed and reports it, twice at once
      psp.failRefund(second.body.connector_ref);
      const [a, b] = await Promise.all([
        h.rt.services.refunds.reverse(second.body.id, 'bank_rejected', 'first report'),
        h.rt.services.refunds.reverse(second.body.id, 'bank_rejected', 'second report'),
      ]);
      assert.deepEqual([a.status, b.status], ['failed', 'failed']);
      const g = await payment(p.id);
      // the first refund's quantities stay refunded, on both lines
      assert.deepEqual(g.line_items.map((li: any) => li.quantity_refunded), [1, 1]);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [3000, 5000, 'partially_refunded']);
      const reversal = (await ledger(p.id)).filter((e) => e.refund_id === second.body.id && e.type === 'refund_reversal');
      assert.deepEqual(reversal.map((e) => [e.account, e.direction, e.amount]).sort(), [
        ['merchant_balance', 'credit', 4000],
        [`connector_clearing:${p.connector_account_short_id}`, 'debit', 4000],
      ].sort());
      // the released quantities can be refunded again
      const again = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_b', quantity: 2 }] } });
      assert.deepEqual([again.status, again.body.amount, again.body.status], [201, 4000, 'succeeded']);
    });

    it('reversing the only refund of a fully refunded payment brings it back to succeeded', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 5000 });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: {} });
      assert.equal((await payment(p.id)).status, 'refunded');
      const view = await h.rt.services.refunds.reverse(r.body.id, 'bank_rejected', 'late');
      assert.deepEqual([view.payment.status, view.payment.amount_refunded, view.payment.amount_refundable], ['succeeded', 0, 5000]);
      assert.equal((await payment(p.id)).status, 'succeeded');
    });
  });

  describe('refunds in flight', () => {
    it('settling the held refunds asks the PSP for each and answers how many are still pending', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const acct = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'slow refunds', settings: { pending_delay_ms: 3_600_000 } } });
      const p = await pay(h, { amount: 6000, payment_method: 'pm_card_refund_pending', connector_account: acct.body.id });
      const a = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1000 } });
      const b = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 2000 } });
      assert.deepEqual([a.body.status, b.body.status], ['pending', 'pending']);
      // another payment's pending refund is neither counted nor driven
      const other = await pay(h, { amount: 6000, payment_method: 'pm_card_refund_pending', connector_account: acct.body.id });
      assert.equal((await h.call('POST', `/v1/payments/${other.id}/refunds`, { key: key(), body: { amount: 500 } })).body.status, 'pending');
      const refundCalls = psp.stats().refund_calls;
      assert.equal(await h.rt.services.refunds.settleHeldRefunds(p.id), 2);
      psp.settlePending(p.connector_ref);
      assert.equal(await h.rt.services.refunds.settleHeldRefunds(p.id), 0);
      assert.equal(psp.stats().refund_calls, refundCalls + 4, 'asked about each of this payment\'s two refunds, twice');
      assert.deepEqual((await refundsOf(other.id)).map((r: any) => r.status), ['pending']);
      const g = await payment(p.id);
      assert.deepEqual([g.amount_refunded, g.amount_refundable, g.status], [3000, 3000, 'partially_refunded']);
      assert.deepEqual((await refundsOf(p.id)).map((r: any) => r.status), ['succeeded', 'succeeded']);
    });

    it('a pending refund whose connector account is gone is answered as it stands, not driven', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const acct = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'going away', settings: { pending_delay_ms: 3_600_000 } } });
      const p = await pay(h, { amount: 2000, payment_method: 'pm_card_refund_pending', connector_account: acct.body.id });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 700 } });
      assert.equal(r.body.status, 'pending');
      const row = (await h.db.query('SELECT * FROM refunds WHERE id = $1', [r.body.id])).rows[0] as never;
      // as the refund would be read once its account row is gone
      const view = await h.rt.services.refunds.drive({ ...(row as object), connector_account_id: 'ca_missing' } as never);
      assert.deepEqual([view.id, view.status, view.payment.amount_refundable], [r.body.id, 'pending', 1300]);
      // a refund no longer pending is answered from the database, the PSP is not asked
      const calls = psp.stats().refund_calls;
      const done = await h.rt.services.refunds.drive({ ...(row as object), status: 'succeeded' } as never);
      assert.equal(done.status, 'succeeded');
      assert.equal(psp.stats().refund_calls, calls);
    });

    it('the events of a refund carry the payment with this refund\'s transaction in its final state', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 2000 });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 800 } });
      const rows = await h.db.query<{ type: string; body: string }>(`SELECT type, body FROM events WHERE object_id = $1 AND type = 'payment.partially_refunded'`, [p.id]);
      assert.equal(rows.rows.length, 1);
      const obj = JSON.parse(rows.rows[0].body).data.object;
      const txn = obj.transactions.find((x: any) => x.refund_id === r.body.id);
      assert.deepEqual([txn.type, txn.amount, txn.status, txn.connector_ref], ['refund', 800, 'succeeded', r.body.connector_ref]);
      assert.deepEqual([obj.amount_refunded, obj.amount_refundable, obj.status], [800, 1200, 'partially_refunded']);
      const failing = await pay(h, { amount: 2000, payment_method: 'pm_card_refund_fails' });
      const f = await h.call('POST', `/v1/payments/${failing.id}/refunds`, { key: key(), body: { amount: 800 } });
      const fr = await h.db.query<{ body: string }>(`SELECT body FROM events WHERE object_id = $1 AND type = 'payment.refund_failed'`, [failing.id]);
      const fobj = JSON.parse(fr.rows[0].body).data.object;
      assert.equal(fobj.transactions.find((x: any) => x.refund_id === f.body.id).status, 'failed');
      assert.deepEqual([fobj.amount_refunded, fobj.amount_refundable], [0, 2000]);
    });
  });

  describe('line items', () => {
    it('refunds part of a line other than the first by its own unit amount, leaving the other lines alone', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const lines = [
        { id: 'li_x', name: 'X', quantity: 5, unit_amount: 100 },
        { id: 'li_y', name: 'Y', quantity: 2, unit_amount: 700 },
        { id: 'li_z', name: 'Z', quantity: 3, unit_amount: 1100 },
      ];
      const p = await pay(h, { amount: 500 + 1400 + 3300, line_items: lines });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_z', quantity: 2 }] } });
      assert.equal(r.status, 201, r.raw);
      assert.deepEqual([r.body.amount, r.body.line_items], [2200, [{ id: 'li_z', quantity: 2, amount: 2200 }]]);
      assert.deepEqual((await payment(p.id)).line_items.map((li: any) => li.quantity_refunded), [0, 0, 2]);
      const over = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_z', quantity: 2 }] } });
      assert.equal(over.status, 422);
      assert.equal(over.body.error.code, 'line_item_quantity_exceeded');
      assert.equal(over.body.error.param, 'line_items[0].quantity');
      const rest = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_y' }, { id: 'li_z' }] } });
      assert.deepEqual([rest.body.amount, rest.body.line_items.map((li: any) => li.quantity)], [1400 + 1100, [2, 1]]);
      assert.deepEqual((await payment(p.id)).line_items.map((li: any) => li.quantity_refunded), [0, 2, 3]);
    });

    it('an amount equal to the named lines\' total is taken; a line with nothing left is refused on its quantity, even unnamed', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const lines = [
        { id: 'li_a', name: 'A', quantity: 2, unit_amount: 400 },
        { id: 'li_b', name: 'B', quantity: 1, unit_amount: 900 },
      ];
      const p = await pay(h, { amount: 1700, line_items: lines });
      const exact = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 800, line_items: [{ id: 'li_a' }] } });
      assert.equal(exact.status, 201, exact.raw);
      assert.deepEqual([exact.body.amount, exact.body.line_items], [800, [{ id: 'li_a', quantity: 2, amount: 800 }]]);
      const above = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 901, line_items: [{ id: 'li_b' }] } });
      assert.deepEqual([above.status, above.body.error?.param], [400, 'amount'], above.raw);
      // li_a is all refunded: naming it again, with no quantity, asks for the 0 that is left
      const none = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_a' }] } });
      assert.deepEqual([none.status, none.body.error?.code, none.body.error?.param], [422, 'line_item_quantity_exceeded', 'line_items[0].quantity'], none.raw);
      assert.match(none.body.error.message, /has 0 of 2 left/);
      const g = await payment(p.id);
      assert.deepEqual([g.amount_refunded, g.line_items.map((li: any) => li.quantity_refunded)], [800, [2, 0]]);
    });
  });

  describe('refusals name their parameter', () => {
    it('a refund may name the payment\'s currency in any case; another currency is currency_mismatch on currency', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 3000 });
      const same = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1000, currency: 'usd' } });
      assert.deepEqual([same.status, same.body.amount, same.body.currency], [201, 1000, 'USD'], same.raw);
      const other = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1000, currency: 'EUR' } });
      assert.deepEqual([other.body.error?.code, other.body.error?.param], ['currency_mismatch', 'currency'], other.raw);
      assert.equal((await payment(p.id)).amount_refunded, 1000);
    });


    it('an unknown payment is payment_not_found on payment_id; an inactive originating account is connector_account_inactive on connector_account', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const missing = await h.call('POST', '/v1/payments/00000000-0000-4000-8000-000000000000/refunds', { key: key(), body: { amount: 100 } });
      assert.equal(missing.status, 404, missing.raw);
      assert.deepEqual([missing.body.error.code, missing.body.error.param], ['payment_not_found', 'payment_id']);

      const acct = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'to retire' } });
      assert.equal(acct.status, 201, acct.raw);
      const p = await pay(h, { amount: 2000, connector_account: acct.body.id });
      assert.equal(p.connector_account_id ?? acct.body.id, acct.body.id);
      const retired = await h.call('DELETE', `/v1/connector_accounts/${acct.body.id}`, { key: key() });
      assert.equal(retired.status, 200, retired.raw);
      const refused = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 100 } });
      assert.deepEqual([refused.status, refused.body.error.code, refused.body.error.param], [400, 'connector_account_inactive', 'connector_account']);
      assert.equal((await payment(p.id)).amount_refundable, 2000);
    });
  });

  describe('the service itself', () => {
    it('an empty line_items list is no line items: the refund takes the amount given, or the whole refundable balance', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const lines = [{ id: 'li_e', name: 'E', quantity: 2, unit_amount: 1500 }];
      const p = await pay(h, { amount: 3000, line_items: lines });
      const auth = { merchantId: h.merchant.id, testMode: true, keyPrefix: 'sk_test' };
      const part = await h.rt.services.refunds.create(auth, { payment_id: p.id, amount: 700, line_items: [] });
      assert.deepEqual([part.status, part.amount, part.line_items], ['succeeded', 700, []]);
      const rest = await h.rt.services.refunds.create(auth, { payment_id: p.id, line_items: [] });
      assert.deepEqual([rest.status, rest.amount], ['succeeded', 2300]);
      assert.deepEqual((await payment(p.id)).line_items.map((li: any) => li.quantity_refunded), [0]);
    });
  });

  describe('the payment in refund events', () => {
    /** The payment object of the newest event of `type` about the payment. */
    const paymentEvent = async (paymentId: string, type: string) => {
      const r = await h.db.query<{ body: string }>('SELECT body FROM events WHERE object_id = $1 AND type = $2 ORDER BY created_at DESC, id DESC LIMIT 1', [paymentId, type]);
      assert.equal(r.rows.length, 1, `no ${type} event for ${paymentId}`);
      return JSON.parse(r.rows[0].body).data.object;
    };

    it('a connector-reported refund: the event lists the payment\'s transactions, the refund\'s own entry as booked and the others as they were', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 9000 });
      const api = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1000 } });
      assert.equal(api.body.status, 'succeeded');
      const recorded = await report(p.id, { connectorRef: 'psp_re_dashboard_ev', amount: 2000, status: 'succeeded' });
      assert.notEqual(recorded, 'no_room');
      const object = await paymentEvent(p.id, 'payment.partially_refunded');
      assert.equal(object.amount_refunded, 3000);
      const byType = (type: string) => object.transactions.filter((x: any) => x.type === type);
      const capture = [...byType('capture'), ...byType('authorization')];
      assert.ok(capture.length >= 1, JSON.stringify(object.transactions));
      for (const c of capture) {
        assert.equal(c.connector_ref, p.connector_ref, 'a capture keeps its own reference');
        assert.notEqual(c.refund_id ?? null, api.body.id);
      }
      const refunds = byType('refund');
      assert.deepEqual(refunds.map((x: any) => [x.amount, x.status, x.connector_ref]).sort(), [
        [1000, 'succeeded', api.body.connector_ref],
        [2000, 'succeeded', 'psp_re_dashboard_ev'],
      ].sort());
    });

    it('a pending refund that fails: the event shows it failed and every other transaction with its own status', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 4000, payment_method: 'pm_card_refund_pending' });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1500 } });
      assert.equal(r.body.status, 'pending');
      await h.rt.services.refunds.reverse(r.body.id, 'bank_rejected', 'rejected while pending');
      const object = await paymentEvent(p.id, 'payment.refund_failed');
      const mine = object.transactions.filter((x: any) => x.refund_id === r.body.id);
      assert.deepEqual(mine.map((x: any) => x.status), ['failed']);
      const others = object.transactions.filter((x: any) => x.refund_id !== r.body.id);
      assert.ok(others.length >= 1, JSON.stringify(object.transactions));
      for (const x of others) assert.equal(x.status, 'succeeded', `the ${x.type} keeps its own status`);
    });
  });

  describe('captures', () => {
    it('a payment that is not waiting for a capture (captured already, or canceled) is refused with not_capturable before the PSP is asked', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const auto = await pay(h, { amount: 3000 });
      assert.equal(auto.status, 'succeeded');
      const manual = await pay(h, { amount: 3000, capture_method: 'manual' });
      assert.equal((await h.call('POST', `/v1/payments/${manual.id}/cancel`, { key: key() })).status, 200);
      const calls = control.captureCalls;
      for (const [p, status] of [[auto, 'succeeded'], [manual, 'canceled']] as const) {
        for (const body of [{}, { amount: 1000 }]) {
          const r = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body });
          assert.deepEqual([r.status, r.body.error?.code], [409, 'not_capturable'], r.raw);
          assert.match(r.body.error.message, new RegExp(`its status is ${status}`));
        }
      }
      assert.equal(control.captureCalls, calls, 'the PSP was never asked');
      assert.deepEqual((await ledger(auto.id)).map((e) => [e.type, e.amount]), [['capture', 3000], ['capture', 3000]]);
      assert.equal((await ledger(manual.id)).length, 0);
    });

    it('two concurrent captures of the same amount both answer it, and it is captured and booked once', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000, capture_method: 'manual' });
      control.holdCapturesUntil = 2;
      control.arrived = 0;
      try {
        const [a, b] = await Promise.all([
          h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 7000 } }),
          h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 7000 } }),
        ]);
        assert.deepEqual([a.status, b.status], [200, 200], `${a.raw} ${b.raw}`);
        assert.deepEqual([a.body.amount_captured, b.body.amount_captured], [7000, 7000]);
        assert.deepEqual([a.body.status, b.body.status], ['succeeded', 'succeeded']);
      } finally {
        control.holdCapturesUntil = 0;
      }
      const g = await payment(p.id);
      assert.deepEqual([g.amount_captured, g.amount_capturable, g.amount_refundable], [7000, 0, 7000]);
      assert.equal(g.transactions.filter((x: any) => x.type === 'capture').length, 1);
      assert.deepEqual((await ledger(p.id)).map((e) => [e.type, e.direction, e.amount]), [['capture', 'credit', 7000], ['capture', 'debit', 7000]]);
      assert.equal(psp.totals(p.connector_ref).amount_captured, 7000);
      assert.deepEqual((await events(p.id)).filter((e) => e === 'payment.captured'), ['payment.captured']);
    });

    it('a capture that finds the payment captured meanwhile asks under the same PSP key (a succeeded capture is no failed attempt), and answers what was captured', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 8000, capture_method: 'manual' });
      // the second capture has read its payment (requires_capture) but reads its captures only after the first one is booked
      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      const held = gatedOn(h.db, /FROM payment_transactions WHERE payment_id = \$1 AND type = 'capture'/, () => released);
      const late = new PaymentsService(held, h.rt.services.connectorAccounts, createLogger('silent'));
      const keysBefore = control.captureKeys.length;
      const second = late.capture({ merchantId: h.merchant.id, testMode: true, keyPrefix: 'sk_test' }, p.id, 8000);
      await new Promise((r) => setTimeout(r, 50));
      const first = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 8000 } });
      assert.equal(first.status, 200, first.raw);
      release();
      const answer = await second;
      assert.deepEqual([answer.status, answer.amount_captured], ['succeeded', 8000]);
      assert.deepEqual(control.captureKeys.slice(keysBefore), [`settle_capture_${p.id}`, `settle_capture_${p.id}`]);
      assert.deepEqual((await ledger(p.id)).map((e) => [e.type, e.amount]), [['capture', 8000], ['capture', 8000]], 'booked once');
    });

    it('a capture whose payment was canceled while the PSP answered is refused under the row lock and books nothing', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000, capture_method: 'manual' });
      let release = () => {};
      control.holdOneCapture = new Promise<void>((resolve) => (release = resolve));
      control.fakeCancel = true;
      try {
        const capturing = h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 4000 } });
        // the capture has reached the PSP; its answer is on its way while a cancel goes through
        for (let i = 0; i < 500 && psp.totals(p.connector_ref).amount_captured === 0; i++) await new Promise((r) => setTimeout(r, 10));
        const cancel = await h.call('POST', `/v1/payments/${p.id}/cancel`, { key: key() });
        assert.equal(cancel.status, 200, cancel.raw);
        release();
        const res = await capturing;
        assert.equal(res.status, 409, res.raw);
        assert.equal(res.body.error.code, 'not_capturable');
        assert.match(res.body.error.message, /its status is canceled/);
      } finally {
        control.fakeCancel = false;
        release();
      }
      const g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured], ['canceled', 0]);
      assert.deepEqual(await ledger(p.id), []);
    });

    it('a capture of the whole authorization by default, and one above it refused before the PSP is asked', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 6000, capture_method: 'manual' });
      const over = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 6001 } });
      assert.deepEqual([over.status, over.body.error.code, over.body.error.param], [422, 'amount_too_large', 'amount']);
      assert.equal(psp.totals(p.connector_ref).amount_captured, 0);
      const all = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: {} });
      assert.equal(all.status, 200, all.raw);
      assert.deepEqual([all.body.amount_captured, all.body.amount_capturable, all.body.amount_refundable], [6000, 0, 6000]);
      assert.deepEqual((await ledger(p.id)).map((e) => [e.account, e.direction, e.amount]).sort(), [
        ['merchant_balance', 'credit', 6000],
        [`connector_clearing:${p.connector_account_short_id}`, 'debit', 6000],
      ].sort());
    });
  });

  describe('capture corrections (what the PSP captured)', () => {
    const correct = (id: string, c: Parameters<Harness['rt']['services']['payments']['correctCapture']>[1]) => h.rt.services.payments.correctCapture(id, c);

    it('two corrections of one payment at once: one corrects, the other waits for its row lock and finds it done; one adjustment is booked', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 10_000 });
      // both read the payment at the same moment: only its row lock keeps the second from
      // superseding the capture the first is superseding
      const racing = new PaymentsService(barrierOn(h.db, /^SELECT \* FROM payments WHERE id = \$1/, 2), h.rt.services.connectorAccounts, createLogger('silent'));
      const results = await Promise.all([
        racing.correctCapture(p.id, { kind: 'psp_amount', captured: 6000, pspStatus: 'captured' }),
        racing.correctCapture(p.id, { kind: 'psp_amount', captured: 6000, pspStatus: 'captured' }),
      ]);
      assert.deepEqual(results.map((r) => r.outcome).sort(), ['corrected', 'unchanged']);
      const g = await payment(p.id);
      assert.deepEqual([g.amount_captured, g.amount_refundable, g.status], [6000, 6000, 'succeeded']);
      const adjustments = (await ledger(p.id)).filter((e) => e.type === 'capture_adjustment');
      assert.deepEqual(adjustments.map((e) => [e.account, e.direction, e.amount]).sort(), [
        ['merchant_balance', 'debit', 4000],
        [`connector_clearing:${p.connector_account_short_id}`, 'credit', 4000],
      ].sort());
      const captures = g.transactions.filter((x: any) => x.type === 'capture');
      assert.deepEqual(captures.map((x: any) => [x.amount, x.status]).sort(), [[10_000, 'failed'], [6000, 'succeeded']].sort());
    });

    it('refuses what would invent money or cannot be this payment\'s, writing nothing', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 5000 });
      const before = await payment(p.id);
      const ledgerBefore = await ledger(p.id);
      // more than the payment's amount
      const over = await correct(p.id, { kind: 'psp_amount', captured: 5001, pspStatus: 'captured' });
      assert.equal(over.outcome, 'refused');
      assert.match((over as { reason: string }).reason, /more than the payment's amount of 5000/);
      // nothing captured at the PSP, and its payment is not open for a capture: not back to requires_capture
      const canceled = await correct(p.id, { kind: 'psp_amount', captured: 0, pspStatus: 'canceled' });
      assert.equal(canceled.outcome, 'refused');
      assert.match((canceled as { reason: string }).reason, /nothing is captured .* canceled, not authorized/);
      assert.deepEqual(await payment(p.id), before);
      assert.deepEqual(await ledger(p.id), ledgerBefore);

      // a payment with no capture booked
      const manual = await pay(h, { amount: 5000, capture_method: 'manual' });
      const none = await correct(manual.id, { kind: 'psp_amount', captured: 3000, pspStatus: 'captured' });
      assert.equal(none.outcome, 'refused');
      assert.match((none as { reason: string }).reason, /requires_capture, with no capture booked/);
      assert.equal((await payment(manual.id)).amount_captured, 0);
      assert.equal((await ledger(manual.id)).length, 0);

      await assert.rejects(correct('00000000-0000-4000-8000-000000000001', { kind: 'psp_amount', captured: 1, pspStatus: 'captured' }), /no payment/);
    });

    it('a capture the PSP made for the payment\'s whole amount is booked; the status follows the refunds against the corrected capture', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      // captured 3000 of 5000, all of it refunded: the PSP captured the whole 5000
      const p = await pay(h, { amount: 5000, capture_method: 'manual' });
      assert.equal((await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 3000 } })).status, 200);
      assert.equal((await h.call('POST', '/v1/refunds', { key: key(), body: { payment_id: p.id } })).status, 201);
      assert.equal((await payment(p.id)).status, 'refunded');
      assert.equal((await correct(p.id, { kind: 'psp_amount', captured: 5000, pspStatus: 'captured' })).outcome, 'corrected');
      let g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured, g.amount_refunded, g.amount_refundable, g.amount_capturable], ['partially_refunded', 5000, 3000, 2000, 0]);
      // and back down to what is refunded: fully refunded
      assert.equal((await correct(p.id, { kind: 'psp_amount', captured: 3000, pspStatus: 'captured' })).outcome, 'corrected');
      g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured, g.amount_refundable], ['refunded', 3000, 0]);
      const net = (await ledger(p.id)).filter((e) => e.account === 'merchant_balance')
        .reduce((sum, e) => sum + (e.direction === 'credit' ? e.amount : -e.amount), 0);
      assert.equal(net, 0, 'captured 3000, refunded 3000');
    });

    it('nothing captured at the PSP while its authorization stands: back to requires_capture with the authorized amount capturable', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 7000 });
      const r = await correct(p.id, { kind: 'psp_amount', captured: 0, pspStatus: 'authorized' });
      assert.equal(r.outcome, 'corrected');
      const g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured, g.amount_capturable, g.failure_code], ['requires_capture', 0, 7000, 'capture_failed']);
      assert.deepEqual((await events(p.id)).slice(-1), ['payment.failed']);
      const adjustments = (await ledger(p.id)).filter((e) => e.type === 'capture_adjustment');
      assert.deepEqual(adjustments.map((e) => [e.account, e.direction, e.amount]).sort(), [
        ['merchant_balance', 'debit', 7000],
        [`connector_clearing:${p.connector_account_short_id}`, 'credit', 7000],
      ].sort());
      // the same report again changes nothing
      assert.equal((await correct(p.id, { kind: 'psp_amount', captured: 0, pspStatus: 'authorized' })).outcome, 'unchanged');
    });
  });

  describe('a capture the PSP reports failed (Adyen\'s CAPTURE_FAILED)', () => {
    const correct = (id: string, c: Parameters<Harness['rt']['services']['payments']['correctCapture']>[1]) => h.rt.services.payments.correctCapture(id, c);
    const captures = (p: any) => p.transactions.filter((x: any) => x.type === 'capture').map((x: any) => [x.amount, x.status, x.connector_ref]);
    const failed = (ref?: string) => ({ kind: 'capture_failed' as const, captureRef: ref ?? null });

    it('a capture kept under the payment\'s reference is the one a report names by a reference of its own; the report\'s reference is kept, so the same report again changes nothing', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 4000 }); // captured with the authorization: its capture carries the payment's reference
      assert.deepEqual(captures(await payment(p.id)), [[4000, 'succeeded', p.connector_ref]]);
      const r = await correct(p.id, failed('cap_own_1'));
      assert.equal(r.outcome, 'corrected');
      const g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured, g.amount_capturable, g.failure_code], ['requires_capture', 0, 4000, 'capture_failed']);
      assert.deepEqual(captures(g), [[4000, 'failed', 'cap_own_1']], 'the failed capture keeps the reference the PSP gave it');
      const ledgerAfter = await ledger(p.id);
      assert.equal((await correct(p.id, failed('cap_own_1'))).outcome, 'unchanged');
      assert.deepEqual(await payment(p.id), g);
      assert.deepEqual(await ledger(p.id), ledgerAfter);
    });

    it('a report that names no capture the gateway booked: not_booked while the payment waits for its capture, refused once it is captured or over', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      // waiting for a capture: the PSP reports one the gateway never booked
      const waiting = await pay(h, { amount: 5000, capture_method: 'manual' });
      for (const c of [failed('cap_unknown'), failed()]) {
        const r = await correct(waiting.id, c);
        assert.equal(r.outcome, 'not_booked', JSON.stringify(c));
      }
      // still processing (the authorization's answer was lost): nothing booked either
      control.loseNextAuthorizeAnswer = true;
      const lost = await h.call('POST', '/v1/payments', { key: key(), body: { amount: 5000, currency: 'USD', payment_method: 'pm_card_visa', capture_method: 'manual' } });
      assert.equal(lost.status, 502, lost.raw);
      const processingId = lost.body.error.payment_id;
      assert.equal((await payment(processingId)).status, 'processing');
      assert.equal((await correct(processingId, failed('cap_unknown'))).outcome, 'not_booked');
      assert.equal((await payment(processingId)).status, 'processing');

      // captured, with the capture's own reference: a report naming another capture matches none
      control.captureRef = 'cap_booked_1';
      let captured: any;
      try {
        const m = await pay(h, { amount: 5000, capture_method: 'manual' });
        const c = await h.call('POST', `/v1/payments/${m.id}/capture`, { key: key(), body: {} });
        assert.equal(c.status, 200, c.raw);
        captured = await payment(m.id);
      } finally {
        control.captureRef = undefined;
      }
      assert.deepEqual(captures(captured), [[5000, 'succeeded', 'cap_booked_1']]);
      const other = await correct(captured.id, failed('cap_other'));
      assert.equal(other.outcome, 'refused');
      assert.match((other as { reason: string }).reason, /no capture the gateway booked matches cap_other/);
      assert.deepEqual(await payment(captured.id), captured);
      // a report without a reference names the payment's one capture
      assert.equal((await correct(captured.id, failed())).outcome, 'corrected');
      assert.deepEqual(captures(await payment(captured.id)), [[5000, 'failed', 'cap_booked_1']]);

      // canceled: no capture at all, and a report without a reference says so
      const canceled = await pay(h, { amount: 5000, capture_method: 'manual' });
      assert.equal((await h.call('POST', `/v1/payments/${canceled.id}/cancel`, { key: key() })).status, 200);
      const none = await correct(canceled.id, failed());
      assert.equal(none.outcome, 'refused');
      assert.match((none as { reason: string }).reason, /no capture the gateway booked matches the report/);
      assert.equal((await payment(canceled.id)).status, 'canceled');
    });

    it('after a partial authorization, the failed capture gives back what the PSP authorized, not the amount asked for', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      control.authorizeAmount = 3500;
      let p: any;
      try {
        p = await pay(h, { amount: 5000, capture_method: 'manual' });
      } finally {
        control.authorizeAmount = undefined;
      }
      assert.deepEqual([p.amount, p.amount_capturable], [5000, 3500]);
      const c = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: {} });
      assert.deepEqual([c.status, c.body.amount_captured], [200, 3500], c.raw);
      assert.equal((await correct(p.id, failed())).outcome, 'corrected');
      const g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured, g.amount_capturable], ['requires_capture', 0, 3500]);
    });

    it('each capture after a failed one goes to the PSP under a key of its own, and books what it captures', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 6000, capture_method: 'manual' });
      const keysBefore = control.captureKeys.length;
      const capture = async (amount: number) => {
        const r = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount } });
        assert.deepEqual([r.status, r.body.amount_captured], [200, amount], r.raw);
      };
      await capture(6000);
      assert.equal((await correct(p.id, failed())).outcome, 'corrected');
      // the PSP takes a new capture of the same authorization (the sandbox's own state is past it)
      control.fakeCapture = true;
      try {
        await capture(5000);
        assert.equal((await correct(p.id, failed())).outcome, 'corrected');
        await capture(4000);
      } finally {
        control.fakeCapture = false;
      }
      assert.deepEqual(control.captureKeys.slice(keysBefore), [`settle_capture_${p.id}`, `settle_capture_${p.id}_2`, `settle_capture_${p.id}_3`]);
      const g = await payment(p.id);
      assert.deepEqual([g.status, g.amount_captured, g.amount_refundable, g.failure_code], ['succeeded', 4000, 4000, null]);
      assert.deepEqual(captures(g).map(([a, s]: [number, string]) => [a, s]), [[6000, 'failed'], [5000, 'failed'], [4000, 'succeeded']]);
      const net = (await ledger(p.id)).filter((e) => e.account === 'merchant_balance')
        .reduce((sum, e) => sum + (e.direction === 'credit' ? e.amount : -e.amount), 0);
      assert.equal(net, 4000, 'the merchant is credited with the one capture that stands');
    });
  });

  describe('ledger', () => {
    it('accounts show each balance in its normal direction after a capture, a refund and a reversal', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const m = await h.newMerchant('Ledger Accounts');
      const p = await pay(h, { amount: 9000 }, m.testKey);
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: m.testKey, body: { amount: 2000 } });
      await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: m.testKey, body: { amount: 500 } });
      psp.failRefund(r.body.connector_ref);
      await h.rt.services.refunds.reverse(r.body.id, 'bank_rejected', 'late');
      const accounts = await h.call('GET', '/v1/ledger/accounts', { key: m.testKey });
      assert.equal(accounts.status, 200, accounts.raw);
      const clearing = `connector_clearing:${p.connector_account_short_id}`;
      assert.deepEqual(accounts.body.data.map((a: any) => [a.account, a.currency, a.debits, a.credits, a.balance]), [
        [clearing, 'USD', 9000 + 2000, 2000 + 500, 8500],
        ['merchant_balance', 'USD', 2000 + 500, 9000 + 2000, 8500],
      ]);
      // the other mode and other merchants see nothing of it
      assert.deepEqual((await h.call('GET', '/v1/ledger/accounts', { key: m.liveKey })).body.data, []);
    });

    it('transactions page newest first, filtered by payment, each with its two entries', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const m = await h.newMerchant('Ledger Transactions');
      const p = await pay(h, { amount: 4000 }, m.testKey);
      const other = await pay(h, { amount: 1000 }, m.testKey);
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: m.testKey, body: { amount: 1500 } });
      const seen: any[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < 5; page++) {
        const res: any = await h.call('GET', `/v1/ledger/transactions?payment_id=${p.id}&limit=1${cursor ? `&cursor=${cursor}` : ''}`, { key: m.testKey });
        assert.equal(res.status, 200, res.raw);
        seen.push(...res.body.data);
        cursor = res.body.next_cursor;
        if (!res.body.has_more) break;
      }
      assert.deepEqual(seen.map((x) => [x.type, x.payment_id, x.refund_id]), [['refund', p.id, r.body.id], ['capture', p.id, null]]);
      for (const x of seen) {
        assert.equal(x.entries.length, 2);
        assert.deepEqual(x.entries.map((e: any) => e.direction).sort(), ['credit', 'debit']);
        assert.ok(x.entries.every((e: any) => e.amount === (x.type === 'refund' ? 1500 : 4000) && e.currency === 'USD'));
      }
      const all = await h.call('GET', '/v1/ledger/transactions?limit=10', { key: m.testKey });
      assert.deepEqual(all.body.data.map((x: any) => x.payment_id).sort(), [p.id, p.id, other.id].sort());
    });

    it('a booking is made once: the same refund booked again inserts nothing and says so', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 3000 });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1000 } });
      const booking = {
        merchantId: h.merchant.id, testMode: true, type: 'refund_reversal' as const, paymentId: p.id, refundId: r.body.id,
        currency: 'USD', amount: 1000, debit: `connector_clearing:${p.connector_account_short_id}`, credit: 'merchant_balance',
      };
      assert.equal(await ledgerRepository.book(h.db, booking), true);
      assert.equal(await ledgerRepository.book(h.db, booking), false);
      assert.equal((await ledger(p.id)).filter((e) => e.type === 'refund_reversal').length, 2);
    });

    it('a capture adjustment is booked once per capture transaction: booked again, it inserts nothing and says so', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 3000 });
      const [capture] = await paymentsRepository.captureTransactions(h.db, p.id);
      const adjustment = {
        merchantId: h.merchant.id, testMode: true, type: 'capture_adjustment' as const, paymentId: p.id, refundId: null,
        currency: 'USD', amount: 500, debit: 'merchant_balance', credit: `connector_clearing:${p.connector_account_short_id}`, paymentTransactionId: capture.id,
      };
      assert.equal(await ledgerRepository.bookPaymentTransaction(h.db, adjustment), true);
      assert.equal(await ledgerRepository.bookPaymentTransaction(h.db, { ...adjustment, amount: 700 }), false);
      assert.deepEqual((await ledger(p.id)).filter((e) => e.type === 'capture_adjustment').map((e) => e.amount), [500, 500]);
    });
  });

  describe('idempotency keys', () => {
    const box = new SecretBox(Buffer.alloc(32, 9));
    const scope = (k: string) => ({ merchantId: h.merchant.id, testMode: true, key: k });

    it('a retry of a key whose owner died takes it over and proceeds, with a fresh lease', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const svc = new IdempotencyService(h.db, box, { lockMs: 60_000, retentionHours: 24 });
      assert.deepEqual(await svc.begin(scope('died-once'), 'POST', '/v1/refunds', 'hash'), { kind: 'proceed', scope: scope('died-once'), recovered: false });
      await h.db.query(`UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE merchant_id = $1 AND key = 'died-once'`, [h.merchant.id]);
      assert.deepEqual(await svc.begin(scope('died-once'), 'POST', '/v1/refunds', 'hash'), { kind: 'proceed', scope: scope('died-once'), recovered: true });
      await assert.rejects(svc.begin(scope('died-once'), 'POST', '/v1/refunds', 'hash'), (e: unknown) => e instanceof AppError && e.code === 'idempotency_key_in_use');
    });

    it('a key claimed by a request that commits while this one waits for it: read again, and in use', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const svc = new IdempotencyService(h.db, box, { lockMs: 60_000, retentionHours: 24 });
      // another request's claim, not yet committed: this one's INSERT waits for it, and its
      // statement's snapshot cannot see the row once it commits (the claim finds neither)
      let commit = () => {};
      const committing = new Promise<void>((resolve) => (commit = resolve));
      let inserted = () => {};
      const claimed = new Promise<void>((resolve) => (inserted = resolve));
      const holder = h.db.transaction(async (tx) => {
        await tx.query(`INSERT INTO idempotency_keys (merchant_id, test_mode, key, method, path, request_hash, state, locked_until)
          VALUES ($1, true, 'late-holder', 'POST', '/v1/refunds', 'hash', 'in_flight', now() + interval '1 minute')`, [h.merchant.id]);
        inserted();
        await committing;
      });
      await claimed;
      const waiting = svc.begin(scope('late-holder'), 'POST', '/v1/refunds', 'hash');
      // it may be refused before the assertion below is attached to it (as soon as the holder
      // commits): handled from the start, so that is not an unhandled rejection
      waiting.catch(() => {});
      for (let i = 0; i < 200; i++) {
        const w = await h.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO idempotency_keys%' AND datname = current_database()`);
        if (w.rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      commit();
      await holder;
      await assert.rejects(waiting, (e: unknown) => e instanceof AppError && e.code === 'idempotency_key_in_use');
    });

    it('of two retries racing to take over a key whose owner died, exactly one proceeds; the other is told the key is in use', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const svc = new IdempotencyService(h.db, box, { lockMs: 60_000, retentionHours: 24 });
      assert.equal((await svc.begin(scope('dead-owner'), 'POST', '/v1/refunds', 'hash')).kind, 'proceed');
      // the owner died: its lease ran out
      await h.db.query(`UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE merchant_id = $1 AND key = 'dead-owner'`, [h.merchant.id]);
      // both retries read the expired lease before either takes it over
      const racing = new IdempotencyService(barrierOn(h.db, /^\s*UPDATE idempotency_keys SET locked_until/, 2), box, { lockMs: 60_000, retentionHours: 24 });
      const results = await Promise.allSettled([
        racing.begin(scope('dead-owner'), 'POST', '/v1/refunds', 'hash'),
        racing.begin(scope('dead-owner'), 'POST', '/v1/refunds', 'hash'),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, JSON.stringify(results));
      assert.deepEqual((won[0] as PromiseFulfilledResult<unknown>).value, { kind: 'proceed', scope: scope('dead-owner'), recovered: true });
      assert.equal(lost.length, 1);
      assert.ok(lost[0].reason instanceof AppError);
      assert.equal((lost[0].reason as AppError).code, 'idempotency_key_in_use');
      const lease = await h.db.query<{ live: boolean }>(`SELECT locked_until > now() AS live FROM idempotency_keys WHERE merchant_id = $1 AND key = 'dead-owner'`, [h.merchant.id]);
      assert.equal(lease.rows[0].live, true, 'the winner holds a fresh lease');
    });

    it('a stored answer that shows a secret is kept sealed and replayed in clear', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const svc = new IdempotencyService(h.db, box, { lockMs: 60_000, retentionHours: 24 });
      await svc.begin(scope('k-sealed'), 'POST', '/v1/api_keys', 'hash');
      await svc.complete(scope('k-sealed'), { status: 201, body: '{"secret":"sk_test_shown_once"}', headers: {} }, true);
      const stored = await h.db.query<{ response_body: string }>(`SELECT response_body FROM idempotency_keys WHERE merchant_id = $1 AND key = 'k-sealed'`, [h.merchant.id]);
      assert.ok(stored.rows[0].response_body.startsWith('sealed:') && !stored.rows[0].response_body.includes('sk_test_shown_once'));
      const replay = await svc.begin(scope('k-sealed'), 'POST', '/v1/api_keys', 'hash');
      assert.deepEqual(replay, { kind: 'replay', response: { status: 201, body: '{"secret":"sk_test_shown_once"}', headers: {} } });
    });

    it('an outcome reported for a refund already final leaves the request\'s key unanswered, whatever an earlier attempt rendered', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const p = await pay(h, { amount: 1000 });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 400 } });
      const k = h.rt.services.idempotency.transactionalKey(scope('k-stale'), 'POST', `/v1/payments/${p.id}/refunds`, 'hash');
      // an attempt of this transaction that rolled back had rendered an answer
      k.response = { status: 201, body: '{"stale":true}', headers: {} };
      k.state = 'claimed';
      const view = await h.rt.services.refunds.finish({ id: r.body.id, payment_id: p.id }, { status: 'failed', code: 'x', message: 'late' }, k);
      assert.equal(view.status, 'succeeded', 'a final refund is not moved');
      assert.equal(k.response, undefined);
      assert.equal(k.state, 'claimed', 'nothing was stored for the key');
    });

    it('a key is reused when the method, the path or the body differs, each on its own; a live lease is in use; a stored answer replays', async (t) => {
      if (skip) return t.skip('PostgreSQL unavailable');
      const svc = new IdempotencyService(h.db, box, { lockMs: 60_000, retentionHours: 24 });
      const first = await svc.begin(scope('k-parts'), 'POST', '/v1/refunds', 'hash');
      assert.deepEqual(first, { kind: 'proceed', scope: scope('k-parts'), recovered: false });
      for (const [method, path, hash] of [['PUT', '/v1/refunds', 'hash'], ['POST', '/v1/payments', 'hash'], ['POST', '/v1/refunds', 'other']]) {
        await assert.rejects(svc.begin(scope('k-parts'), method, path, hash), (e: AppError) => e.code === 'idempotency_key_reused', `${method} ${path} ${hash}`);
      }
      await assert.rejects(svc.begin(scope('k-parts'), 'POST', '/v1/refunds', 'hash'), (e: AppError) => e.code === 'idempotency_key_in_use');
      await svc.complete(scope('k-parts'), { status: 201, body: '{"id":"re_1"}', headers: { 'x-a': 'b' } });
      assert.deepEqual(await svc.begin(scope('k-parts'), 'POST', '/v1/refunds', 'hash'),
        { kind: 'replay', response: { status: 201, body: '{"id":"re_1"}', headers: { 'x-a': 'b' } } });
      // a released key is new again
      await svc.begin(scope('k-released'), 'POST', '/v1/refunds', 'hash');
      await svc.release(scope('k-released'));
      assert.deepEqual(await svc.begin(scope('k-released'), 'POST', '/v1/refunds', 'hash'), { kind: 'proceed', scope: scope('k-released'), recovered: false });
    });
  });
});
