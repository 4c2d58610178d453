import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPostgresDb } from '../../src/db/postgres.js';
import type { Db } from '../../src/db/db.js';
import { verifyLedger } from '../../src/modules/ledger/ledger.verify.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { describeEachConnector } from '../helpers/connectors.js';

/**
 * The gateway and the PSP agree, whatever order their messages arrive in: real gateway and
 * psp-sim processes, the sim's signed webhooks delivered to the gateway's inbound endpoint. The
 * same suite runs over every connector, each against the sim speaking its PSP's wire.
 */
describeEachConnector('convergence with the PSP over real HTTP', (setup) => {
  let temp: TempDatabase | undefined;
  let gw: Proc | undefined;
  let sim: Proc | undefined;
  let db: Db | undefined;
  let api: ReturnType<typeof client>;
  let account: any;

  const simCall = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(sim!.url + path, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    return r.json() as Promise<any>;
  };
  let baseFaults: Record<string, unknown> = {};
  const faults = (f: Record<string, unknown>) => simCall('PUT', '/_sim/faults', { ...baseFaults, ...f });

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    temp = await createTempDatabase();
    sim = await spawnPspSim(setup.wire, setup.simArgs);
    // slow refund sync: here the webhooks, not the status queries, must finish the refunds
    gw = await spawnGateway({
      databaseUrl: temp.url,
      env: { SETTLE_REFUND_SYNC_BASE_MS: '60000', SETTLE_WORKER_POLL_MS: '50', SETTLE_CONNECTOR_TIMEOUT_MS: '2000', ...setup.gatewayEnv(sim.url) },
    });
    const m = await client(gw.url, ADMIN_KEY)('POST', '/v1/admin/merchants', { name: 'Converger' });
    api = client(gw.url, m.body.api_keys.test);
    const plan = setup.account(sim.url, { pendingDelayMs: 300 });
    baseFaults = plan.faults;
    const acct = await api('POST', '/v1/connector_accounts', plan.body);
    assert.equal(acct.status, 201, acct.raw);
    account = acct.body;
    await simCall('PUT', `/_sim/accounts/${plan.simAccount(account)}/webhook`, {
      url: `${gw.url}${account.webhook_path}`,
      secret: account.webhook_secret,
    });
    await faults({});
    db = createPostgresDb({ connectionString: temp.url, max: 2 });
  });
  after(async () => {
    await db?.close();
    await Promise.all([gw?.kill(), sim?.kill()]);
    await temp?.drop();
  });

  const payment = async (payment_method = 'pm_card_visa', amount = 10_000) => {
    const p = await api('POST', '/v1/payments', { amount, currency: 'USD', payment_method });
    assert.equal(p.status, 201, p.raw);
    return p.body;
  };

  /** Waits until the gateway's refunded total equals the PSP's and nothing is pending. */
  async function converged(p: any, expectRefunded?: number) {
    let last: any;
    for (let i = 0; i < 200; i++) {
      const g = await api('GET', `/v1/payments/${p.id}`);
      const s = await simCall('GET', `/_sim/payments/${p.connector_ref}`);
      const pending = (await api('GET', `/v1/refunds?payment_id=${p.id}&status=pending`)).body.data.length;
      last = { gateway: g.body.amount_refunded, psp: s.amount_refunded, pending };
      if (g.body.amount_refunded === s.amount_refunded && pending === 0 && (expectRefunded === undefined || s.amount_refunded === expectRefunded)) {
        const v = await verifyLedger(db!);
        assert.deepEqual(v.violations, []);
        const bookings = await db!.query<{ refund_id: string; n: number }>(
          `SELECT refund_id, count(*)::int AS n FROM ledger_transactions WHERE payment_id = $1 AND type = 'refund' GROUP BY refund_id`, [p.id]);
        assert.ok(bookings.rows.every((b) => b.n === 1), 'each refund booked once');
        return g.body;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`did not converge: ${JSON.stringify(last)}`);
  }

  test('API response before the webhook: booked once', async (t) => {
    if (!temp) return t.skip('no postgres');
    await faults({});
    const p = await payment();
    const r = await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 2500 });
    assert.ok(setup.refundAnswers.includes(r.body.status), r.raw);
    const g = await converged(p, 2500);
    assert.equal(g.amount_refunded, 2500);
  });

  test('webhook before the API learns the outcome (response lost): the webhook finishes the refund, booked once', async (t) => {
    if (!temp) return t.skip('no postgres');
    // the webhook is late, so the API call has answered by then (Stripe's SDK retries a reset
    // connection once, which would otherwise leave time for the webhook to win; 2 s leaves room
    // for a loaded machine, where the API call alone can take longer than half a second)
    await faults({ drop_response_rate: 1, ops: ['refund'], webhook: { delay_ms: 2000 } });
    const p = await payment();
    const r = await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 1200 }, { 'Idempotency-Key': `lost-${p.id}` });
    assert.equal(r.status, 201);
    assert.equal(r.body.status, 'pending', 'the outcome is unknown to the API call');
    await faults({});
    const g = await converged(p, 1200);
    assert.equal(g.status, 'partially_refunded');
    const done = await api('GET', `/v1/refunds/${r.body.id}`);
    assert.equal(done.body.status, 'succeeded');
    assert.ok(done.body.connector_ref);
  });

  test('duplicated and reordered webhooks change nothing twice', async (t) => {
    if (!temp) return t.skip('no postgres');
    await faults({ webhook: { duplicate: true, reorder: true } });
    const p = await payment();
    for (const amount of [1000, 2000, 3000]) {
      assert.equal((await api('POST', `/v1/payments/${p.id}/refunds`, { amount })).status, 201);
    }
    await simCall('POST', '/_sim/webhooks/flush');
    await converged(p, 6000);
    const stored = await db!.query<{ n: number; d: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT psp_event_id)::int AS d FROM inbound_webhooks WHERE connector_account_id = $1`, [account.id]);
    assert.equal(stored.rows[0].n, stored.rows[0].d, 'duplicates were deduplicated by the PSP event id');
    await faults({});
  });

  test('a refund made in the PSP dashboard becomes a connector-sourced refund, booked', async (t) => {
    if (!temp) return t.skip('no postgres');
    await faults({});
    const p = await payment();
    await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 1000 });
    const dash = await simCall('POST', `/_sim/payments/${p.connector_ref}/refunds`, { amount: 4000 });
    assert.equal(dash.reference, null);
    const g = await converged(p, 5000);
    assert.equal(g.amount_refunded, 5000);
    const list = await api('GET', `/v1/refunds?payment_id=${p.id}`);
    const oob = list.body.data.find((r: any) => r.source === 'connector');
    assert.ok(oob, 'a connector-sourced refund exists');
    assert.equal(oob.amount, 4000);
    assert.equal(oob.status, 'succeeded');
    const wireId = setup.wireRefundId(dash.id);
    if (wireId) assert.equal(oob.connector_ref, wireId);
    assert.match(oob.connector_ref, setup.refundRefPattern);
    const events = await db!.query<{ type: string }>(`SELECT type FROM events WHERE object_id = $1`, [oob.id]);
    assert.ok(events.rows.some((e) => e.type === 'refund.succeeded'));
  });

  test('a refund the PSP fails after it succeeded is reversed with a compensating ledger transaction', async (t) => {
    if (!temp) return t.skip('no postgres');
    await faults({});
    const p = await payment();
    const r = await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 3000 });
    await converged(p, 3000);
    await simCall('POST', `/_sim/refunds/${r.body.connector_ref}/fail`, { code: setup.failure.psp });
    const g = await converged(p, 0);
    assert.equal(g.amount_refunded, 0);
    assert.equal(g.status, 'succeeded', 'the payment is restored');
    assert.equal(g.amount_refundable, 10_000);
    const failed = await api('GET', `/v1/refunds/${r.body.id}`);
    assert.equal(failed.body.status, 'failed');
    assert.equal(failed.body.failure_code, setup.failure.gateway);
    const ledger = await api('GET', `/v1/ledger/transactions?payment_id=${p.id}`);
    assert.deepEqual(ledger.body.data.map((x: any) => x.type).sort(), ['capture', 'refund', 'refund_reversal']);
    const events = await db!.query<{ type: string }>(`SELECT type FROM events WHERE object_id IN ($1, $2) ORDER BY created_at, id`, [r.body.id, p.id]);
    const types = events.rows.map((e) => e.type);
    assert.ok(types.includes('refund.failed') && types.includes('payment.refund_failed'), types.join());
    // the amount is refundable again, through the API
    assert.equal((await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 10_000 })).status, 201);
    await converged(p, 10_000);
  });

  test('a pending refund is finished by the PSP\'s refund.updated webhook', async (t) => {
    if (!temp) return t.skip('no postgres');
    await faults({});
    const p = await payment('pm_card_refund_pending');
    const r = await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 700 });
    assert.equal(r.body.status, 'pending');
    await converged(p, 700);
    assert.equal((await api('GET', `/v1/refunds/${r.body.id}`)).body.status, 'succeeded');
  });

  test('refuses inbound webhooks with a bad signature and stores nothing', async (t) => {
    if (!temp) return t.skip('no postgres');
    const before = (await db!.query<{ n: number }>('SELECT count(*)::int AS n FROM inbound_webhooks')).rows[0].n;
    const body = JSON.stringify({ id: 'sbevt_forged', type: 'refund.updated', created: Math.floor(Date.now() / 1000), data: {} });
    const r = await fetch(`${gw!.url}${account.webhook_path}`, {
      method: 'POST', headers: { 'content-type': 'application/json', [setup.signatureHeader]: `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}` }, body,
    });
    assert.equal(r.status, 400);
    const after = (await db!.query<{ n: number }>('SELECT count(*)::int AS n FROM inbound_webhooks')).rows[0].n;
    assert.equal(after, before);
  });
});
