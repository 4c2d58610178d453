/**
 * The hard-delete guard of a connector account (409 connector_account_in_use while it has pending
 * refunds or uncaptured payments) holds under concurrency, on PostgreSQL: a refund or a payment
 * created while the delete runs never ends up pending (or uncaptured) on a deleted account.
 *
 * The delete is paused right after it counted the account's unfinished work, and the refund or
 * payment is sent in that pause: the interleaving a real race produces only now and then.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Db, QueryResult, Tx } from '../../src/db/db.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { createHarness, pay, type Harness, type Res } from '../helpers/harness.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Pauses a transaction right after the statement that counts an account's unfinished work. */
function pausingDb() {
  const control = {
    /** When set: awaited after the count, inside the delete's transaction. */
    pause: undefined as undefined | (() => Promise<void>),
    paused: () => {},
  };
  const wrapTx = (tx: Tx): Tx => ({
    async query<T>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> {
      const r = await tx.query<T>(sql, params);
      if (control.pause && /count\(\*\) FROM refunds WHERE connector_account_id/.test(sql)) {
        const pause = control.pause;
        control.pause = undefined;
        control.paused();
        await pause();
      }
      return r;
    },
    lastQuery: (sql, params) => tx.lastQuery(sql, params),
  });
  const wrap = (inner: Db): Db => ({
    kind: inner.kind,
    query: (sql, params) => inner.query(sql, params),
    transaction: (fn) => inner.transaction((tx) => fn(wrapTx(tx))),
    exec: (sql) => inner.exec(sql),
    close: () => inner.close(),
  });
  return { control, wrap };
}

describe('connector account hard delete racing a refund or a payment (PostgreSQL)', () => {
  const { control, wrap } = pausingDb();
  let h: Harness;
  let skip = false;
  before(async (t) => {
    skip = !(await postgresOrSkip(t as never));
    if (!skip) h = await createHarness('postgres', { wrapDb: wrap });
  });
  after(async () => h?.close());
  const it = (name: string, fn: () => Promise<void>) => test(name, async (t) => (skip ? t.skip('no postgres') : fn()));
  const key = () => h.merchant.testKey;

  async function newAccount(): Promise<any> {
    const r = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', settings: { pending_delay_ms: 86_400_000 } } });
    assert.equal(r.status, 201, r.raw);
    return r.body;
  }

  /** Work that nothing could ever finish: pending refunds and uncaptured payments of deleted accounts. */
  async function orphans(): Promise<{ refunds: number; payments: number }> {
    const r = await h.db.query<{ refunds: number; payments: number }>(
      `SELECT (SELECT count(*) FROM refunds r WHERE r.status = 'pending'
                 AND NOT EXISTS (SELECT 1 FROM connector_accounts a WHERE a.id = r.connector_account_id))::int AS refunds,
              (SELECT count(*) FROM payments p WHERE p.status IN ('processing', 'requires_capture')
                 AND NOT EXISTS (SELECT 1 FROM connector_accounts a WHERE a.id = p.connector_account_id))::int AS payments`);
    return r.rows[0];
  }

  /**
   * Runs the hard delete, pausing it after its count until `during` has answered (or 1.5 s passed:
   * `during` may be waiting for the delete's lock), and returns both answers.
   */
  async function deleteDuring(accountId: string, during: () => Promise<Res>): Promise<{ del: Res; other: Res }> {
    // `during` starts the moment the delete has counted, and the delete waits for its answer
    const otherDone = new Promise<Res>((resolve) => (control.paused = () => resolve(during())));
    control.pause = async () => {
      await Promise.race([otherDone.then(() => undefined), sleep(1500)]);
    };
    const del = await h.call('DELETE', `/v1/connector_accounts/${accountId}?hard=true`, { key: key() });
    return { del, other: await otherDone };
  }

  it('a refund sent while the delete counts: either the delete is refused, or the refund is', async () => {
    const account = await newAccount();
    const p = await pay(h, { amount: 5_000, connector_account: account.id, payment_method: 'pm_card_refund_pending' });
    const { del, other } = await deleteDuring(account.id, () =>
      h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1_000 } }));
    if (del.status === 200) {
      assert.equal(other.status, 409, `the account was deleted, yet the refund answered ${other.status} ${other.raw}`);
      assert.equal(other.body.error.code, 'originating_account_unavailable');
    } else {
      assert.equal(del.status, 409, del.raw);
      assert.equal(del.body.error.code, 'connector_account_in_use');
      assert.equal(other.status, 201, other.raw);
    }
    assert.deepEqual(await orphans(), { refunds: 0, payments: 0 });
    const stored = await h.call('GET', `/v1/payments/${p.id}`, { key: key() });
    assert.equal(stored.body.amount_refundable, del.status === 200 ? 5_000 : 4_000, 'no amount held by a refund nothing can finish');
  });

  it('a payment sent while the delete counts: either the delete is refused, or the payment is', async () => {
    const account = await newAccount();
    const { del, other } = await deleteDuring(account.id, () => h.call('POST', '/v1/payments', {
      key: key(), body: { amount: 2_000, currency: 'EUR', payment_method: 'pm_card_visa', capture_method: 'manual', connector_account: account.id },
    }));
    if (del.status === 200) {
      assert.equal(other.status, 404, `the account was deleted, yet the payment answered ${other.status} ${other.raw}`);
      assert.equal(other.body.error.code, 'connector_account_not_found');
    } else {
      assert.equal(del.status, 409, del.raw);
      assert.equal(other.status, 201, other.raw);
    }
    assert.deepEqual(await orphans(), { refunds: 0, payments: 0 });
  });

  it('unpaused races, many rounds: never a pending refund or an uncaptured payment on a deleted account', async () => {
    const outcomes = new Map<string, number>();
    for (let round = 0; round < 12; round++) {
      const account = await newAccount();
      const p = await pay(h, { amount: 5_000, connector_account: account.id, payment_method: 'pm_card_refund_pending' });
      const [del, refund, payment] = await Promise.all([
        h.call('DELETE', `/v1/connector_accounts/${account.id}?hard=true`, { key: key() }),
        h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 500 } }),
        h.call('POST', '/v1/payments', { key: key(), body: { amount: 700, currency: 'EUR', payment_method: 'pm_card_visa', capture_method: 'manual', connector_account: account.id } }),
      ]);
      for (const r of [del, refund, payment]) assert.ok(r.status < 500, `${r.status} ${r.raw}`);
      const outcome = `delete ${del.status}, refund ${refund.status}, payment ${payment.status}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      assert.deepEqual(await orphans(), { refunds: 0, payments: 0 }, outcome);
    }
    console.log(`# delete races: ${[...outcomes].map(([o, n]) => `${o} ×${n}`).join('; ')}`);
  });
});
