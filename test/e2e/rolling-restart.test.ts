import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { createPayments, GATEWAY_ENV, Rng, seedFromEnv, setupMerchant, sleep, type Merchant, type PaymentInfo } from '../reliability/fixtures.js';
import { checkRefundOutcome } from '../reliability/invariants.js';
import { RefundTraffic, type RefundRequest } from '../reliability/refund-traffic.js';

/**
 * A load balancer as small as it gets: round-robin over the backends whose /readyz answered 200
 * at its last check (every 50 ms). No retries: a request it cannot deliver is answered 502, so a
 * request lost by a backend shows.
 */
async function roundRobinProxy() {
  const backends = new Map<string, boolean>(); // url → ready
  let turn = 0;
  let stopped = false;
  const check = async () => {
    while (!stopped) {
      await Promise.all([...backends.keys()].map(async (url) => {
        const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);
        if (backends.has(url)) backends.set(url, ready);
      }));
      await sleep(50);
    }
  };
  void check();
  const server: Server = createServer((req, res) => {
    const ready = [...backends].filter(([, ok]) => ok).map(([url]) => url);
    if (ready.length === 0) return void res.writeHead(502).end('{"proxy":"no backend ready"}');
    const target = new URL(req.url ?? '/', ready[turn++ % ready.length]);
    const upstream = request(target, { method: req.method, headers: { ...req.headers, host: target.host, connection: 'close' }, agent: false }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502).end(JSON.stringify({ proxy: err.message }));
      else res.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    add: (url: string) => backends.set(url, false),
    remove: (url: string) => backends.delete(url),
    ready: () => [...backends].filter(([, ok]) => ok).length,
    close: () => {
      stopped = true;
      return new Promise((r) => server.close(r));
    },
  };
}

/**
 * Deploying a new version replaces API processes one at a time (SIGTERM, start the new one): with
 * readiness going false first and requests in flight finished, no request is lost.
 */
describe('a rolling restart of the API processes under load', () => {
  let temp: TempDatabase | undefined;
  let sim: Proc | undefined;
  let worker: Proc | undefined;
  const apis: Proc[] = [];
  let proxy: Awaited<ReturnType<typeof roundRobinProxy>>;
  let merchant: Merchant;
  let payments: PaymentInfo[];
  // well past the proxy's 50 ms checks (slower on a loaded machine), short enough for the test
  const env = { ...GATEWAY_ENV, SETTLE_SHUTDOWN_DELAY_MS: '1000' };

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    temp = await createTempDatabase();
    sim = await spawnPspSim();
    worker = await spawnGateway({ databaseUrl: temp.url, args: ['--role', 'worker'], env });
    apis.push(...await Promise.all([0, 1].map(() => spawnGateway({ databaseUrl: temp!.url, args: ['--role', 'api'], env }))));
    proxy = await roundRobinProxy();
    for (const a of apis) proxy.add(a.url);
    merchant = await setupMerchant(apis[0].url, sim.url, 'Rolling');
    payments = await createPayments(apis[0].url, merchant.apiKey, 12, new Rng(seedFromEnv()));
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([...apis, worker, sim].map((p) => p?.kill()));
    await temp?.drop();
  });

  test('loses no request while every API process is replaced, one at a time', async (t) => {
    if (!temp) return t.skip('no postgres');
    const traffic = new RefundTraffic({ baseUrl: proxy.url, apiKey: merchant.apiKey });
    const reads: { status: number }[] = [];
    let stop = false;
    let n = 0;
    // six clients, each refunding a little or reading a payment, a request every 40 ms or so
    const clients = Array.from({ length: 6 }, async (_, c) => {
      while (!stop) {
        await sleep(40);
        const p = payments[(n++ * 7 + c) % payments.length];
        if (n % 3 === 0) {
          const r = await fetch(`${proxy.url}/v1/payments/${p.id}`, { headers: { authorization: `Bearer ${merchant.apiKey}` } });
          reads.push({ status: r.status });
          await r.arrayBuffer();
          continue;
        }
        const req: RefundRequest = { key: `rolling-${c}-${n}`, paymentId: p.id, path: `/v1/payments/${p.id}/refunds`, body: { amount: 1 + (n % 50) }, amount: 1 + (n % 50), attempts: [] };
        traffic.requests.push(req);
        const res = await traffic.send(req);
        if (res === 'hung') {
          req.attempts.push({ kind: 'hung' });
        } else if (typeof res === 'string') {
          req.attempts.push({ kind: 'no_response', error: res, at: Date.now() });
        } else {
          req.attempts.push({ kind: 'answer', status: res.status, code: res.body?.error?.code, replayed: false });
          req.final = { status: res.status, raw: res.raw, body: res.body, replayed: false };
        }
      }
    });

    await sleep(500);
    const replaced: number[] = [];
    for (let i = 0; i < apis.length; i++) {
      const old = apis[i];
      const code = old.kill('SIGTERM');
      // readiness goes false first, so the proxy stops choosing it before it closes
      const goneBy = Date.now() + 5_000;
      while (proxy.ready() === apis.length) {
        assert.ok(Date.now() < goneBy, 'readiness went false on SIGTERM');
        await sleep(10);
      }
      assert.equal(await code, 0, `a clean exit:\n${old.output().slice(-2000)}`);
      proxy.remove(old.url);
      const fresh = await spawnGateway({ databaseUrl: temp.url, args: ['--role', 'api'], env });
      apis[i] = fresh;
      proxy.add(fresh.url);
      const readyBy = Date.now() + 10_000;
      while (proxy.ready() < apis.length) {
        assert.ok(Date.now() < readyBy, 'the new process became ready');
        await sleep(20);
      }
      replaced.push(traffic.requests.length);
      await sleep(300);
    }
    stop = true;
    await Promise.all(clients);

    const refunds = traffic.requests;
    assert.ok(refunds.length > replaced[1] && replaced[1] > replaced[0] && replaced[0] > 0, `load ran through the restarts: ${JSON.stringify({ replaced, total: refunds.length })}`);
    const lost = refunds.filter((r) => r.attempts.some((a) => a.kind !== 'answer' || a.status >= 500));
    assert.deepEqual(lost.map((r) => ({ key: r.key, attempts: r.attempts, answer: r.final?.raw })), [], 'every refund request got an answer from a gateway');
    assert.deepEqual(reads.filter((r) => r.status !== 200), [], 'every read got an answer');
    assert.deepEqual(traffic.violations, []);
    for (const r of refunds) assert.ok([201, 422, 409].includes(r.final!.status), r.final!.raw);

    const outcome = await checkRefundOutcome({ gatewayUrl: apis[0].url, simUrl: sim!.url, apiKey: merchant.apiKey, traffic, payments, pendingWaitMs: 20_000 });
    assert.deepEqual(outcome.violations, []);
  });
});
