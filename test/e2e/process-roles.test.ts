import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createPostgresDb } from '../../src/db/postgres.js';
import { verifyLedger } from '../../src/modules/ledger/ledger.verify.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, runSettle, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { sleep } from '../reliability/fixtures.js';

/** A merchant's webhook receiver: every POST it got, by event id. */
async function receiver() {
  const byEvent = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const id = (JSON.parse(body) as { id: string }).id;
      byEvent.set(id, (byEvent.get(id) ?? 0) + 1);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, byEvent, close: () => new Promise((r) => server.close(r)) };
}

const FAST = { SETTLE_WORKER_POLL_MS: '50', SETTLE_REFUND_SYNC_BASE_MS: '50', SETTLE_REFUND_SYNC_MAX_MS: '500' };

/**
 * `settle serve --role api|worker`: API processes run no background work, worker processes serve
 * no API, and any number of each on one database share the work without doing any twice.
 */
describe('process roles on one PostgreSQL database', () => {
  let temp: TempDatabase | undefined;
  let sim: Proc | undefined;
  const apis: Proc[] = [];
  const workers: Proc[] = [];
  let rx: Awaited<ReturnType<typeof receiver>>;
  let key = '';

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    temp = await createTempDatabase();
    sim = await spawnPspSim();
    rx = await receiver();
    for (let i = 0; i < 2; i++) apis.push(await spawnGateway({ databaseUrl: temp.url, args: ['--role', 'api'], env: FAST }));
    const m = await client(apis[0].url, ADMIN_KEY)('POST', '/v1/admin/merchants', { name: 'Roles' });
    key = m.body.api_keys.test;
    const api = client(apis[0].url, key);
    const acct = await api('POST', '/v1/connector_accounts', { connector: 'sandbox', settings: { base_url: sim.url, pending_delay_ms: 200 } });
    assert.equal(acct.status, 201, acct.raw);
    const hook = await api('POST', '/v1/webhook_endpoints', { url: rx.url, enabled_events: ['*'] });
    assert.equal(hook.status, 201, hook.raw);
  });
  after(async () => {
    await Promise.all([...apis, ...workers, sim].map((p) => p?.kill()));
    await rx?.close();
    await temp?.drop();
  });

  test('refuses an unknown role, and a split role on the embedded database', async (t) => {
    if (!temp) return t.skip('no postgres');
    const bad = await runSettle(['serve', '--role', 'web'], { DATABASE_URL: temp.url, SETTLE_ADMIN_KEY: ADMIN_KEY });
    assert.equal(bad.code, 2);
    assert.match(bad.output, /--role must be one of api, worker, all/);
    const embedded = await runSettle(['serve', '--role', 'worker'], { SETTLE_DATA_DIR: '/nonexistent-settle-dir' });
    assert.equal(embedded.code, 2);
    assert.match(embedded.output, /needs DATABASE_URL/);
  });

  test('API processes run no background work, worker processes serve no API, and workers share the work once each', async (t) => {
    if (!temp) return t.skip('no postgres');
    // refunds the PSP leaves pending: only the refund sync can finish them
    const payments = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const p = await client(apis[i % 2].url, key)('POST', '/v1/payments', { amount: 10_000, currency: 'USD', payment_method: 'pm_card_refund_pending' });
      assert.equal(p.status, 201, p.raw);
      return p.body;
    }));
    const refunds = await Promise.all(payments.flatMap((p, i) => [0, 1].map(async (j) => {
      const r = await client(apis[(i + j) % 2].url, key)('POST', `/v1/payments/${p.id}/refunds`, { amount: 3_000 }, { 'Idempotency-Key': `roles-${p.id}-${j}` });
      assert.equal(r.status, 201, r.raw);
      assert.equal(r.body.status, 'pending');
      return r.body;
    })));

    await sleep(1_500); // far past the PSP's pending delay and many worker polls
    const api = client(apis[0].url, key);
    const pending = await api('GET', '/v1/refunds?status=pending&limit=100');
    assert.equal(pending.body.data.length, refunds.length, 'no API process synced a refund');
    assert.equal(rx.byEvent.size, 0, 'no API process delivered a webhook');

    for (let i = 0; i < 2; i++) workers.push(await spawnGateway({ databaseUrl: temp.url, args: ['--role', 'worker'], env: FAST }));
    assert.match(workers[0].output(), /role: worker/);
    assert.equal((await fetch(`${workers[0].url}/readyz`)).status, 200);
    assert.equal((await client(workers[0].url, key)('GET', '/v1/payments')).status, 404, 'a worker serves no API');
    assert.equal((await fetch(`${workers[0].url}/metrics`)).status, 200);

    const db = createPostgresDb({ connectionString: temp.url, max: 2 });
    t.after(() => db.close());
    const allEvents = async () => (await db.query<{ id: string }>('SELECT id FROM events')).rows;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const left = (await api('GET', '/v1/refunds?status=pending&limit=100')).body.data.length;
      const events = await allEvents();
      if (left === 0 && events.length > 0 && events.every((e) => rx.byEvent.has(e.id))) break;
      assert.ok(Date.now() < deadline, `workers finished within 30 s (pending ${left}, events ${events.length}, delivered ${rx.byEvent.size})`);
      await sleep(100);
    }
    await sleep(500); // a second delivery of any event would arrive meanwhile

    for (const r of refunds) {
      const g = await api('GET', `/v1/refunds/${r.id}`);
      assert.equal(g.body.status, 'succeeded', g.raw);
    }
    for (const p of payments) {
      const g = await api('GET', `/v1/payments/${p.id}`);
      const psp = await (await fetch(`${sim!.url}/_sim/payments/${p.connector_ref}`)).json() as { amount_refunded: number };
      assert.equal(g.body.amount_refunded, 6_000);
      assert.equal(psp.amount_refunded, 6_000, 'the PSP refunded what the gateway booked');
    }
    const stats = await (await fetch(`${sim!.url}/_sim/stats`)).json() as { duplicate_applications: number };
    assert.equal(stats.duplicate_applications, 0);
    const twice = [...rx.byEvent].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'every event delivered once');
    const events = await allEvents();
    assert.equal(rx.byEvent.size, events.length);

    {
      assert.deepEqual((await verifyLedger(db)).violations, []);
      const bookings = await db.query<{ n: number; refunds: number }>(
        `SELECT (SELECT count(*) FROM ledger_transactions WHERE type = 'refund')::int AS n,
                (SELECT count(*) FROM refunds WHERE status = 'succeeded')::int AS refunds`);
      assert.equal(bookings.rows[0].n, bookings.rows[0].refunds, 'one booking per refund');
      const deliveries = await db.query<{ n: number; succeeded: number; attempts: number }>(
        `SELECT count(*)::int AS n, (count(*) FILTER (WHERE status = 'succeeded'))::int AS succeeded,
                coalesce(sum(attempts), 0)::int AS attempts FROM webhook_deliveries`);
      assert.equal(deliveries.rows[0].n, events.length);
      assert.equal(deliveries.rows[0].succeeded, deliveries.rows[0].n);
      assert.equal(deliveries.rows[0].attempts, deliveries.rows[0].n, 'one attempt per delivery');
    }
  });
});
