import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pspHttp, PspHttpTimeoutError } from '../../src/connectors/psp-http.js';

/** The connectors' HTTP client against a real loopback server. */
describe('PSP HTTP client (undici request)', () => {
  let server: Server;
  let base: string;
  const seen: { method?: string; headers: Record<string, unknown>; body: string }[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method, headers: req.headers, body });
        if (req.url === '/ok') {
          res.writeHead(201, { 'content-type': 'application/json', 'x-psp': 'a' });
          res.end('{"id":"re_1"}');
        } else if (req.url === '/redirect') {
          res.writeHead(302, { location: `${base}/ok` });
          res.end();
        } else if (req.url === '/stall-body') {
          // headers at once, then half a body and nothing more
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"id":');
        } else if (req.url === '/stall-headers') {
          // nothing at all
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('sends the method, headers and body, and returns status, headers and text', async () => {
    const res = await pspHttp(`${base}/ok`, { method: 'POST', headers: { 'idempotency-key': 'k1', 'content-type': 'application/json' }, body: '{"amount":5}', timeoutMs: 5000 });
    assert.equal(res.status, 201);
    assert.equal(res.text, '{"id":"re_1"}');
    assert.equal(res.headers['x-psp'], 'a');
    const last = seen.at(-1)!;
    assert.equal(last.method, 'POST');
    assert.equal(last.headers['idempotency-key'], 'k1');
    assert.equal(last.body, '{"amount":5}');
  });

  test('a redirect is an answer, never followed', async () => {
    const before = seen.length;
    const res = await pspHttp(`${base}/redirect`, { method: 'GET', headers: {}, timeoutMs: 5000 });
    assert.equal(res.status, 302);
    assert.equal(seen.length, before + 1);
  });

  test('the deadline covers the body: headers then a stall is a timeout', async () => {
    const started = Date.now();
    await assert.rejects(pspHttp(`${base}/stall-body`, { method: 'GET', headers: {}, timeoutMs: 150 }), PspHttpTimeoutError);
    assert.ok(Date.now() - started < 3000, 'the deadline, not undici\'s own timeouts, ended it');
  });

  test('no headers within the deadline is a timeout', async () => {
    await assert.rejects(pspHttp(`${base}/stall-headers`, { method: 'POST', headers: {}, body: '{}', timeoutMs: 150 }), (err: unknown) => err instanceof PspHttpTimeoutError && err.name === 'TimeoutError');
  });

  test('a refused connection is a network error, not a timeout', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(pspHttp(`http://127.0.0.1:${port}/ok`, { method: 'GET', headers: {}, timeoutMs: 5000 }), (err: unknown) => err instanceof Error && !(err instanceof PspHttpTimeoutError));
  });
});
