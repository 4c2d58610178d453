/**
 * Outbound webhook hardening against a real database (PGlite, and PostgreSQL when reachable):
 * which addresses a webhook may reach in each mode (at creation and at every connection, DNS
 * answers included), the category each attempt records, and fairness between merchants.
 *
 * Nothing here may leave the machine: host names are resolved by a table injected into the
 * service, and every socket this process opens is watched. A connection to anything but loopback
 * is recorded and redirected to a closed loopback port instead, so a test that lets one through
 * fails without reaching the address.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../../src/config.js';
import { AppError } from '../../src/http/errors.js';
import { SecretBox } from '../../src/lib/crypto.js';
import { newId } from '../../src/lib/ids.js';
import { createLogger } from '../../src/lib/logger.js';
import type { AuthContext } from '../../src/modules/merchants/merchants.service.js';
import { emitEvents, type EventType } from '../../src/modules/webhooks/events.repository.js';
import { WebhooksService } from '../../src/modules/webhooks/webhooks.service.js';
import { WorkerRunner } from '../../src/workers/runner.js';
import { onEachBackend, type Backend } from '../helpers/two-handles.js';

const box = new SecretBox(Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex'));
const logger = createLogger('silent');
const configWith = (env: Record<string, string> = {}): Config =>
  loadConfig({ WEBHOOK_RETRY_SCHEDULE: '0.05,0.05,0.05', SETTLE_WEBHOOK_TIMEOUT_MS: '2000', LOG_LEVEL: 'silent', ...env });

// ---- the socket watch: every connection this process makes goes to loopback, or is recorded

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);
/** Non-loopback destinations some code tried to connect to (then sent to a closed port). */
const outside: string[] = [];
const originalConnect = net.Socket.prototype.connect;

function watchSockets(): void {
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    const opts = (Array.isArray(first) ? first[0] : first) as { host?: string; port?: number; lookup?: Function; path?: string } | undefined;
    if (opts && typeof opts === 'object' && !opts.path) {
      const host = opts.host ?? 'localhost';
      if (net.isIP(host)) {
        if (!LOOPBACK.has(host)) {
          outside.push(host);
          opts.host = '127.0.0.1';
          opts.port = 9;
        }
      } else if (typeof opts.lookup === 'function') {
        const inner = opts.lookup;
        opts.lookup = (hostname: string, o: object, cb: (err: Error | null, address?: unknown, family?: number) => void) =>
          inner(hostname, o, (err: Error | null, address: string | LookupAddress[], family?: number) => {
            if (err) return cb(err);
            const list = Array.isArray(address) ? address.map((a) => a.address) : [address];
            const bad = list.filter((a) => !LOOPBACK.has(a));
            if (bad.length) {
              outside.push(...bad);
              return cb(Object.assign(new Error('test guard: not loopback'), { code: 'ECONNREFUSED' }));
            }
            return cb(null, address, family);
          });
      } else if (!LOOPBACK.has(host)) {
        outside.push(host);
        opts.host = '127.0.0.1';
        opts.port = 9;
      }
    }
    return (originalConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof net.Socket.prototype.connect;
}

// ---- the injected resolver: test host names only, never the system's

const dnsTable = new Map<string, string[]>();
const resolveAll = async (hostname: string): Promise<LookupAddress[]> => {
  const addresses = dnsTable.get(hostname.toLowerCase());
  if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname} (secret-resolver-detail)`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
};

// ---- local receivers

interface Receiver {
  port: number;
  url: string;
  hits: string[];
  /** Requests received and not answered yet (a hanging receiver). */
  open: number;
  maxOpen: number;
  close(): Promise<void>;
}

async function startReceiver(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<Receiver> {
  const r = { port: 0, url: '', hits: [] as string[], open: 0, maxOpen: 0, close: async () => {} };
  const server = createServer((req, res) => {
    r.hits.push(String(req.headers['settle-event-id']));
    r.open++;
    r.maxOpen = Math.max(r.maxOpen, r.open);
    res.on('close', () => r.open--);
    req.resume();
    req.on('end', () => handle(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hooks`;
  r.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return r;
}

const answering = (status: number, body = '{"ok":true}', headers: Record<string, string> = {}) =>
  startReceiver((_req, res) => res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body));
const hanging = () => startReceiver(() => {});

// ---- backends

await onEachBackend(suite);

function suite(name: string, open: () => Promise<Backend>, skip?: string): void {
  describe(`webhook hardening on ${name}`, { skip }, () => {
    let backend: Backend;
    let service: WebhooksService;
    const services: WebhooksService[] = [];
    const cleanups: Array<() => Promise<unknown>> = [];

    before(async () => {
      watchSockets();
      backend = await open();
      service = make();
    });

    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => {});
      dnsTable.clear();
      assert.deepEqual(outside.splice(0), [], 'a connection to a non-loopback address was attempted');
    });

    after(async () => {
      await Promise.all(services.map((s) => s.close()));
      await backend?.close();
      net.Socket.prototype.connect = originalConnect;
    });

    function make(env: Record<string, string> = {}, db = backend.db): WebhooksService {
      const s = new WebhooksService(db, box, configWith(env), logger, { resolveAll });
      services.push(s);
      return s;
    }

    async function merchant(testMode = true): Promise<AuthContext> {
      const id = newId('mer');
      await backend.db.query('INSERT INTO merchants (id, name) VALUES ($1, $2)', [id, `Merchant ${id}`]);
      return { merchantId: id, testMode, keyPrefix: `sk_${testMode ? 'test' : 'live'}_abcdefgh` };
    }

    async function receiver(r: Promise<Receiver>): Promise<Receiver> {
      const started = await r;
      cleanups.push(() => started.close());
      return started;
    }

    async function endpoint(auth: AuthContext, url: string, via = service) {
      const created = await via.createEndpoint(auth, { url, enabled_events: ['*'] });
      cleanups.push(() => service.deleteEndpoint(auth, created.id));
      return created;
    }

    /** An endpoint row written as an older release could have (no checks at creation). */
    async function legacyEndpoint(auth: AuthContext, url: string): Promise<string> {
      const id = newId('we');
      await backend.db.query(
        `INSERT INTO webhook_endpoints (id, merchant_id, test_mode, url, enabled_events, status, secret_sealed)
         VALUES ($1, $2, $3, $4, ARRAY['*'], 'enabled', $5)`,
        [id, auth.merchantId, auth.testMode, url, box.seal(`whsec_${'x'.repeat(32)}`, id)],
      );
      cleanups.push(() => service.deleteEndpoint(auth, id));
      return id;
    }

    async function emit(auth: AuthContext, count = 1, type: EventType = 'payment.succeeded'): Promise<string[]> {
      return backend.db.transaction((tx) =>
        emitEvents(tx, auth.merchantId, auth.testMode, Array.from({ length: count }, (_, i) => ({
          type, object: { id: `pay_${i}_${newId('pay')}`, object: 'payment', amount: 1000 + i },
        }))),
      );
    }

    async function attemptsOf(auth: AuthContext, eventId: string) {
      return (await service.retrieveEvent(auth, eventId)).delivery_attempts;
    }

    async function firstAttempt(auth: AuthContext, eventId: string, endpointId: string) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const a = (await attemptsOf(auth, eventId)).find((x) => x.endpoint_id === endpointId);
        if (a) return a;
        if (Date.now() > deadline) assert.fail(`no attempt of ${eventId} to ${endpointId}`);
        await service.deliverDue();
        await sleep(10);
      }
    }

    async function refusedAtCreation(auth: AuthContext, url: string, via = service): Promise<string> {
      try {
        const created = await via.createEndpoint(auth, { url, enabled_events: ['*'] });
        await service.deleteEndpoint(auth, created.id);
      } catch (err) {
        assert.ok(err instanceof AppError, `${url}: ${String(err)}`);
        assert.equal(err.code, 'invalid_param', url);
        assert.equal(err.param, 'url', url);
        return err.message;
      }
      return assert.fail(`${url} was accepted`);
    }

    // the metadata address in every spelling a URL parser or resolver may produce
    const METADATA_SPELLINGS = [
      'http://169.254.169.254/latest/meta-data/',
      'http://2852039166/', // decimal
      'http://0xa9fea9fe/', // hex
      'http://0xa9.0xfe.0xa9.0xfe/',
      'http://0251.0376.0251.0376/', // octal
      'http://169.254.43518/', // a.b.c16
      'http://[::ffff:169.254.169.254]/', // IPv4-mapped IPv6
      'http://[::ffff:a9fe:a9fe]/',
      'http://[64:ff9b::169.254.169.254]/', // NAT64
      'http://[fd00:ec2::254]/', // AWS over IPv6, in unique-local space
      'http://100.100.100.200/', // Alibaba
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://METADATA.GOOGLE.INTERNAL./',
      'http://metadata/',
      'http://instance-data/',
    ];
    const OTHER_FORBIDDEN = ['http://169.254.1.1/', 'http://[fe80::1]/', 'http://[febf::1]/', 'http://0.0.0.0/', 'http://0/', 'http://[::]/', 'http://224.0.0.1/', 'http://192.0.2.1/'];

    it('test mode refuses link-local, metadata, unspecified and reserved URLs in every spelling, and allows loopback and private ones', async () => {
      const auth = await merchant(true);
      for (const url of [...METADATA_SPELLINGS, ...OTHER_FORBIDDEN]) {
        assert.match(await refusedAtCreation(auth, url), /must not point at link-local, cloud metadata, unspecified or reserved addresses/, url);
      }
      assert.match(await refusedAtCreation(auth, 'http://2852039166/'), /169\.254\.169\.254 is a cloud metadata address/);

      // names are checked on what they resolve to (any address refused refuses the name)
      dnsTable.set('meta.test', ['169.254.169.254']);
      dnsTable.set('meta6.test', ['fd00:ec2::254']);
      dnsTable.set('mapped.test', ['::ffff:169.254.169.254']);
      dnsTable.set('linklocal6.test', ['fe80::1234']);
      dnsTable.set('zero.test', ['0.0.0.0']);
      dnsTable.set('mixed.test', ['127.0.0.1', '169.254.0.9']);
      for (const host of ['meta.test', 'meta6.test', 'mapped.test', 'linklocal6.test', 'zero.test', 'mixed.test']) {
        const message = await refusedAtCreation(auth, `http://${host}:8080/h`);
        assert.match(message, new RegExp(`${host.replace('.', '\\.')} resolves to a`), host);
        assert.doesNotMatch(message, /169\.254|fd00|fe80|0\.0\.0\.0/, 'the resolved address is named to the merchant');
      }

      dnsTable.set('lan.test', ['192.168.1.20']);
      dnsTable.set('dev.test', ['127.0.0.1']);
      for (const url of ['http://127.0.0.1:9/h', 'http://localhost:9/h', 'http://[::1]:9/h', 'http://10.1.2.3:9/h', 'http://lan.test:9/h', 'http://dev.test:9/h', 'http://not-yet-up.test:9/h']) {
        const ok = await service.createEndpoint(auth, { url, enabled_events: ['*'] });
        await service.deleteEndpoint(auth, ok.id);
      }

      // the operator's SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS opens live mode to loopback and private addresses, never to these
      const live = await merchant(false);
      const permissive = make({ SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS: 'true' });
      for (const url of ['https://169.254.169.254/', 'https://metadata.google.internal/', 'https://[fd00:ec2::254]/', 'https://0.0.0.0/', 'https://meta.test/']) {
        await refusedAtCreation(live, url, permissive);
      }
      const allowed = await permissive.createEndpoint(live, { url: 'https://lan.test/h', enabled_events: ['*'] });
      await service.deleteEndpoint(live, allowed.id);
    });

    it('live mode refuses names that resolve to loopback, private or metadata addresses, without naming the address', async () => {
      const live = await merchant(false);
      dnsTable.set('internal.test', ['10.0.0.12']);
      dnsTable.set('meta.test', ['169.254.169.254']);
      dnsTable.set('public.test', ['93.184.216.34']);
      assert.match(await refusedAtCreation(live, 'https://internal.test/h'), /publicly reachable: internal\.test resolves to a private address\.$/);
      assert.match(await refusedAtCreation(live, 'https://meta.test/h'), /meta\.test resolves to a cloud metadata address/);
      assert.match(await refusedAtCreation(live, 'https://nxdomain.test/h'), /could not be resolved/);
      const ok = await service.createEndpoint(live, { url: 'https://public.test/h', enabled_events: ['*'] });
      // deleted at once: nothing here may try to reach it
      await service.deleteEndpoint(live, ok.id);
    });

    it('checks the resolved address at every connection, in every mode: a name rebound to a forbidden address is never connected to', { timeout: 180_000 }, async () => {
      const auth = await merchant(true);
      const r = await receiver(answering(200));
      dnsTable.set('rebind.test', ['127.0.0.1']);
      // accepted: it resolves to loopback, fine in test mode ...
      const ep = await endpoint(auth, `http://rebind.test:${r.port}/hooks`);
      const [first] = await emit(auth);
      const ok = await firstAttempt(auth, first, ep.id);
      assert.deepEqual([ok.category, ok.http_status], ['http_status', 200], 'the name was not resolved through the injected resolver');
      assert.deepEqual(r.hits, [first]);

      // ... then DNS answers the metadata address; a new connection must not follow it. Another
      // name pointing at the same receiver, so no pooled connection exists for it yet.
      dnsTable.set('rebind2.test', ['127.0.0.1']);
      const ep2 = await endpoint(auth, `http://rebind2.test:${r.port}/hooks`);
      await service.deleteEndpoint(auth, ep.id);
      for (const [address, reason] of [['169.254.169.254', 'a cloud metadata address'], ['::ffff:169.254.169.254', 'a cloud metadata address'], ['fe80::1', 'a link-local address'], ['0.0.0.0', 'an unspecified address']]) {
        dnsTable.set('rebind2.test', [address]);
        const [evt] = await emit(auth);
        const blocked = await firstAttempt(auth, evt, ep2.id);
        assert.equal(blocked.category, 'blocked_address', address);
        assert.equal(blocked.http_status, null);
        assert.equal(blocked.error, `blocked: rebind2.test resolves to ${reason}`);
      }
      assert.deepEqual(r.hits, [first], 'the receiver was called after the name was rebound');

      // endpoints stored before these checks existed are checked when sending, IP literals included
      for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:a9fe:a9fe]/', 'http://0.0.0.0:80/', 'http://metadata.google.internal/']) {
        const id = await legacyEndpoint(auth, url);
        const [evt] = await emit(auth);
        const blocked = await firstAttempt(auth, evt, id);
        assert.equal(blocked.category, 'blocked_address', url);
        assert.match(String(blocked.error), /^blocked: /);
        await service.deleteEndpoint(auth, id);
      }
      // outside (checked after each test) stays empty: no connection left loopback
    });

    it('does not follow redirects: a 3xx is recorded with its status and the Location is never requested', async () => {
      const auth = await merchant(true);
      const r = await receiver(answering(302, 'moved', { location: 'http://169.254.169.254/latest/meta-data/' }));
      const ep = await endpoint(auth, r.url);
      const [evt] = await emit(auth);
      const a = await firstAttempt(auth, evt, ep.id);
      assert.deepEqual([a.category, a.http_status, a.error], ['http_status', 302, 'redirects are not followed (HTTP 302)']);
      assert.equal(r.hits.length, 1);
    });

    it('records the category of every attempt, never a socket error text, a banner or a body', { timeout: 180_000 }, async () => {
      const auth = await merchant(true);
      const outcomes: Record<string, { category: string | null; http_status: number | null; error: string | null }> = {};
      const record = async (label: string, url: string, via = service) => {
        const ep = await endpoint(auth, url, via);
        const [evt] = await emit(auth);
        const deadline = Date.now() + 20_000;
        let a;
        while (!(a = (await attemptsOf(auth, evt)).find((x) => x.endpoint_id === ep.id))) {
          if (Date.now() > deadline) assert.fail(`no attempt for ${label}`);
          await via.deliverDue();
          await sleep(10);
        }
        outcomes[label] = { category: a.category, http_status: a.http_status, error: a.error };
        const event = JSON.stringify(await service.retrieveEvent(auth, evt));
        for (const leak of ['INTERNAL-BODY', 'SSH-2.0', 'OpenSSH', 'secret-resolver-detail', 'ECONNREFUSED', 'getaddrinfo']) {
          assert.equal(event.includes(leak), false, `${label}: the event shows "${leak}"`);
        }
      };

      // an HTTP answer: its status, not its body
      const failing = await receiver(answering(500, 'INTERNAL-BODY: stack trace of an internal service'));
      // a closed port
      const gone = await answering(200);
      const closedPort = gone.port;
      await gone.close();
      // a service that is not HTTP: it sends a banner and hangs up
      const bannerSockets = new Set<net.Socket>();
      const banner = net.createServer((socket) => {
        bannerSockets.add(socket);
        socket.on('error', () => {});
        socket.end('SSH-2.0-OpenSSH_9.6 internal-host\r\n');
      });
      await new Promise<void>((resolve) => banner.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => {
        for (const s of bannerSockets) s.destroy();
        return new Promise((resolve) => banner.close(resolve));
      });
      const bannerPort = (banner.address() as AddressInfo).port;
      // https to a plain HTTP server: the TLS handshake fails
      const plain = await receiver(answering(200, 'INTERNAL-BODY'));
      // a receiver that never answers, with a short timeout
      const slow = await receiver(hanging());
      const impatient = make({ SETTLE_WEBHOOK_TIMEOUT_MS: '300' });

      await record('status', failing.url);
      await record('refused', `http://127.0.0.1:${closedPort}/hooks`);
      await record('dns', 'http://nxdomain.test:8080/hooks');
      await record('banner', `http://127.0.0.1:${bannerPort}/hooks`);
      await record('tls', `https://127.0.0.1:${plain.port}/hooks`);
      await record('timeout', slow.url, impatient);

      assert.deepEqual(outcomes, {
        status: { category: 'http_status', http_status: 500, error: null },
        refused: { category: 'connection_refused', http_status: null, error: 'connection refused' },
        dns: { category: 'dns', http_status: null, error: 'dns: the host name could not be resolved' },
        banner: { category: 'connection_failed', http_status: null, error: 'connection failed before a response' },
        tls: { category: 'tls', http_status: null, error: 'tls: the TLS handshake failed' },
        timeout: { category: 'timeout', http_status: null, error: 'timeout: no response within 300 ms' },
      });
    });

    it('one merchant\'s backlog to a hanging endpoint never delays another merchant\'s delivery', { timeout: 120_000 }, async () => {
      const env = { SETTLE_WEBHOOK_TIMEOUT_MS: '5000', SETTLE_WEBHOOK_MERCHANT_CONCURRENCY: '4', SETTLE_WEBHOOK_CONCURRENCY: '16' };
      // two worker processes' worth of dispatchers, on two connections where the backend has them
      const workers = [make(env), make(env, backend.db2)];
      const runner = new WorkerRunner(workers.map((w, i) => ({ name: `webhook-delivery-${i}`, everyMs: 20, pass: () => w.dispatchDue() })), logger);

      const a = await merchant(true);
      const b = await merchant(true);
      const stuck = await receiver(hanging());
      const fast = await receiver(answering(200));
      await endpoint(a, stuck.url);
      const epB = await endpoint(b, fast.url);
      const backlog = 120; // at 4 at a time and 5 s each, 150 s to drain
      await emit(a, backlog);
      runner.start();
      try {
        // A's deliveries now occupy what they may; B's event arrives behind them
        const deadline = Date.now() + 30_000;
        while (stuck.open < 4) {
          if (Date.now() > deadline) assert.fail(`merchant A never reached its cap (${stuck.open} open)`);
          await sleep(20);
        }
        const emitted = Date.now();
        const [evtB] = await emit(b);
        while (!fast.hits.includes(evtB)) {
          if (Date.now() - emitted > 30_000) assert.fail('merchant B was never delivered');
          await sleep(5);
        }
        const latency = Date.now() - emitted;
        // far below one of A's timeouts, let alone its backlog (120 × 5 s / 4)
        assert.ok(latency < 2500, `merchant B waited ${latency} ms behind merchant A's backlog`);
        // and it is recorded (just after the receiver answered)
        const recorded = Date.now();
        let attempt;
        while (!(attempt = (await attemptsOf(b, evtB)).find((x) => x.endpoint_id === epB.id))) {
          if (Date.now() - recorded > 10_000) assert.fail('merchant B\'s attempt was never recorded');
          await sleep(10);
        }
        assert.deepEqual([attempt.category, attempt.http_status], ['http_status', 200]);
        // the cap holds over both workers
        assert.ok(stuck.maxOpen <= 4, `merchant A had ${stuck.maxOpen} POSTs in flight at once`);
        assert.ok(stuck.hits.length < backlog, 'merchant A was not held back at all');
      } finally {
        await runner.stop();
        // end A's backlog so that closing waits for the POSTs in flight only
        await backend.db.query(`UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'pending'`);
        stuck.close().catch(() => {});
        await Promise.all(workers.map((w) => w.close()));
      }
    });
  });
}
