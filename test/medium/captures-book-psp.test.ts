import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRuntime } from '../../src/bootstrap.js';
import { loadConfig } from '../../src/config.js';
import type { Connector, ConnectorRegistry } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { controlledSandbox } from '../helpers/controlled-sandbox.js';
import { createPostgresDb } from '../../src/db/postgres.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/lib/logger.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { ADMIN_KEY, createHarness, ENCRYPTION_KEY, pay, type Harness } from '../helpers/harness.js';

async function ledgerCaptured(h: Harness, paymentId: string): Promise<number> {
  const rows = await h.db.query<{ amount: string }>(
    `SELECT e.amount FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
      WHERE t.payment_id = $1 AND t.type = 'capture' AND e.direction = 'credit'`,
    [paymentId],
  );
  return rows.rows.reduce((s, r) => s + Number(r.amount), 0);
}

describe('captures book what the PSP captured (PostgreSQL)', () => {
  const psp = new SandboxPsp();
  const { control, connectors } = controlledSandbox(psp);
  let h: Harness;
  let skip = false;

  before(async (t) => {
    skip = !(await postgresOrSkip(t as never));
    if (!skip) h = await createHarness('postgres', { connectors });
  });
  after(async () => {
    await h?.close();
    psp.dispose();
  });

  it('a capture retried with another amount after a lost PSP answer books and states only what the PSP captured', async (t) => {
    if (skip) return t.skip('PostgreSQL unavailable');
    const key = h.merchant.testKey;
    const p = await pay(h, { amount: 10_000, capture_method: 'manual' });
    control.loseNextCaptureAnswer = true;
    const lost = await h.call('POST', `/v1/payments/${p.id}/capture`, { key, body: { amount: 3000 } });
    assert.equal(lost.status, 502);
    assert.equal(psp.totals(p.connector_ref).amount_captured, 3000);

    const retry = await h.call('POST', `/v1/payments/${p.id}/capture`, { key, body: { amount: 7000 } });
    assert.equal(retry.status, 409);
    assert.equal(retry.body.error.code, 'not_capturable');
    assert.equal(retry.body.error.amount_captured, 3000);
    assert.match(retry.body.error.message, /3000/);

    const stored = await h.call('GET', `/v1/payments/${p.id}`, { key });
    assert.equal(stored.body.amount_captured, 3000);
    assert.equal(stored.body.status, 'succeeded');
    assert.equal(await ledgerCaptured(h, p.id), 3000);
  });

  it('a retry with the amount the PSP captured succeeds with that amount', async (t) => {
    if (skip) return t.skip('PostgreSQL unavailable');
    const key = h.merchant.testKey;
    const p = await pay(h, { amount: 10_000, capture_method: 'manual' });
    control.loseNextCaptureAnswer = true;
    assert.equal((await h.call('POST', `/v1/payments/${p.id}/capture`, { key, body: { amount: 4000 } })).status, 502);
    const retry = await h.call('POST', `/v1/payments/${p.id}/capture`, { key, body: { amount: 4000 } });
    assert.equal(retry.status, 200);
    assert.equal(retry.body.amount_captured, 4000);
    assert.equal(await ledgerCaptured(h, p.id), 4000);
  });

  it('two captures of different amounts racing on two gateway instances never answer 2xx with an amount the PSP did not capture', async (t) => {
    if (skip) return t.skip('PostgreSQL unavailable');
    // A second gateway on the same database, sharing the PSP: two processes' worth of state.
    const config = loadConfig({
      SETTLE_DATA_DIR: '/nonexistent-unused',
      SETTLE_ADMIN_KEY: ADMIN_KEY,
      SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY,
      LOG_LEVEL: 'silent',
      SETTLE_RATE_LIMIT_PER_SECOND: '0',
      SETTLE_AUTH_FAILURES_PER_MINUTE: '0',
      DATABASE_URL: h.dbUrl!,
    });
    const db2 = createPostgresDb({ connectionString: h.dbUrl!, max: 4 });
    const rt2 = await createRuntime(config, createLogger('silent'), { db: db2, connectors });
    const app2 = await buildApp({ config, db: db2, logger: createLogger('silent'), services: rt2.services, adminKey: ADMIN_KEY });
    try {
      for (let round = 0; round < 5; round += 1) {
        const p = await pay(h, { amount: 10_000, capture_method: 'manual' });
        control.holdCapturesUntil = 2;
        control.arrived = 0;
        const headers = { authorization: `Bearer ${h.merchant.testKey}`, 'content-type': 'application/json' };
        const [a, b] = await Promise.all([
          h.app.inject({ method: 'POST', url: `/v1/payments/${p.id}/capture`, headers, payload: JSON.stringify({ amount: 2500 }) }),
          app2.inject({ method: 'POST', url: `/v1/payments/${p.id}/capture`, headers, payload: JSON.stringify({ amount: 6000 }) }),
        ]);
        control.holdCapturesUntil = 0;
        const captured = psp.totals(p.connector_ref).amount_captured;
        assert.ok(captured === 2500 || captured === 6000);
        for (const [res, asked] of [[a, 2500], [b, 6000]] as const) {
          if (res.statusCode === 200) {
            assert.equal(asked, captured, `a 200 for ${asked} while the PSP captured ${captured}`);
            assert.equal(res.json().amount_captured, captured);
          } else {
            assert.equal(res.statusCode, 409);
            assert.equal(res.json().error.code, 'not_capturable');
          }
        }
        assert.equal([a, b].filter((r) => r.statusCode === 200).length, 1, 'exactly the capture the PSP applied succeeds');
        assert.equal(await ledgerCaptured(h, p.id), captured);
        const stored = await h.call('GET', `/v1/payments/${p.id}`, { key: h.merchant.testKey });
        assert.equal(stored.body.amount_captured, captured);
      }
    } finally {
      control.holdCapturesUntil = 0;
      await app2.close();
      await db2.close();
    }
  });

  it('an authorization books the amount the PSP authorized', async (t) => {
    if (skip) return t.skip('PostgreSQL unavailable');
    const partial = new SandboxPsp();
    const inner = createSandboxConnector({ psp: partial });
    // A PSP that approves only part of the amount (a partial authorization).
    const partialConnectors = new Map([['sandbox', {
      ...inner,
      async authorize(ctx, req) {
        const r = await inner.authorize(ctx, req);
        return r.outcome === 'declined' ? r : { ...r, amount: req.amount - 1000 };
      },
    } satisfies Connector]]) as ConnectorRegistry;
    const h2 = await createHarness('postgres', { connectors: partialConnectors });
    try {
      const auto = await pay(h2, { amount: 5000 });
      assert.equal(auto.amount_captured, 4000);
      assert.equal(await ledgerCaptured(h2, auto.id), 4000);
      const manual = await pay(h2, { amount: 5000, capture_method: 'manual' });
      assert.equal(manual.amount_capturable, 4000);
    } finally {
      await h2.close();
      partial.dispose();
    }
  });
});
