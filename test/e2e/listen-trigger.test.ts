import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { verifySettleSignature } from '../../src/sdk/index.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, runSettle, spawnGateway, spawnSettle, type Proc } from '../helpers/processes.js';

interface Received {
  id: string;
  type: string;
  /** Both signatures verified with the secret `settle listen` printed. */
  verified: boolean;
}

/** The developer's local server: verifies each delivery with the `standardwebhooks` package. */
async function receiver() {
  const received: Received[] = [];
  let secret = '';
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let verified = false;
      try {
        new Webhook(secret).verify(body, req.headers as Record<string, string>);
        verified = verifySettleSignature({ payload: body, header: String(req.headers['settle-signature']), secret });
      } catch {
        verified = false;
      }
      const event = JSON.parse(body) as { id: string; type: string };
      received.push({ id: event.id, type: event.type, verified });
      res.writeHead(verified ? 200 : 400).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`,
    received,
    useSecret: (s: string) => (secret = s),
    close: () => new Promise((r) => server.close(r)),
  };
}

async function until<T>(what: string, read: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('settle listen and settle trigger between real processes', () => {
  let gw: Proc;
  let listener: (Proc & { match: RegExpMatchArray }) | undefined;
  let rx: Awaited<ReturnType<typeof receiver>>;
  let key: string;

  before(async () => {
    gw = await spawnGateway({ env: { SETTLE_EVENT_STREAM_POLL_MS: '100' }, readyTimeoutMs: 120_000 });
    const m = await client(gw.url, ADMIN_KEY)('POST', '/v1/admin/merchants', { name: 'Developer' });
    key = m.body.api_keys.test;
    await client(gw.url, key)('POST', '/v1/connector_accounts', { connector: 'sandbox' });
    rx = await receiver();
  });
  after(async () => {
    await listener?.kill('SIGKILL');
    await gw?.kill();
    await rx?.close();
  });

  const env = () => ({ SETTLE_API_KEY: key });
  const startListen = (extra: string[] = []) =>
    spawnSettle(['listen', '--forward-to', rx.url, '--api-base', gw.url, ...extra], env(), /Your webhook signing secret is (whsec_\S+)/, 120_000);
  const trigger = (type: string) => runSettle(['trigger', type, '--api-base', gw.url], env(), { timeoutMs: 120_000 });
  const receivedTypes = () => rx.received.map((r) => r.type);
  /** The merchant's event ids, oldest first. */
  const allEventIds = async () => {
    const r = await client(gw.url, key)('GET', '/v1/events?limit=100');
    return (r.body.data as { id: string }[]).map((e) => e.id).reverse();
  };

  test('trigger refuses an unknown event type, listing the supported ones', async () => {
    const r = await trigger('payment.exploded');
    assert.equal(r.code, 2, r.output);
    assert.match(r.stderr, /unknown event type "payment\.exploded"/);
    for (const type of ['payment.succeeded', 'payment.refund_failed', 'refund.failed', 'reconciliation.difference_found']) assert.ok(r.stderr.includes(type), r.stderr);
    const live = await runSettle(['trigger', 'payment.succeeded', '--api-base', gw.url, '--api-key', 'sk_live_whatever_0123456789abcdef'], {});
    assert.equal(live.code, 2);
    assert.match(live.stderr, /test mode only/);
  });

  test('listen forwards triggered events, signed for the secret it printed, with status and latency', async () => {
    listener = await startListen();
    const secret = listener.match[1];
    assert.match(secret, /^whsec_/);
    rx.useSecret(secret);

    const triggered = [
      ['payment.succeeded', ['payment.succeeded']],
      ['payment.captured', ['payment.captured', 'payment.succeeded']],
      ['refund.failed', ['payment.succeeded', 'refund.created', 'refund.failed', 'payment.refund_failed']],
      ['payment.failed', ['payment.failed']],
    ] as const;
    let expected: string[] = [];
    for (const [type, produces] of triggered) {
      const r = await trigger(type);
      assert.equal(r.code, 0, r.output);
      assert.match(r.stdout, new RegExp(`Triggering ${type.replace('.', '\\.')}`));
      expected = [...expected, ...produces];
      await until(`${type} at the receiver`, () => (rx.received.length >= expected.length ? true : undefined));
    }
    assert.deepEqual(receivedTypes(), expected);
    assert.ok(rx.received.every((r) => r.verified), JSON.stringify(rx.received));
    // one line per event: time, type, id, the receiver's status, the latency
    const lines = listener.stdout().trim().split('\n');
    assert.equal(lines.length, expected.length, listener.stdout());
    for (const [i, line] of lines.entries()) {
      assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z  --> ${expected[i].replace('.', '\\.')} ${rx.received[i].id}  <-- \\[200\\] \\d+ ms$`));
    }
    assert.deepEqual(rx.received.map((r) => r.id), await allEventIds(), 'every event of the merchant, in order');
  });

  test('a listen killed and restarted with --last-event-id loses no event and repeats none', async () => {
    assert.ok(listener, 'the previous test started listen');
    const lines = listener.stdout().trim().split('\n');
    const lastForwarded = /(evt_\w+)/.exec(lines[lines.length - 1])![1];
    await listener.kill('SIGKILL');
    const before = rx.received.length;
    // made while nobody listens
    for (const type of ['payment.canceled', 'payment.partially_refunded']) assert.equal((await trigger(type)).code, 0);
    const secret = listener.match[1];
    listener = await startListen(['--last-event-id', lastForwarded, '--secret', secret]);
    assert.equal(listener.match[1], secret, 'a stable secret with --secret');
    const missed = ['payment.canceled', 'payment.succeeded', 'refund.created', 'refund.succeeded', 'payment.partially_refunded'];
    await until('the events made while listen was down', () => (rx.received.length >= before + missed.length ? true : undefined));
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(receivedTypes().slice(before), missed);
    const ids = rx.received.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'no event forwarded twice');
    assert.deepEqual(ids, await allEventIds(), 'every event of the merchant, in order');
    assert.ok(rx.received.every((r) => r.verified));
  });

  test('listen reconnects after the gateway restarts, resuming after the last event it got', async () => {
    assert.ok(listener);
    const before = rx.received.length;
    const dataDir = (gw as Proc & { dataDir: string }).dataDir;
    const port = new URL(gw.url).port;
    await gw.kill('SIGTERM');
    gw = await spawnGateway({ dataDir, env: { PORT: port, SETTLE_EVENT_STREAM_POLL_MS: '100' }, readyTimeoutMs: 120_000 });
    await until('listen to reconnect', () => (/Reconnected, resuming after evt_/.test(listener!.output()) ? true : undefined));
    assert.equal((await trigger('payment.succeeded')).code, 0);
    await until('the event after the restart', () => (rx.received.length > before ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(receivedTypes().slice(before), ['payment.succeeded']);
    assert.deepEqual(rx.received.map((r) => r.id), await allEventIds());
  });
});
