import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createPostgresDb } from '../../src/db/postgres.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY, ENCRYPTION_KEY } from '../helpers/harness.js';
import { pgbouncerBinary, startPgBouncer, toolOrSkip, type PgBouncer } from '../helpers/private-postgres.js';
import { runSettle, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { createPayments, GATEWAY_ENV, planRefunds, Rng, seedFromEnv, setupMerchant, type Merchant, type PaymentInfo } from '../reliability/fixtures.js';
import { checkRefundOutcome, ledgerVerify } from '../reliability/invariants.js';
import { RefundTraffic } from '../reliability/refund-traffic.js';

/**
 * PgBouncer in transaction pooling mode (no named prepared statements across transactions) in
 * front of one database, three API processes and a worker through it; one API process is killed
 * mid-load. The pooler hands each transaction whichever server connection is free, so this is
 * where pipelined statements or prepared statements tied to one connection would break.
 */
describe('behind PgBouncer in transaction pooling mode', () => {
  let temp: TempDatabase | undefined;
  let bouncer: PgBouncer | undefined;

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    if (!toolOrSkip(t as never, 'pgbouncer', pgbouncerBinary() !== undefined)) return;
    temp = await createTempDatabase();
    bouncer = await startPgBouncer(temp.url, { poolSize: 6 });
  });
  after(async () => {
    await bouncer?.stop();
    await temp?.drop();
  });

  test('left on, named prepared statements are turned off by the first one the pooler refuses', async (t) => {
    if (!bouncer) return t.skip('no postgres or pgbouncer');
    // one server connection for the test's two client connections: the second client's PARSE of a
    // name the first one prepared on it is refused (42P05), and its BIND of a name prepared only
    // by the first client would be too (26000)
    const single = await startPgBouncer(temp!.url, { poolSize: 1 });
    let refused = 0;
    const db = createPostgresDb({ connectionString: single.url, max: 2, prepare: true, onPreparedStatementsRefused: () => refused++ });
    try {
      for (let round = 0; round < 5; round++) {
        const answers = await Promise.all(Array.from({ length: 8 }, (_, i) =>
          db.transaction(async (tx) => {
            await tx.query('SELECT $1::int AS n', [i]);
            return (await tx.lastQuery<{ n: number }>('SELECT $1::int + 1 AS n', [i])).rows[0].n;
          })));
        assert.deepEqual(answers, [1, 2, 3, 4, 5, 6, 7, 8]);
        const plain = await Promise.all(Array.from({ length: 8 }, (_, i) => db.query<{ n: number }>('SELECT $1::int * 2 AS n', [i])));
        assert.deepEqual(plain.map((r) => r.rows[0].n), [0, 2, 4, 6, 8, 10, 12, 14]);
      }
      assert.equal(refused, 1, 'turned off once, on the first refusal');
    } finally {
      await db.close();
      await single.stop();
    }
  });

  test('three API processes and a worker keep every money invariant through concurrent refunds and a killed process', async (t) => {
    if (!bouncer) return t.skip('no postgres or pgbouncer');
    const env = { ...GATEWAY_ENV, SETTLE_DB_PREPARED_STATEMENTS: 'false', SETTLE_DB_POOL_SIZE: '6' };
    const rng = new Rng(seedFromEnv());
    const sim = await spawnPspSim();
    const procs: Proc[] = [];
    try {
      const apis: (Proc & { dataDir: string })[] = [];
      for (let i = 0; i < 3; i++) apis.push(await spawnGateway({ databaseUrl: bouncer.url, args: ['--role', 'api'], env }));
      procs.push(...apis);
      const worker = await spawnGateway({ databaseUrl: bouncer.url, args: ['--role', 'worker'], env });
      procs.push(worker);
      const merchant: Merchant = await setupMerchant(apis[0].url, sim.url, 'Pooled');
      const payments: PaymentInfo[] = await createPayments(apis[1].url, merchant.apiKey, 16, rng);

      // client-side rotation over the API processes still up; concurrent refunds on shared
      // payments (a fifth of them hot) reach every process
      const alive = new Set(apis);
      let turn = 0;
      const traffic = new RefundTraffic({
        baseUrl: apis[0].url,
        apiKey: merchant.apiKey,
        pickBaseUrl: () => [...alive][turn++ % alive.size].url,
      });
      traffic.add(planRefunds(payments, 300, 'pooled', rng));
      const load = traffic.run({ concurrency: 12, deadline: Date.now() + 90_000 });
      await traffic.afterAttempts(100);
      alive.delete(apis[2]);
      await apis[2].kill('SIGKILL');
      await load;

      assert.deepEqual(traffic.violations, []);
      const serverErrors = traffic.requests.flatMap((r) => r.attempts).filter((a) => a.kind === 'answer' && a.status >= 500);
      assert.deepEqual(serverErrors, [], 'the pooler never made the gateway fail a request');
      const outcome = await checkRefundOutcome({
        gatewayUrl: apis[0].url, simUrl: sim.url, apiKey: merchant.apiKey, traffic, payments, pendingWaitMs: 20_000,
      });
      assert.deepEqual(outcome.violations, []);
      assert.ok(outcome.figures.acknowledged > 50, JSON.stringify(outcome.figures));
      const cli = {
        DATABASE_URL: bouncer.url, SETTLE_DB_PREPARED_STATEMENTS: 'false', LOG_LEVEL: 'warn',
        SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY, SETTLE_ADMIN_KEY: ADMIN_KEY, SETTLE_DATA_DIR: apis[0].dataDir,
      };
      assert.deepEqual(await ledgerVerify(cli), []);
      // the PSP agrees with the gateway, payment by payment, as the reconciliation reads it
      const reconcile = await runSettle(['reconcile', '--since', '1h'], cli);
      assert.equal(reconcile.code, 0, reconcile.output);
      assert.match(reconcile.output, new RegExp(`checked ${payments.length} payments .*; 0 differences`));
      for (const p of [apis[0], apis[1], worker]) {
        assert.equal(p.proc.exitCode, null);
        assert.doesNotMatch(p.output(), /prepared statement/, 'no statement was prepared through the pooler');
      }
    } finally {
      await Promise.all([...procs, sim].map((p) => p.kill()));
    }
  });
});
