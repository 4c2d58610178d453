import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY, ENCRYPTION_KEY } from '../helpers/harness.js';
import { postgresBinDir, startPrivatePostgres, toolOrSkip, type PrivatePostgres } from '../helpers/private-postgres.js';
import { client, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { createPayments, GATEWAY_ENV, planRefunds, Rng, seedFromEnv, setupMerchant, sleep, type Merchant, type PaymentInfo } from '../reliability/fixtures.js';
import { checkRefundOutcome, ledgerVerify } from '../reliability/invariants.js';
import { RefundTraffic } from '../reliability/refund-traffic.js';

/**
 * The database goes away under refund load (a maintenance restart of a PostgreSQL cluster of the
 * test's own) and comes back: the gateway answers 503 with Retry-After meanwhile, reports not
 * ready, and carries on by itself afterwards with nothing acknowledged lost.
 */
describe('a database restart under refund load', () => {
  let pg: PrivatePostgres | undefined;
  let sim: Proc | undefined;
  let gateway: (Proc & { dataDir: string }) | undefined;
  let merchant: Merchant;
  let payments: PaymentInfo[];
  const rng = new Rng(seedFromEnv());

  before(async (t) => {
    if (!toolOrSkip(t as never, 'PostgreSQL server binaries (initdb, pg_ctl)', postgresBinDir() !== undefined)) return;
    pg = await startPrivatePostgres();
    sim = await spawnPspSim();
    gateway = await spawnGateway({ databaseUrl: pg.url, env: { ...GATEWAY_ENV } });
    merchant = await setupMerchant(gateway.url, sim.url, 'Restart');
    payments = await createPayments(gateway.url, merchant.apiKey, 16, rng);
  });
  after(async () => {
    await Promise.all([gateway?.kill(), sim?.kill()]);
    await pg?.destroy();
  });

  test('answers 503 with Retry-After and is not ready while the database is down, then recovers with nothing lost', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server binaries');
    const pid = gateway!.proc.pid;
    const traffic = new RefundTraffic({ baseUrl: gateway!.url, apiKey: merchant.apiKey });
    traffic.add(planRefunds(payments, 240, 'restart', rng));
    const load = traffic.run({ concurrency: 8, deadline: Date.now() + 90_000 });

    await traffic.afterAttempts(40);
    await pg.stop();
    const api = client(gateway!.url, merchant.apiKey);
    const probes = { readyz: 0, reads: 0, refunds: 0 };
    const outageEnds = Date.now() + 2_500;
    while (Date.now() < outageEnds) {
      const ready = await fetch(`${gateway!.url}/readyz`);
      assert.equal(ready.status, 503, 'not ready while the database is down');
      assert.ok(ready.headers.get('retry-after'));
      probes.readyz++;
      for (const [what, res] of [
        ['reads', await api('GET', `/v1/payments/${payments[0].id}`)],
        ['refunds', await api('POST', `/v1/payments/${payments[1].id}/refunds`, { amount: 100 }, { 'Idempotency-Key': `outage-probe-${probes.refunds}` })],
      ] as const) {
        assert.equal(res.status, 503, res.raw);
        assert.equal(res.body.error.code, 'service_unavailable', res.raw);
        assert.equal(res.body.error.type, 'api_error');
        assert.equal(res.headers.get('retry-after'), '2');
        assert.equal(res.body.error.request_id, res.headers.get('request-id'));
        probes[what]++;
      }
      await sleep(100);
    }
    const attemptsBefore = traffic.completed;
    await pg.start();

    // ready again without any restart of the gateway
    const readyBy = Date.now() + 20_000;
    while ((await fetch(`${gateway!.url}/readyz`)).status !== 200) {
      assert.ok(Date.now() < readyBy, 'ready again within 20 s of the database coming back');
      await sleep(100);
    }
    await load;
    assert.equal(gateway!.proc.exitCode, null, 'the gateway process never exited');
    assert.equal(gateway!.proc.pid, pid);
    assert.ok(traffic.completed > attemptsBefore, 'refund traffic went on after the outage');
    assert.ok(probes.readyz > 0 && probes.refunds > 0, JSON.stringify(probes));

    // every server error the load saw was the outage's 503, never a 500
    const serverErrors = traffic.requests.flatMap((r) => r.attempts).filter((a) => a.kind === 'answer' && a.status >= 500);
    assert.ok(serverErrors.length > 0, 'the load ran into the outage');
    assert.deepEqual([...new Set(serverErrors.map((a) => a.kind === 'answer' && `${a.status} ${a.code}`))], ['503 service_unavailable']);
    assert.deepEqual(traffic.violations, []);

    // (the probes' refunds answered 503 wrote nothing: a refund nobody was answered with is a violation)
    const outcome = await checkRefundOutcome({
      gatewayUrl: gateway!.url, simUrl: sim!.url, apiKey: merchant.apiKey, traffic, payments, pendingWaitMs: 20_000,
    });
    assert.deepEqual(outcome.violations, []);
    assert.ok(outcome.figures.acknowledged > 0, JSON.stringify(outcome.figures));
    assert.deepEqual(await ledgerVerify({ DATABASE_URL: pg.url, SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY, SETTLE_ADMIN_KEY: ADMIN_KEY, SETTLE_DATA_DIR: gateway!.dataDir }), []);
  });
});
