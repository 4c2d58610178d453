import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTempDatabase, postgresAvailable, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, spawnGateway, type Proc } from '../helpers/processes.js';
import { openSse } from '../helpers/sse.js';

/**
 * GET /v1/events/stream between real processes: events as they are committed, resumed exactly
 * after Last-Event-ID, the permission and mode checks, events written by another gateway process
 * (PostgreSQL), and a shutdown that open streams do not hold up.
 */
describe('the event stream', () => {
  let temp: TempDatabase | undefined;
  let a: Proc;
  let b: Proc | undefined;
  let keys: { test: string; live: string };
  let otherKey: string;

  before(async () => {
    const pg = await postgresAvailable();
    if (pg) temp = await createTempDatabase();
    const env = { SETTLE_EVENT_STREAM_POLL_MS: '100', SETTLE_EVENT_STREAM_HEARTBEAT_MS: '400' };
    a = await spawnGateway({ databaseUrl: temp?.url, env, readyTimeoutMs: 120_000 });
    // a second process on the same database writes events the first one must stream
    if (temp) b = await spawnGateway({ databaseUrl: temp.url, env, readyTimeoutMs: 120_000 });
    const admin = client(a.url, ADMIN_KEY);
    const m = await admin('POST', '/v1/admin/merchants', { name: 'Streamer' });
    keys = m.body.api_keys;
    await client(a.url, keys.test)('POST', '/v1/connector_accounts', { connector: 'sandbox' });
    const other = await admin('POST', '/v1/admin/merchants', { name: 'Someone else' });
    otherKey = other.body.api_keys.test;
    await client(a.url, otherKey)('POST', '/v1/connector_accounts', { connector: 'sandbox' });
  });
  after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await temp?.drop();
  });

  const stream = (key: string, headers: Record<string, string> = {}, query = '') =>
    openSse(`${a.url}/v1/events/stream${query}`, { authorization: `Bearer ${key}`, ...headers });
  const pay = async (key: string, body: Record<string, unknown> = {}, on = a) => {
    const r = await client(on.url, key)('POST', '/v1/payments', { amount: 1200, currency: 'EUR', payment_method: 'pm_card_visa', ...body });
    assert.ok([201, 402].includes(r.status), r.raw);
    return r.body;
  };
  /** The merchant's events in the order they were made, oldest first. */
  const eventIds = async (key: string) => {
    const r = await client(a.url, key)('GET', '/v1/events?limit=100');
    return (r.body.data as { id: string }[]).map((e) => e.id).reverse();
  };

  test('sends each event as it is committed, with keep-alive comments, and only the merchant\'s own', async () => {
    const s = await stream(keys.test);
    try {
      assert.equal(s.status, 200);
      assert.match(s.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.match(s.headers.get('request-id') ?? '', /^req_/);
      await pay(otherKey); // another merchant's event never reaches this stream
      const p = await pay(keys.test);
      const [m] = await s.waitFor(1);
      assert.equal(m.event, 'payment.succeeded');
      const event = JSON.parse(m.data);
      assert.equal(m.id, event.id);
      assert.equal(event.data.object.id, p.id);
      assert.equal(event.test_mode, true);
      // exactly the body GET /v1/events/:id shows
      const stored = await client(a.url, keys.test)('GET', `/v1/events/${event.id}`);
      assert.equal(stored.body.type, 'payment.succeeded');
      assert.deepEqual(event.data, stored.body.data);
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(s.comments.filter((c) => c.includes('keep-alive')).length >= 1, `comments: ${JSON.stringify(s.comments)}`);
      assert.equal(s.messages.length, 1, s.messages.map((x) => x.event).join());
    } finally {
      s.close();
    }
  });

  test('resumes right after Last-Event-ID: nothing lost, nothing repeated', async () => {
    const first = await stream(keys.test);
    await pay(keys.test);
    await pay(keys.test, { capture_method: 'manual' }).then((p) => client(a.url, keys.test)('POST', `/v1/payments/${p.id}/cancel`));
    const got = await first.waitFor(2);
    first.close();
    const lastSeen = got[got.length - 1].id!;
    // made while nobody listens
    const refunded = await pay(keys.test);
    await client(a.url, keys.test)('POST', `/v1/payments/${refunded.id}/refunds`, { amount: 500 });
    await pay(keys.test, { payment_method: 'pm_card_declined_insufficient_funds' });
    const all = await eventIds(keys.test);
    const expected = all.slice(all.indexOf(lastSeen) + 1);
    assert.ok(expected.length >= 5, `events after ${lastSeen}: ${expected.join()}`);

    const resumed = await stream(keys.test, { 'last-event-id': lastSeen });
    try {
      const messages = await resumed.waitFor(expected.length);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(resumed.messages.map((m) => m.id), expected);
      assert.deepEqual(messages.map((m) => m.event), ['payment.succeeded', 'refund.created', 'refund.succeeded', 'payment.partially_refunded', 'payment.failed']);
      assert.equal(JSON.parse(messages[4].data).data.object.status, 'failed');
    } finally {
      resumed.close();
    }
    // a filter by type, resumed from the same place
    const filtered = await stream(keys.test, { 'last-event-id': lastSeen }, '?types=refund.created,refund.succeeded');
    try {
      await filtered.waitFor(2);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(filtered.messages.map((m) => m.event), ['refund.created', 'refund.succeeded']);
    } finally {
      filtered.close();
    }
  });

  test('refuses a key without events:read, a live key without live=true, and an unknown or foreign Last-Event-ID', async () => {
    const api = client(a.url, keys.test);
    const without = await api('POST', '/v1/api_keys', { name: 'no events', permissions: ['payments:read'] });
    const refused = await stream(without.body.secret);
    assert.equal(refused.status, 403, refused.body);
    const err = JSON.parse(refused.body!).error;
    assert.equal(err.code, 'insufficient_permissions');
    assert.equal(err.permission, 'events:read');
    const reader = await api('POST', '/v1/api_keys', { name: 'events', permissions: ['events:read'] });
    const allowed = await stream(reader.body.secret);
    assert.equal(allowed.status, 200);
    allowed.close();

    const live = await stream(keys.live);
    assert.equal(live.status, 400);
    assert.equal(JSON.parse(live.body!).error.param, 'live');
    const liveOk = await stream(keys.live, {}, '?live=true');
    assert.equal(liveOk.status, 200);
    liveOk.close();

    const malformed = await stream(keys.test, { 'last-event-id': 'not an id' });
    assert.equal(malformed.status, 400);
    assert.equal(JSON.parse(malformed.body!).error.param, 'Last-Event-ID');
    const [foreign] = await eventIds(otherKey);
    const notOurs = await stream(keys.test, { 'last-event-id': foreign });
    assert.equal(notOurs.status, 404);
    assert.equal(JSON.parse(notOurs.body!).error.code, 'event_not_found');
    const badType = await stream(keys.test, {}, '?types=payment.succeeded,payment.exploded');
    assert.equal(badType.status, 400);
    assert.equal(JSON.parse(badType.body!).error.param, 'types');
    const noKey = await openSse(`${a.url}/v1/events/stream`, {});
    assert.equal(noKey.status, 401);
  });

  test('streams events written by another gateway process (PostgreSQL)', async (t) => {
    if (!b) return t.skip('no PostgreSQL: one process per embedded database');
    const s = await stream(keys.test);
    try {
      const made = [];
      for (let i = 0; i < 5; i++) made.push((await pay(keys.test, {}, i % 2 ? a : b)).id);
      const got = await s.waitFor(5);
      assert.deepEqual(got.map((m) => JSON.parse(m.data).data.object.id), made);
    } finally {
      s.close();
    }
  });

  test('ends open streams at shutdown, without holding the process', async () => {
    const s = await stream(keys.test);
    assert.equal(s.status, 200);
    const started = Date.now();
    const code = await a.kill('SIGTERM');
    const took = Date.now() - started;
    await s.ended;
    assert.equal(code, 0, a.output().slice(-2000));
    assert.ok(took < 15_000, `shutdown took ${took} ms`);
  });
});
