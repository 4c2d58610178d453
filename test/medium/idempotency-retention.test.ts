import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Db } from '../../src/db/db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { SecretBox } from '../../src/lib/crypto.js';
import { IdempotencyService } from '../../src/modules/idempotency/idempotency.service.js';

const box = new SecretBox(Buffer.alloc(32, 7));
const scope = (key: string) => ({ merchantId: 'mer_1', testMode: true, key });

/** An idempotency service on a fresh, migrated in-memory database. */
async function withService(fn: (svc: IdempotencyService, db: Db) => Promise<void>): Promise<void> {
  const db = await createPgliteDb('memory://');
  try {
    await migrate(db);
    await fn(new IdempotencyService(db, box, { lockMs: 1000, retentionHours: 24 }), db);
  } finally {
    await db.close();
  }
}

describe('idempotency key retention', () => {
  test('the cleanup job deletes stored responses past the retention window and keeps the rest', () =>
    withService(async (svc, db) => {
      for (const key of ['old-done', 'new-done', 'old-in-flight', 'old-dead']) {
        assert.equal((await svc.begin(scope(key), 'POST', '/v1/refunds', 'h')).kind, 'proceed');
      }
      await svc.complete(scope('old-done'), { status: 201, body: '{}', headers: {} });
      await svc.complete(scope('new-done'), { status: 201, body: '{}', headers: {} });
      await db.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key IN ('old-done', 'old-in-flight', 'old-dead')`);
      await db.query(`UPDATE idempotency_keys SET locked_until = now() - interval '1 hour' WHERE key = 'old-dead'`);
      assert.equal(await svc.purgeExpired(), 2);
      const left = (await db.query<{ key: string }>('SELECT key FROM idempotency_keys ORDER BY key')).rows.map((r) => r.key);
      // an in-flight key whose lease still runs is never purged under its owner; a dead one is
      assert.deepEqual(left, ['new-done', 'old-in-flight']);
      const replay = await svc.begin(scope('new-done'), 'POST', '/v1/refunds', 'h');
      assert.equal(replay.kind, 'replay');
      const reused = svc.begin(scope('new-done'), 'POST', '/v1/refunds', 'other');
      await assert.rejects(reused, /different request/);
      // after the purge the old key is free again
      assert.equal((await svc.begin(scope('old-done'), 'POST', '/v1/refunds', 'x')).kind, 'proceed');
    }));

  test('a response that shows a secret is stored sealed, replayed in clear, and opens only under its own key', () =>
    withService(async (svc, db) => {
      const body = '{"object":"webhook_endpoint","secret":"whsec_0123456789abcdefghijklmnop"}';
      assert.equal((await svc.begin(scope('sealed'), 'POST', '/v1/webhook_endpoints', 'h')).kind, 'proceed');
      await svc.complete(scope('sealed'), { status: 201, body, headers: {} }, true);
      assert.equal((await svc.begin(scope('plain'), 'POST', '/v1/payments', 'h')).kind, 'proceed');
      await svc.complete(scope('plain'), { status: 201, body: '{"object":"payment"}', headers: {} });

      const stored = (await db.query<{ key: string; response_body: string }>('SELECT key, response_body FROM idempotency_keys ORDER BY key')).rows;
      assert.deepEqual(stored.map((r) => r.key), ['plain', 'sealed']);
      assert.equal(stored[0].response_body, '{"object":"payment"}', 'an ordinary response is kept as sent');
      assert.ok(!stored[1].response_body.includes('whsec_'), `the secret is not in clear: ${stored[1].response_body}`);
      assert.match(stored[1].response_body, /^sealed:v1\./);

      const replay = await svc.begin(scope('sealed'), 'POST', '/v1/webhook_endpoints', 'h');
      assert.equal(replay.kind, 'replay');
      assert.equal(replay.kind === 'replay' && replay.response.body, body, 'replayed byte for byte');

      // a sealed answer copied under another key does not open: it is bound to its own scope
      await db.query(`UPDATE idempotency_keys SET response_body = $1 WHERE key = 'plain'`, [stored[1].response_body]);
      await assert.rejects(svc.begin(scope('plain'), 'POST', '/v1/payments', 'h'));
    }));
});
