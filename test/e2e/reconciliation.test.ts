import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPostgresDb } from '../../src/db/postgres.js';
import type { Db } from '../../src/db/db.js';
import { verifyLedger } from '../../src/modules/ledger/ledger.verify.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY, ENCRYPTION_KEY } from '../helpers/harness.js';
import { client, runSettle, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { describeEachConnector, type ConnectorSetup } from '../helpers/connectors.js';
import { notification } from '../helpers/adyen-notifications.js';

/**
 * Reconciliation against a real psp-sim process with differences injected on purpose: refunds
 * and captures made in the PSP's dashboard while its webhooks are dropped, and a refund the bank
 * fails after it succeeded. `settle reconcile` finds each, `--fix` records what the PSP did, and
 * the background job stores, counts and announces what it finds.
 */
describeEachConnector('reconciliation with the PSP (real gateway, psp-sim and PostgreSQL)', (setup) => {
  let temp: TempDatabase | undefined;
  let gw: Proc | undefined;
  let sim: Proc | undefined;
  let db: Db | undefined;
  let api: ReturnType<typeof client>;
  let admin: ReturnType<typeof client>;
  let account: any;
  let plan: ReturnType<ConnectorSetup['account']>;

  const simCall = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(sim!.url + path, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    return r.json() as Promise<any>;
  };
  const cli = (...args: string[]) =>
    runSettle(['reconcile', ...args], { DATABASE_URL: temp!.url, SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY, SETTLE_ADMIN_KEY: ADMIN_KEY, LOG_LEVEL: 'warn', ...setup.gatewayEnv(sim!.url) });

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    temp = await createTempDatabase();
    sim = await spawnPspSim(setup.wire, setup.simArgs);
    gw = await spawnGateway({
      databaseUrl: temp.url,
      env: { SETTLE_WORKER_POLL_MS: '50', SETTLE_RECONCILE_INTERVAL_MS: '500', SETTLE_RECONCILE_SETTLE_MS: '0', ...setup.gatewayEnv(sim.url) },
    });
    admin = client(gw.url, ADMIN_KEY);
    const m = await admin('POST', '/v1/admin/merchants', { name: 'Reconciled' });
    api = client(gw.url, m.body.api_keys.test);
    plan = setup.account(sim.url, { pendingDelayMs: 2000 });
    account = (await api('POST', '/v1/connector_accounts', plan.body)).body;
    await simCall('PUT', `/_sim/accounts/${plan.simAccount(account)}/webhook`, { url: `${gw.url}${account.webhook_path}`, secret: account.webhook_secret });
    db = createPostgresDb({ connectionString: temp.url, max: 2 });
  });
  after(async () => {
    await db?.close();
    await Promise.all([gw?.kill(), sim?.kill()]);
    await temp?.drop();
  });

  const pay = async (body: Record<string, unknown> = {}) => {
    const p = await api('POST', '/v1/payments', { amount: 10_000, currency: 'USD', payment_method: 'pm_card_visa', connector_account: account.id, ...body });
    assert.equal(p.status, 201, p.raw);
    return p.body;
  };

  test('finds what the PSP did that the gateway never heard of, and fixes it: the refunds, and the capture made in its dashboard', { skip: !setup.statusQuery && `${setup.connector} cannot be asked what it did` }, async (t) => {
    if (!temp) return t.skip('no postgres');
    // The background job sits this one out (its lease is held), so what is stored here is what
    // the command line found, and nothing else.
    await db!.query(`UPDATE reconciliation_runs SET lease_until = now() + interval '1 hour'`);
    // Webhooks dropped: the gateway hears nothing of what happens at the PSP from here on.
    await simCall('PUT', '/_sim/faults', { webhook: { enabled: false } });
    const refunded = await pay();
    const apiRefund = await api('POST', `/v1/payments/${refunded.id}/refunds`, { amount: 1000 });
    assert.equal(apiRefund.body.status, 'succeeded');
    const dashboard = await simCall('POST', `/_sim/payments/${refunded.connector_ref}/refunds`, { amount: 2000 });
    await simCall('POST', `/_sim/refunds/${apiRefund.body.connector_ref}/fail`, { code: setup.failure.psp });
    const uncaptured = await pay({ capture_method: 'manual' });
    await simCall('POST', `/_sim/payments/${uncaptured.connector_ref}/capture`, { amount: 4000 });

    const found = await cli('--since', '1h');
    assert.equal(found.code, 1, found.output);
    const lines = found.stdout.split('\n').filter((l) => l.startsWith('DIFFERENCE'));
    const kinds = (paymentId: string) => lines.filter((l) => l.includes(paymentId)).map((l) => l.split(' ')[2].replace(/:$/, '')).sort();
    assert.deepEqual(kinds(refunded.id), ['refund_missing', 'refund_status', 'refunded_amount']);
    assert.deepEqual(kinds(uncaptured.id), ['captured_amount']);
    assert.ok(lines.some((l) => l.includes(setup.wireRefundId(dashboard.id)!) && l.includes('2000')), found.stdout);

    // Stored once, readable by the merchant, announced as events.
    const open = await api('GET', '/v1/reconciliation/differences?status=open&limit=100');
    assert.equal(open.status, 200, open.raw);
    assert.equal(open.body.data.length, 4);
    assert.ok(open.body.data.every((d: any) => d.object === 'reconciliation_difference' && d.status === 'open'));
    const events = await api('GET', '/v1/events?type=reconciliation.difference_found&limit=100');
    assert.equal(events.body.data.length, 4, events.raw);

    const fixed = await cli('--since', '1h', '--fix');
    assert.equal(fixed.code, 0, 'every difference fixed: ' + fixed.output);
    assert.match(fixed.stdout, new RegExp(`DIFFERENCE \\(fixed\\) ${refunded.id} refund_missing`));
    assert.match(fixed.stdout, new RegExp(`DIFFERENCE \\(fixed\\) ${refunded.id} refund_status`));
    // the capture made in the PSP's dashboard is booked as a capture, with the PSP's amount
    assert.match(fixed.stdout, new RegExp(`DIFFERENCE \\(fixed\\) ${uncaptured.id} captured_amount`));
    const c = (await api('GET', `/v1/payments/${uncaptured.id}`)).body;
    assert.equal(c.status, 'succeeded');
    assert.equal(c.amount_captured, 4000);
    assert.equal(c.amount_captured, (await simCall('GET', `/_sim/payments/${uncaptured.connector_ref}`)).amount_captured);

    // The gateway now agrees with the PSP: the dashboard refund booked, the failed one reversed.
    const g = (await api('GET', `/v1/payments/${refunded.id}`)).body;
    const s = await simCall('GET', `/_sim/payments/${refunded.connector_ref}`);
    assert.equal(g.amount_refunded, s.amount_refunded);
    assert.equal(g.amount_refunded, 2000);
    const refunds = (await api('GET', `/v1/refunds?payment_id=${refunded.id}`)).body.data;
    assert.deepEqual(refunds.map((r: any) => [r.source, r.amount, r.status]).sort(), [['api', 1000, 'failed'], ['connector', 2000, 'succeeded']]);
    assert.deepEqual((await verifyLedger(db!)).violations, []);

    const again = await cli('--since', '1h');
    assert.equal(again.code, 0, again.output);
    const left = again.stdout.split('\n').filter((l) => l.startsWith('DIFFERENCE'));
    assert.deepEqual(left, [], again.stdout);
    const stored = (await api('GET', '/v1/reconciliation/differences?limit=100')).body.data;
    // each stored once: the open rows of the first run became fixed (the total agrees once the refunds do)
    assert.deepEqual(stored.filter((d: any) => d.status === 'fixed').map((d: any) => d.kind).sort(), ['captured_amount', 'refund_missing', 'refund_status', 'refunded_amount']);
    assert.deepEqual(stored.filter((d: any) => d.payment_id === uncaptured.id).map((d: any) => d.status), ['fixed']);
    await simCall('PUT', '/_sim/faults', { webhook: { enabled: true } });
  });

  test('the background job finds a difference by itself: stored, counted in /metrics, listed for the admin', { skip: !setup.statusQuery && `${setup.connector} cannot be asked what it did` }, async (t) => {
    if (!temp) return t.skip('no postgres');
    await db!.query(`UPDATE reconciliation_runs SET lease_until = '-infinity'`);
    await simCall('PUT', '/_sim/faults', { webhook: { enabled: false } });
    const p = await pay();
    const dashboard = await simCall('POST', `/_sim/payments/${p.connector_ref}/refunds`, { amount: 700 });
    let diff: any;
    for (let i = 0; i < 100 && !diff; i++) {
      const list = await admin('GET', '/v1/admin/reconciliation/differences?status=open&limit=100');
      assert.equal(list.status, 200, list.raw);
      diff = list.body.data.find((d: any) => d.connector_ref === setup.wireRefundId(dashboard.id));
      if (!diff) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(diff, 'the background job stored the difference');
    assert.equal(diff.kind, 'refund_missing');
    assert.equal(diff.payment_id, p.id);
    assert.deepEqual(diff.psp, { connector_ref: setup.wireRefundId(dashboard.id), amount: 700, status: 'succeeded', reference: null });
    const metrics = await fetch(`${gw!.url}/metrics`).then((r) => r.text());
    assert.match(metrics, /settle_reconciliation_differences_total\{kind="refund_missing"\} [1-9]/);
    assert.match(metrics, /settle_reconciliation_differences_open [1-9]/);
    await simCall('PUT', '/_sim/faults', { webhook: { enabled: true } });
  });

  test('a PSP without a status query: every payment is reported unverifiable, no difference is invented, a refund stays pending until its notification and is reported once pending too long', { skip: setup.statusQuery && `${setup.connector} can be asked` }, async (t) => {
    if (!temp) return t.skip('no postgres');
    await db!.query(`UPDATE reconciliation_runs SET lease_until = now() + interval '1 hour'`);
    // the PSP's notifications are lost: the gateway hears nothing of what happens at the PSP
    await simCall('PUT', '/_sim/faults', { webhook: { enabled: false } });
    const p = await pay();
    const r = await api('POST', `/v1/payments/${p.id}/refunds`, { amount: 1000 });
    assert.equal(r.status, 201, r.raw);
    assert.equal(r.body.status, 'pending');
    assert.match(r.body.connector_ref, setup.refundRefPattern);
    await simCall('POST', `/_sim/payments/${p.connector_ref}/refunds`, { amount: 2000 });

    const found = await cli('--since', '1h');
    assert.equal(found.code, 0, found.output);
    assert.deepEqual(found.stdout.split('\n').filter((l) => l.startsWith('DIFFERENCE')), [], 'nothing is guessed');
    assert.match(found.stdout, new RegExp(`UNVERIFIED ${p.id}: the PSP cannot tell what it did for this payment`));
    // the sync worker cannot ask either: the refund is still pending, its amount held
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal((await api('GET', `/v1/refunds/${r.body.id}`)).body.status, 'pending');
    assert.equal((await api('GET', `/v1/payments/${p.id}`)).body.amount_refundable, 9_000);

    // a day later it is still pending: reported (exit 1), and --fix does not guess its outcome
    await db!.query(`UPDATE refunds SET created_at = now() - interval '25 hours' WHERE id = $1`, [r.body.id]);
    const stale = new RegExp(`^DIFFERENCE ${p.id} refund_pending_too_long ${r.body.id} \\[${r.body.connector_ref}\\]: .*pending for 25 hours`, 'm');
    const late = await cli('--since', '1h');
    assert.equal(late.code, 1, late.output);
    assert.match(late.stdout, stale);
    const unfixed = await cli('--since', '1h', '--fix');
    assert.equal(unfixed.code, 1, unfixed.output);
    assert.match(unfixed.stdout, stale, 'left open, not "(fixed)"');
    assert.equal((await api('GET', `/v1/refunds/${r.body.id}`)).body.status, 'pending');

    // the notification comes after all (Adyen retries, or the operator resends it from the
    // Customer Area): the refund finishes, booked once
    const creds = (plan.body as { credentials: Record<string, string> }).credentials;
    const body = notification(creds.hmac_key, [{
      pspReference: r.body.connector_ref, originalReference: p.connector_ref, merchantAccountCode: creds.merchant_account,
      merchantReference: r.body.id, value: 1000, currency: 'USD', eventCode: 'REFUND',
    }]);
    for (let i = 0; i < 2; i++) {
      const ack = await fetch(`${gw!.url}${account.webhook_path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(await ack.text(), '[accepted]');
    }
    let status = '';
    for (let i = 0; i < 200 && status !== 'succeeded'; i++) {
      status = (await api('GET', `/v1/refunds/${r.body.id}`)).body.status;
      if (status !== 'succeeded') await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(status, 'succeeded');
    assert.equal((await api('GET', `/v1/payments/${p.id}`)).body.amount_refunded, 1000);
    assert.deepEqual((await verifyLedger(db!)).violations, []);
    const bookings = await db!.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_transactions WHERE refund_id = $1`, [r.body.id]);
    assert.equal(bookings.rows[0].n, 1);
    const settled = await cli('--since', '1h');
    assert.equal(settled.code, 0, settled.output);
    assert.doesNotMatch(settled.stdout, /refund_pending_too_long/);
    await simCall('PUT', '/_sim/faults', { webhook: { enabled: true } });
  });
});
