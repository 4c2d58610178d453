import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPostgresDb } from '../../src/db/postgres.js';
import { verifyLedger } from '../../src/modules/ledger/ledger.verify.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { describeEachConnector } from '../helpers/connectors.js';

/**
 * Races on a real PostgreSQL server through real HTTP: PGlite runs one query at a time, so only
 * a real server can show that the row lock and the CHECK constraint hold under contention. The
 * same races run over every connector, each against the sim speaking its PSP's wire.
 */
describeEachConnector('refund concurrency on PostgreSQL, through HTTP, across gateway processes', (setup) => {
  let temp: TempDatabase | undefined;
  let a: Proc | undefined;
  let b: Proc | undefined;
  let sim: Proc | undefined;
  let key = '';
  let account: any;

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    temp = await createTempDatabase();
    sim = await spawnPspSim(setup.wire, setup.simArgs);
    [a, b] = await Promise.all([1, 2].map(() => spawnGateway({ databaseUrl: temp!.url, env: setup.gatewayEnv(sim!.url) })));
    const admin = client(a.url, ADMIN_KEY);
    const m = await admin('POST', '/v1/admin/merchants', { name: 'Racer' });
    key = m.body.api_keys.test;
    const plan = setup.account(sim.url, { pendingDelayMs: 2000 });
    const acct = await client(a.url, key)('POST', '/v1/connector_accounts', plan.body);
    assert.equal(acct.status, 201, acct.raw);
    account = acct.body;
    if (setup.refundAnswers.includes('pending')) {
      // the refunds' outcomes come by the PSP's notifications
      await fetch(`${sim.url}/_sim/accounts/${plan.simAccount(account)}/webhook`, {
        method: 'PUT', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${a.url}${account.webhook_path}`, secret: account.webhook_secret }),
      });
    }
  });
  after(async () => {
    await Promise.all([a?.kill(), b?.kill(), sim?.kill()]);
    await temp?.drop();
  });

  /** The payment once nothing is pending on it (at once for a synchronous PSP; once the
   *  notifications have arrived for Adyen). */
  async function settled(api: ReturnType<typeof client>, paymentId: string) {
    for (let i = 0; ; i++) {
      const pending = await api('GET', `/v1/refunds?payment_id=${paymentId}&status=pending`);
      if (pending.body.data.length === 0 || i >= 600) return api('GET', `/v1/payments/${paymentId}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A counter of the gateway's /metrics. */
  async function metric(url: string, name: string) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
    assert.ok(m, `${name} in /metrics`);
    return Number(m[1]);
  }

  /** The ledger verifies, every succeeded refund is booked once, and the PSP applied no refund twice. */
  async function assertBooksAgree() {
    const db = createPostgresDb({ connectionString: temp!.url, max: 2 });
    try {
      assert.deepEqual((await verifyLedger(db)).violations, []);
      const bookings = await db.query<{ n: number; refunds: number }>(
        `SELECT (SELECT count(*) FROM ledger_transactions WHERE type = 'refund')::int AS n,
                (SELECT count(*) FROM refunds WHERE status = 'succeeded')::int AS refunds`);
      assert.equal(bookings.rows[0].n, bookings.rows[0].refunds, 'one booking per refund');
    } finally {
      await db.close();
    }
    const stats = await (await fetch(`${sim!.url}/_sim/stats`)).json() as { duplicate_applications: number };
    assert.equal(stats.duplicate_applications, 0);
  }

  async function race(targets: string[], n: number, amount: number, captured: number) {
    const api = client(targets[0], key);
    const p = await api('POST', '/v1/payments', { amount: captured, currency: 'USD', payment_method: 'pm_card_visa' });
    assert.equal(p.status, 201, p.raw);
    assert.equal(p.body.connector_account_id, account.id);
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        client(targets[i % targets.length], key)('POST', `/v1/payments/${p.body.id}/refunds`, { amount }, { 'Idempotency-Key': `race-${p.body.id}-${i}` }),
      ),
    );
    const ok = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status !== 201);
    for (const r of ok) assert.ok(setup.refundAnswers.includes(r.body.status), r.raw);
    for (const r of refused) {
      assert.ok([422, 409].includes(r.status), `unexpected ${r.status}: ${r.raw}`);
      assert.ok(['amount_too_large', 'already_refunded'].includes(r.body.error.code), r.raw);
    }
    const total = ok.reduce((s, r) => s + r.body.amount, 0);
    assert.equal(total, captured, 'the successful total equals the captured amount exactly');
    const final = await settled(api, p.body.id);
    assert.equal(final.body.amount_refunded, captured);
    assert.equal(final.body.status, 'refunded');
    const psp = await (await fetch(`${sim!.url}/_sim/payments/${p.body.connector_ref}`)).json() as { amount_refunded: number };
    assert.equal(psp.amount_refunded, captured, 'the PSP refunded exactly what the gateway booked');
    return { ok: ok.length, refused: refused.length };
  }

  test('50 simultaneous partial refunds on one payment through one process', async (t) => {
    if (!temp) return t.skip('no postgres');
    const r = await race([a!.url], 50, 250, 10_000);
    assert.equal(r.ok, 40);
    assert.equal(r.refused, 10);
  });

  test('the same race split across two gateway processes sharing the database', async (t) => {
    if (!temp) return t.skip('no postgres');
    const r = await race([a!.url, b!.url], 50, 300, 9_000);
    assert.equal(r.ok, 30);
    assert.equal(r.refused, 20);
    await assertBooksAgree();
  });

  test('refunds of many payments at once share transactions, and every refund is still exact', async (t) => {
    if (!temp) return t.skip('no postgres');
    const api = client(a!.url, key);
    const before = { tx: 0, members: 0 };
    for (const url of [a!.url, b!.url]) {
      before.tx += await metric(url, 'settle_refund_db_transactions_total');
      before.members += await metric(url, 'settle_refund_db_transaction_members_total');
    }
    const payments = await Promise.all(Array.from({ length: 24 }, async () => {
      const p = await api('POST', '/v1/payments', { amount: 10_000, currency: 'USD', payment_method: 'pm_card_visa' });
      assert.equal(p.status, 201, p.raw);
      return p.body;
    }));
    // five refunds of 2,500 on each payment of 10,000, all at once, through both processes: four fit
    const results = await Promise.all(payments.flatMap((p, i) => Array.from({ length: 5 }, (_, j) =>
      client([a!.url, b!.url][(i + j) % 2], key)('POST', `/v1/payments/${p.id}/refunds`, { amount: 2_500 }, { 'Idempotency-Key': `many-${p.id}-${j}` })
        .then((r) => ({ payment: p, r })))));
    for (const p of payments) {
      const mine = results.filter((x) => x.payment.id === p.id).map((x) => x.r);
      assert.equal(mine.filter((r) => r.status === 201 && setup.refundAnswers.includes(r.body.status)).length, 4, JSON.stringify(mine.map((r) => r.status)));
      const refused = mine.filter((r) => r.status !== 201);
      assert.equal(refused.length, 1);
      assert.ok(['amount_too_large', 'already_refunded'].includes(refused[0].body.error.code), refused[0].raw);
      const final = await settled(api, p.id);
      assert.equal(final.body.amount_refunded, 10_000);
      assert.equal(final.body.status, 'refunded');
      const psp = await (await fetch(`${sim!.url}/_sim/payments/${p.connector_ref}`)).json() as { amount_refunded: number };
      assert.equal(psp.amount_refunded, 10_000, 'the PSP refunded exactly what the gateway booked');
    }
    await assertBooksAgree();
    const after = { tx: 0, members: 0 };
    for (const url of [a!.url, b!.url]) {
      after.tx += await metric(url, 'settle_refund_db_transactions_total');
      after.members += await metric(url, 'settle_refund_db_transaction_members_total');
    }
    // 120 refunds, two locking steps each (the refused ones one, or two with a group's rerun)
    assert.ok(after.members - before.members >= 96 * 2 + 24, JSON.stringify({ before, after }));
    assert.ok(after.tx - before.tx < after.members - before.members, `steps shared transactions: ${JSON.stringify({ before, after })}`);
  });

  test('SETTLE_REFUND_GROUP_MAX=1 gives every refund step a transaction of its own', async (t) => {
    if (!temp) return t.skip('no postgres');
    const alone = await spawnGateway({ databaseUrl: temp.url, env: { SETTLE_REFUND_GROUP_MAX: '1', ...setup.gatewayEnv(sim!.url) } });
    try {
      const api = client(alone.url, key);
      const payments = await Promise.all(Array.from({ length: 8 }, async () =>
        (await api('POST', '/v1/payments', { amount: 4_000, currency: 'USD', payment_method: 'pm_card_visa' })).body));
      const results = await Promise.all(payments.flatMap((p) => Array.from({ length: 4 }, () => api('POST', `/v1/payments/${p.id}/refunds`, { amount: 1_000 }))));
      for (const r of results) assert.ok(r.status === 201 && setup.refundAnswers.includes(r.body.status), r.raw);
      for (const p of payments) assert.equal((await settled(api, p.id)).body.amount_refunded, 4_000);
      const steps = await metric(alone.url, 'settle_refund_db_transaction_members_total');
      assert.ok(steps >= 64, `two steps per refund: ${steps}`);
      assert.equal(await metric(alone.url, 'settle_refund_db_transactions_total'), steps);
      await assertBooksAgree();
    } finally {
      await alone.kill();
    }
  });

  test('one Idempotency-Key sent 30 times at once across both processes makes one refund', async (t) => {
    if (!temp) return t.skip('no postgres');
    const api = client(a!.url, key);
    const p = await api('POST', '/v1/payments', { amount: 5_000, currency: 'USD', payment_method: 'pm_card_visa' });
    assert.equal(p.status, 201, p.raw);
    const idem = `twin-${p.body.id}`;
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      client([a!.url, b!.url][i % 2], key)('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 700 }, { 'Idempotency-Key': idem })));
    const created = results.filter((r) => r.status === 201);
    const busy = results.filter((r) => r.status === 409);
    assert.equal(created.length + busy.length, results.length, results.filter((r) => r.status !== 201 && r.status !== 409).map((r) => r.raw).join('\n'));
    for (const r of busy) assert.equal(r.body.error.code, 'idempotency_key_in_use');
    assert.ok(created.length >= 1, 'the owner answered');
    for (const r of created) assert.equal(r.raw, created[0].raw, 'every 201 is the same answer');
    assert.equal(created.filter((r) => r.headers.get('idempotent-replayed') !== 'true').length, 1, 'one answer is the original, the rest replays');
    assert.ok(setup.refundAnswers.includes(created[0].body.status), created[0].raw);
    const list = await api('GET', `/v1/payments/${p.body.id}/refunds`);
    assert.equal(list.body.data.length, 1, 'one refund');
    const payment = await settled(api, p.body.id);
    assert.equal(payment.body.amount_refunded, 700);
    const psp = await (await fetch(`${sim!.url}/_sim/payments/${p.body.connector_ref}`)).json() as { amount_refunded: number };
    assert.equal(psp.amount_refunded, 700, 'the PSP refunded once');
    // after the race the key answers with the stored refund
    const later = await api('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 700 }, { 'Idempotency-Key': idem });
    assert.equal(later.raw, created[0].raw);
  });

  test('the refund kill switch set through one process takes effect on the other within a second', async (t) => {
    if (!temp) return t.skip('no postgres');
    const apiB = client(b!.url, key);
    const p = await client(a!.url, key)('POST', '/v1/payments', { amount: 1000, currency: 'USD', payment_method: 'pm_card_visa' });
    // warm B's cache so it has to notice the change, not just read it fresh
    assert.equal((await apiB('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 100 })).status, 201);
    const admin = client(a!.url, ADMIN_KEY);
    assert.equal((await admin('PUT', '/v1/admin/features/refunds', { enabled: false })).status, 200);
    const off = Date.now();
    let refusedAfter = -1;
    while (Date.now() - off < 3000) {
      const r = await apiB('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 1 });
      if (r.status === 403) {
        assert.equal(r.body.error.code, 'feature_disabled');
        refusedAfter = Date.now() - off;
        break;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
    await admin('PUT', '/v1/admin/features/refunds', { enabled: true });
    assert.ok(refusedAfter >= 0 && refusedAfter <= 1000, `refused after ${refusedAfter} ms`);
  });
});
