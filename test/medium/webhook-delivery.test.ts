/**
 * Outbound webhooks against a real database: PGlite in memory, and PostgreSQL when reachable
 * (required under CI=true). Real HTTP receivers on 127.0.0.1; a tiny retry schedule.
 */
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../../src/config.js';
import { AppError } from '../../src/http/errors.js';
import { SecretBox } from '../../src/lib/crypto.js';
import { newId } from '../../src/lib/ids.js';
import { createLogger } from '../../src/lib/logger.js';
import type { AuthContext } from '../../src/modules/merchants/merchants.service.js';
import { emitEvents, type EventType } from '../../src/modules/webhooks/events.repository.js';
import { isPublicAddress } from '../../src/modules/webhooks/url-guard.js';
import { WebhooksService } from '../../src/modules/webhooks/webhooks.service.js';
import { verifySettleSignature } from '../../src/sdk/index.js';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { onEachBackend, type Backend } from '../helpers/two-handles.js';

const SCHEDULE = [0.05, 0.05, 0.05];
const box = new SecretBox(Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex'));
const logger = createLogger('silent');
const configWith = (env: Record<string, string> = {}): Config =>
  loadConfig({ WEBHOOK_RETRY_SCHEDULE: SCHEDULE.join(','), SETTLE_WEBHOOK_TIMEOUT_MS: '2000', SETTLE_WEBHOOK_MERCHANT_CONCURRENCY: '100', LOG_LEVEL: 'silent', ...env });

// ---- a local merchant receiver

interface Hit {
  raw: Buffer;
  headers: IncomingHttpHeaders;
  eventId: string;
  status: number;
}

interface Receiver {
  url: string;
  port: number;
  hits: Hit[];
  close(): Promise<void>;
}

/** Answers 500 to its first `failFirst` requests (all of them with `alwaysFail`), then 200. */
async function startReceiver(opts: { failFirst?: number; alwaysFail?: boolean; delayMs?: number } = {}): Promise<Receiver> {
  const hits: Hit[] = [];
  let seen = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const n = ++seen;
      const status = opts.alwaysFail || n <= (opts.failFirst ?? 0) ? 500 : 200;
      const raw = Buffer.concat(chunks);
      hits.push({ raw, headers: req.headers, eventId: String(req.headers['settle-event-id']), status });
      const reply = () => res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"received":true}' : '{"error":"boom"}');
      if (opts.delayMs) setTimeout(reply, opts.delayMs);
      else reply();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    hits,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- database backends

await onEachBackend(suite);

function suite(name: string, open: () => Promise<Backend>, skip?: string): void {
  describe(`webhook delivery on ${name}`, { skip }, () => {
    let backend: Backend;
    let service: WebhooksService;
    const services: WebhooksService[] = [];
    const cleanups: Array<() => Promise<unknown>> = [];

    before(async () => {
      backend = await open();
      service = track(new WebhooksService(backend.db, box, configWith(), logger));
    });

    afterEach(async () => {
      // end everything a test left pending, so a later test's worker passes never touch it
      while (cleanups.length) await cleanups.pop()!().catch(() => {});
    });

    after(async () => {
      await Promise.all(services.map((s) => s.close()));
      await backend?.close();
    });

    function track(s: WebhooksService): WebhooksService {
      services.push(s);
      return s;
    }

    async function merchant(testMode = true): Promise<AuthContext> {
      const id = newId('mer');
      await backend.db.query('INSERT INTO merchants (id, name) VALUES ($1, $2)', [id, `Merchant ${id}`]);
      return { merchantId: id, testMode, keyPrefix: `sk_${testMode ? 'test' : 'live'}_abcdefgh` };
    }

    async function receiver(opts?: Parameters<typeof startReceiver>[0]): Promise<Receiver> {
      const r = await startReceiver(opts);
      cleanups.push(() => r.close());
      return r;
    }

    async function endpoint(auth: AuthContext, url: string, enabled_events: string[] = ['*'], via = service) {
      const created = await via.createEndpoint(auth, { url, enabled_events });
      cleanups.push(() => service.deleteEndpoint(auth, created.id));
      return created;
    }

    async function emit(auth: AuthContext, ...types: EventType[]): Promise<string[]> {
      return backend.db.transaction((tx) =>
        emitEvents(
          tx,
          auth.merchantId,
          auth.testMode,
          types.map((type, i) => ({ type, object: { id: `pay_${i}_${auth.merchantId}`, object: 'payment', amount: 1000 + i } })),
        ),
      );
    }

    async function delivery(eventId: string, endpointId: string) {
      const r = await backend.db.query<{ status: string; attempts: number; delay: number | null; last_http_status: number | null }>(
        `SELECT status, attempts, last_http_status,
                extract(epoch FROM next_attempt_at - updated_at)::float8 AS delay
         FROM webhook_deliveries WHERE event_id = $1 AND endpoint_id = $2`,
        [eventId, endpointId],
      );
      return r.rows[0];
    }

    /** Runs worker passes until `done()` holds. */
    async function until(done: () => boolean | Promise<boolean>, what: string, via = service, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!(await done())) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
        await via.deliverDue();
        await sleep(10);
      }
    }

    async function storedBody(eventId: string): Promise<string> {
      return (await backend.db.query<{ body: string }>('SELECT body FROM events WHERE id = $1', [eventId])).rows[0].body;
    }

    async function rejectsWith(p: Promise<unknown>, code: string, param?: string): Promise<void> {
      await assert.rejects(p, (err: unknown) => {
        assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`);
        assert.equal(err.code, code);
        if (param !== undefined) assert.equal(err.param, param);
        return true;
      });
    }

    it('signs every delivery per Standard Webhooks, verified by the standardwebhooks library with the endpoint secret', async () => {
      const auth = await merchant();
      const r = await receiver({ failFirst: 1 });
      const ep = await endpoint(auth, r.url, ['payment.succeeded']);
      const [paid] = await emit(auth, 'payment.succeeded');
      await until(() => r.hits.some((h) => h.status === 200), 'the retried delivery');
      assert.ok(r.hits.length >= 2);
      const wh = new Webhook(ep.secret);
      for (const hit of r.hits) {
        const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(hit.headers[h])]));
        assert.equal(headers['webhook-id'], paid, 'the message id is the event id, the same on every attempt');
        assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
        const verified = wh.verify(hit.raw.toString('utf8'), headers) as { id: string };
        assert.equal(verified.id, paid);
        assert.throws(() => wh.verify(hit.raw.toString('utf8') + ' ', headers), WebhookVerificationError);
        assert.throws(() => new Webhook(`whsec_${Buffer.from('another secret of 24 b!!').toString('base64')}`).verify(hit.raw.toString('utf8'), headers), WebhookVerificationError);
        // and the Settle-Signature of the same delivery still verifies
        assert.equal(verifySettleSignature({ payload: hit.raw, header: String(hit.headers['settle-signature']), secret: ep.secret }), true);
      }
    });

    it('delivers the stored event body, signed, only for subscribed types', async () => {
      const auth = await merchant();
      const r = await receiver();
      const ep = await endpoint(auth, r.url, ['payment.succeeded']);
      assert.match(ep.id, /^we_/);
      assert.match(ep.secret, /^whsec_[A-Za-z0-9]{32}$/);
      assert.deepEqual(
        { object: ep.object, url: ep.url, enabled_events: ep.enabled_events, status: ep.status, test_mode: ep.test_mode, description: ep.description },
        { object: 'webhook_endpoint', url: r.url, enabled_events: ['payment.succeeded'], status: 'enabled', test_mode: true, description: null },
      );
      // the secret is stored sealed, bound to the endpoint id, and never shown again
      const sealed = (await backend.db.query<{ secret_sealed: string }>('SELECT secret_sealed FROM webhook_endpoints WHERE id = $1', [ep.id])).rows[0].secret_sealed;
      assert.ok(!sealed.includes(ep.secret));
      assert.equal(box.open(sealed, ep.id), ep.secret);
      assert.throws(() => box.open(sealed, 'we_other'));
      assert.equal('secret' in (await service.retrieveEndpoint(auth, ep.id)), false);

      const [paid, refundCreated] = await emit(auth, 'payment.succeeded', 'refund.created');
      await until(() => r.hits.length >= 1, 'the first delivery');
      for (let i = 0; i < 3; i++) await service.deliverDue();
      assert.equal(r.hits.length, 1, 'the unsubscribed refund.created event was sent');

      const hit = r.hits[0];
      assert.equal(hit.raw.toString('utf8'), await storedBody(paid), 'the body is not the stored event, byte for byte');
      assert.equal(hit.headers['content-type'], 'application/json');
      assert.equal(hit.headers['user-agent'], 'Settle-Webhooks/1.0');
      assert.equal(hit.headers['settle-event-id'], paid);
      assert.equal(hit.headers['settle-delivery-attempt'], '1');
      assert.match(String(hit.headers['settle-signature']), /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.equal(verifySettleSignature({ payload: hit.raw, header: String(hit.headers['settle-signature']), secret: ep.secret }), true);
      assert.equal(verifySettleSignature({ payload: hit.raw, header: String(hit.headers['settle-signature']), secret: 'whsec_wrong' }), false);

      const event = await service.retrieveEvent(auth, paid);
      assert.equal(event.id, paid);
      assert.equal(event.type, 'payment.succeeded');
      assert.deepEqual(event.deliveries, [{ endpoint_id: ep.id, status: 'succeeded', attempts: 1, next_attempt_at: null }]);
      assert.equal(event.delivery_attempts.length, 1);
      assert.deepEqual({ ...event.delivery_attempts[0], duration_ms: 0, attempted_at: '' }, {
        endpoint_id: ep.id, attempt: 1, http_status: 200, category: 'http_status', error: null, duration_ms: 0, attempted_at: '',
      });
      assert.ok(event.delivery_attempts[0].duration_ms >= 0);
      assert.deepEqual((await service.retrieveEvent(auth, refundCreated)).deliveries, []);
    });

    it('retries a failing endpoint on the schedule, with jitter, recording every attempt', async () => {
      const auth = await merchant();
      const r = await receiver({ failFirst: 2 });
      const ep = await endpoint(auth, r.url);
      const [evt] = await emit(auth, 'payment.captured');

      await until(() => r.hits.length >= 1, 'the first attempt');
      const afterFirst = await delivery(evt, ep.id);
      assert.equal(afterFirst.status, 'pending');
      assert.equal(afterFirst.attempts, 1);
      assert.equal(afterFirst.last_http_status, 500);
      // schedule[0] = 0.05 s, jittered by ×0.8…1.2
      assert.ok(afterFirst.delay! >= 0.04 - 1e-6 && afterFirst.delay! <= 0.06 + 1e-6, `retry delay ${afterFirst.delay}`);

      await until(async () => (await delivery(evt, ep.id)).status === 'succeeded', 'the delivery to succeed');
      assert.deepEqual(r.hits.map((h) => [h.status, h.headers['settle-delivery-attempt']]), [[500, '1'], [500, '2'], [200, '3']]);
      for (const h of r.hits) {
        assert.equal(verifySettleSignature({ payload: h.raw, header: String(h.headers['settle-signature']), secret: ep.secret }), true);
      }
      const event = await service.retrieveEvent(auth, evt);
      assert.deepEqual(event.delivery_attempts.map((a) => [a.attempt, a.http_status, a.endpoint_id]), [[1, 500, ep.id], [2, 500, ep.id], [3, 200, ep.id]]);
      assert.deepEqual(event.deliveries, [{ endpoint_id: ep.id, status: 'succeeded', attempts: 3, next_attempt_at: null }]);
    });

    it('marks the delivery failed once the schedule is exhausted, and stops', async () => {
      const auth = await merchant();
      const r = await receiver({ alwaysFail: true });
      const ep = await endpoint(auth, r.url);
      const [evt] = await emit(auth, 'refund.failed');

      await until(async () => (await delivery(evt, ep.id)).status === 'failed', 'the delivery to fail');
      assert.equal(r.hits.length, SCHEDULE.length + 1);
      await sleep(150);
      for (let i = 0; i < 3; i++) await service.deliverDue();
      assert.equal(r.hits.length, SCHEDULE.length + 1, 'a failed delivery was attempted again');

      const event = await service.retrieveEvent(auth, evt);
      assert.deepEqual(event.delivery_attempts.map((a) => a.http_status), [500, 500, 500, 500]);
      assert.deepEqual(event.deliveries, [{ endpoint_id: ep.id, status: 'failed', attempts: 4, next_attempt_at: null }]);
    });

    it('records a refused connection as an attempt of category connection_refused, without the socket error text', async () => {
      const auth = await merchant();
      const gone = await startReceiver();
      await gone.close(); // nothing listens on this port any more
      const ep = await endpoint(auth, gone.url);
      const [evt] = await emit(auth, 'payment.failed');
      await until(async () => (await service.retrieveEvent(auth, evt)).delivery_attempts.length >= 1, 'an attempt');
      const [attempt] = (await service.retrieveEvent(auth, evt)).delivery_attempts;
      assert.equal(attempt.http_status, null);
      assert.equal(attempt.category, 'connection_refused');
      assert.equal(attempt.error, 'connection refused');
      assert.equal((await delivery(evt, ep.id)).status, 'pending');
    });

    it('counts a receiver that does not answer within the timeout as a failed attempt', async () => {
      const auth = await merchant();
      const r = await receiver({ delayMs: 2000 });
      const impatient = track(new WebhooksService(backend.db, box, configWith({ SETTLE_WEBHOOK_TIMEOUT_MS: '200' }), logger));
      const ep = await endpoint(auth, r.url);
      const [evt] = await emit(auth, 'payment.succeeded');
      const started = Date.now();
      assert.equal(await impatient.deliverDue(), 1);
      assert.ok(Date.now() - started < 1500, 'the POST was not cut off at the timeout');
      const [attempt] = (await service.retrieveEvent(auth, evt)).delivery_attempts;
      assert.equal(attempt.http_status, null);
      assert.equal(attempt.category, 'timeout');
      assert.match(String(attempt.error), /^timeout: no response within 200 ms/);
      assert.ok(attempt.duration_ms >= 190, `duration ${attempt.duration_ms}`);
      assert.equal((await delivery(evt, ep.id)).status, 'pending');
    });

    it('never sends events of another merchant or of the other mode', async () => {
      const a = await merchant(true);
      const aLive: AuthContext = { ...a, testMode: false, keyPrefix: 'sk_live_abcdefgh' };
      const b = await merchant(true);
      const ra = await receiver();
      const rb = await receiver();
      await endpoint(a, ra.url);
      await endpoint(b, rb.url);

      const aTest = await emit(a, 'payment.succeeded', 'refund.created');
      const bTest = await emit(b, 'payment.succeeded');
      const aLiveEvents = await emit(aLive, 'payment.succeeded', 'refund.succeeded');
      await until(() => ra.hits.length >= 2 && rb.hits.length >= 1, 'both receivers');
      for (let i = 0; i < 3; i++) await service.deliverDue();

      assert.deepEqual(ra.hits.map((h) => h.eventId).sort(), [...aTest].sort());
      assert.deepEqual(rb.hits.map((h) => h.eventId), bTest);
      for (const id of aLiveEvents) assert.equal((await service.retrieveEvent(aLive, id)).deliveries.length, 0);
      // nor are they visible across merchants or modes
      await rejectsWith(service.retrieveEvent(b, aTest[0]), 'event_not_found', 'id');
      await rejectsWith(service.retrieveEvent(aLive, aTest[0]), 'event_not_found', 'id');
    });

    it('two concurrent workers never deliver the same delivery twice', async () => {
      const auth = await merchant();
      const r = await receiver({ delayMs: 25 });
      const ep = await endpoint(auth, r.url);
      const worker1 = service;
      const worker2 = track(new WebhooksService(backend.db2, box, configWith(), logger));

      // one simultaneous pass each, over more deliveries than either may take
      const first = await emit(auth, ...Array.from({ length: 30 }, () => 'payment.succeeded' as const));
      const [n1, n2] = await Promise.all([worker1.deliverDue(20), worker2.deliverDue(20)]);
      assert.equal(n1 + n2, 30);
      assert.ok(n1 > 0 && n2 > 0, `one worker took everything (${n1}, ${n2})`);

      // then both workers loop until nothing is left, with small batches
      const second = await emit(auth, ...Array.from({ length: 40 }, () => 'refund.created' as const));
      const loop = async (w: WebhooksService) => {
        const deadline = Date.now() + 15_000;
        while (Date.now() < deadline) {
          const pending = await backend.db.query(`SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'`, [ep.id]);
          if (pending.rowCount === 0) return;
          await w.deliverDue(3);
          await sleep(1);
        }
        assert.fail('deliveries left pending');
      };
      await Promise.all([loop(worker1), loop(worker2)]);

      const receipts = new Map<string, number>();
      for (const h of r.hits) receipts.set(h.eventId, (receipts.get(h.eventId) ?? 0) + 1);
      const twice = [...receipts].filter(([, n]) => n !== 1);
      assert.deepEqual(twice, [], 'an event was delivered more than once');
      assert.deepEqual([...receipts.keys()].sort(), [...first, ...second].sort());
      const attempts = await backend.db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_attempts WHERE endpoint_id = $1', [ep.id]);
      assert.equal(attempts.rows[0].n, 70);
    });

    it('redeliver sends the event again now, also to endpoints created after it', async () => {
      const auth = await merchant();
      const r1 = await receiver();
      const r2 = await receiver();
      const r3 = await receiver();
      const e1 = await endpoint(auth, r1.url);
      const [evt] = await emit(auth, 'payment.refunded');
      await until(() => r1.hits.length >= 1, 'the first delivery');

      const e2 = await endpoint(auth, r2.url, ['payment.refunded', 'refund.succeeded']);
      await endpoint(auth, r3.url, ['refund.created']);
      const answered = await service.redeliver(auth, evt);
      assert.equal(answered.id, evt);
      assert.equal(answered.object, 'event');
      assert.deepEqual(
        answered.deliveries.map((d) => [d.endpoint_id, d.status, d.attempts]).sort(),
        [[e1.id, 'pending', 0], [e2.id, 'pending', 0]].sort(),
      );
      assert.equal(answered.delivery_attempts.length, 1);

      await until(() => r1.hits.length >= 2 && r2.hits.length >= 1, 'the redeliveries');
      for (let i = 0; i < 3; i++) await service.deliverDue();
      assert.equal(r1.hits.length, 2);
      assert.equal(r2.hits.length, 1);
      assert.equal(r3.hits.length, 0, 'an endpoint not subscribed to the type received it');
      assert.equal(r1.hits[1].headers['settle-delivery-attempt'], '1');
      assert.equal(r1.hits[1].raw.toString(), await storedBody(evt));
      assert.equal(verifySettleSignature({ payload: r2.hits[0].raw, header: String(r2.hits[0].headers['settle-signature']), secret: e2.secret }), true);

      await rejectsWith(service.redeliver(auth, 'evt_missing'), 'event_not_found', 'id');
      await rejectsWith(service.redeliver(await merchant(), evt), 'event_not_found', 'id');
    });

    it('deleting an endpoint stops its pending deliveries', async () => {
      const auth = await merchant();
      const r = await receiver({ alwaysFail: true });
      const ep = await service.createEndpoint(auth, { url: r.url, enabled_events: ['*'] });
      const [evt] = await emit(auth, 'payment.canceled');
      await until(() => r.hits.length >= 1, 'the first attempt');

      assert.deepEqual(await service.deleteEndpoint(auth, ep.id), { id: ep.id, object: 'webhook_endpoint', deleted: true });
      assert.equal((await delivery(evt, ep.id)).status, 'failed');
      await sleep(150);
      for (let i = 0; i < 3; i++) await service.deliverDue();
      assert.equal(r.hits.length, 1, 'a deleted endpoint was called');
      await rejectsWith(service.retrieveEndpoint(auth, ep.id), 'webhook_endpoint_not_found', 'id');
      await rejectsWith(service.deleteEndpoint(auth, ep.id), 'webhook_endpoint_not_found', 'id');
      assert.deepEqual((await service.listEndpoints(auth, { limit: 10 })).data, []);
      // new events no longer create deliveries to it
      const [later] = await emit(auth, 'payment.canceled');
      assert.deepEqual((await service.retrieveEvent(auth, later)).deliveries, []);
    });

    it('validates enabled_events and the URL', async () => {
      const auth = await merchant();
      const create = (url: string, enabled_events: string[]) => service.createEndpoint(auth, { url, enabled_events });
      await rejectsWith(create('https://example.com/h', ['payment.succeeded', 'payment.exploded']), 'invalid_param', 'enabled_events[1]');
      await rejectsWith(create('https://example.com/h', ['*', 'payment.succeeded']), 'invalid_param', 'enabled_events');
      await rejectsWith(create('https://example.com/h', []), 'invalid_param', 'enabled_events');
      await rejectsWith(create('ftp://example.com/h', ['*']), 'invalid_param', 'url');
      await rejectsWith(create('example.com/h', ['*']), 'invalid_param', 'url');
      // test mode may use plain http on localhost; duplicates are dropped
      const ok = await service.createEndpoint(auth, { url: 'http://localhost:9/h', enabled_events: ['refund.created', 'refund.created'], description: 'dev' });
      cleanups.push(() => service.deleteEndpoint(auth, ok.id));
      assert.deepEqual([ok.enabled_events, ok.description, ok.url], [['refund.created'], 'dev', 'http://localhost:9/h']);
    });

    it('live mode refuses non-public URLs at creation', async () => {
      const live = await merchant(false);
      const create = (url: string) => service.createEndpoint(live, { url, enabled_events: ['*'] });
      await rejectsWith(create('http://93.184.216.34/hook'), 'invalid_param', 'url');
      for (const url of ['https://127.0.0.1/h', 'https://localhost/h', 'https://[::1]/h', 'https://[::ffff:10.0.0.1]/h', 'https://169.254.169.254/latest', 'https://100.64.0.1/h', 'https://0.0.0.0/h', 'https://2130706433/h']) {
        await rejectsWith(create(url), 'invalid_param', 'url');
      }
      const ok = await create('https://93.184.216.34/hook');
      // deleted at once: nothing in this suite may try to reach the internet
      await service.deleteEndpoint(live, ok.id);
      assert.equal(ok.test_mode, false);

      const permissive = track(new WebhooksService(backend.db, box, configWith({ SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS: 'true' }), logger));
      const allowed = await permissive.createEndpoint(live, { url: 'https://127.0.0.1:9/h', enabled_events: ['*'] });
      await service.deleteEndpoint(live, allowed.id);
    });

    it('live mode re-checks the address at delivery time and records a blocked attempt', async (t: TestContext) => {
      const live = await merchant(false);
      const r = await receiver();
      // accepted while private addresses were allowed (or while DNS said otherwise) …
      const permissive = track(new WebhooksService(backend.db, box, configWith({ SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS: 'true' }), logger));
      const byName = await endpoint(live, `https://localhost:${r.port}/hooks`, ['*'], permissive);
      const byLiteral = await endpoint(live, `https://127.0.0.1:${r.port}/hooks`, ['*'], permissive);
      const [evt] = await emit(live, 'payment.succeeded');

      // … then delivered by a worker that does not allow them
      await until(async () => (await service.retrieveEvent(live, evt)).delivery_attempts.length >= 2, 'two blocked attempts');
      const attempts = (await service.retrieveEvent(live, evt)).delivery_attempts;
      const errorOf = (id: string) => attempts.find((a) => a.endpoint_id === id)?.error;
      assert.match(String(errorOf(byName.id)), /^blocked: localhost is a loopback host name/);
      assert.match(String(errorOf(byLiteral.id)), /^blocked: 127\.0\.0\.1 is a loopback address/);
      assert.ok(attempts.every((a) => a.http_status === null && a.category === 'blocked_address'));
      assert.equal(r.hits.length, 0, 'a blocked address was called');
      assert.equal((await delivery(evt, byName.id)).status, 'pending', 'a blocked attempt is retried like any failure');

      // a name that is not "localhost" but resolves to loopback goes through the connect-time
      // lookup (the DNS-rebinding case)
      const host = hostname();
      const resolved = await lookup(host, { all: true }).catch(() => []);
      if (resolved.length === 0 || resolved.some((a) => isPublicAddress(a.address))) {
        t.diagnostic(`skipped the resolver case: ${host} does not resolve to a non-public address only`);
        return;
      }
      const rebinding = await endpoint(live, `https://${host}:${r.port}/hooks`, ['*'], permissive);
      const [evt2] = await emit(live, 'refund.created');
      await until(async () => (await service.retrieveEvent(live, evt2)).delivery_attempts.some((a) => a.endpoint_id === rebinding.id), 'the rebinding attempt');
      const attempt = (await service.retrieveEvent(live, evt2)).delivery_attempts.find((a) => a.endpoint_id === rebinding.id)!;
      assert.match(String(attempt.error), new RegExp(`^blocked: ${host} resolves to a loopback address`));
      assert.equal(r.hits.length, 0);
    });

    it('lists endpoints and events newest first, with cursors and a type filter', async () => {
      const auth = await merchant();
      const other = await merchant();
      const created: string[] = [];
      for (let i = 0; i < 3; i++) created.push((await endpoint(auth, `http://127.0.0.1:9/h${i}`)).id);
      await endpoint(other, 'http://127.0.0.1:9/other');

      const page1 = await service.listEndpoints(auth, { limit: 2 });
      assert.equal(page1.object, 'list');
      assert.equal(page1.data.length, 2);
      assert.equal(page1.has_more, true);
      const page2 = await service.listEndpoints(auth, { limit: 2, cursor: page1.next_cursor! });
      assert.equal(page2.has_more, false);
      assert.equal(page2.next_cursor, null);
      const listed = [...page1.data, ...page2.data];
      assert.deepEqual(listed.map((e) => e.id).sort(), [...created].sort());
      assert.ok(listed.every((e) => !('secret' in e)));
      const times = listed.map((e) => Date.parse(e.created_at));
      assert.deepEqual(times, [...times].sort((x, y) => y - x));

      const ids: string[] = [];
      for (const type of ['payment.succeeded', 'refund.created', 'payment.succeeded'] as const) {
        ids.push(...(await emit(auth, type)));
        await sleep(3); // distinct created_at, so "newest first" is observable
      }
      const all = await service.listEvents(auth, { limit: 10 });
      assert.deepEqual(all.data.map((e) => e.id), [...ids].reverse());
      assert.deepEqual(all.data[0], JSON.parse(await storedBody(ids[2])));
      const refunds = await service.listEvents(auth, { limit: 10, type: 'refund.created' });
      assert.deepEqual(refunds.data.map((e) => e.id), [ids[1]]);
      const first = await service.listEvents(auth, { limit: 1 });
      const rest = await service.listEvents(auth, { limit: 5, cursor: first.next_cursor! });
      assert.deepEqual([...first.data, ...rest.data].map((e) => e.id), [...ids].reverse());
      assert.deepEqual((await service.listEvents(other, { limit: 10 })).data, []);
      await rejectsWith(service.listEvents(auth, { limit: 10, type: 'payment.exploded' }), 'invalid_param', 'type');
      await rejectsWith(service.listEvents(auth, { limit: 10, cursor: 'nonsense' }), 'invalid_param', 'cursor');
      await rejectsWith(service.retrieveEndpoint(other, created[0]), 'webhook_endpoint_not_found', 'id');
    });
  });
}
