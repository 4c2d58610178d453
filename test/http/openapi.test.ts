import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { EVENT_TYPES } from '../../src/modules/webhooks/events.repository.js';
import { Contract, ContractViolation } from '../helpers/contract.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const REDOCLY = join(ROOT, 'node_modules/@redocly/cli/bin/cli.js');

describe('the OpenAPI document', () => {
  let h: Harness;
  let doc: any;
  let dir: string;
  before(async () => {
    h = await createHarness('pglite');
    doc = (await h.call('GET', '/openapi.json')).body;
    dir = mkdtempSync(join(tmpdir(), 'settle-openapi-'));
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('passes Redocly\'s recommended rules with no error and no warning', async () => {
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const run = promisify(execFile);
    let out: string;
    try {
      const r = await run(process.execPath, [REDOCLY, 'lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json'], { cwd: ROOT, maxBuffer: 32 << 20 });
      out = r.stdout;
    } catch (err: any) {
      assert.fail(`redocly lint failed:\n${err.stdout?.slice(0, 6000)}\n${err.stderr?.slice(0, 2000)}`);
    }
    const report = JSON.parse(out);
    const problems = report.problems.map((p: any) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer}`);
    assert.deepEqual(problems, []);
    assert.equal(report.totals.errors, 0);
    assert.equal(report.totals.warnings, 0);
  });

  test('names every operation and describes every response', () => {
    const ids = new Set<string>();
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        assert.ok(op.operationId, `${method} ${path} has an operationId`);
        assert.ok(!ids.has(op.operationId), `${op.operationId} is unique`);
        ids.add(op.operationId);
        const success = Object.keys(op.responses).filter((s) => s.startsWith('2'));
        assert.equal(success.length, 1, `${method} ${path} has one success status`);
        assert.ok(op.responses[success[0]].content, `${method} ${path} documents its success body`);
        assert.ok(op.responses['401'] ?? op.responses['4XX'] ?? op.security?.length === 0, `${method} ${path} documents 401`);
      }
    }
  });

  test('answers the two creates that answer 201 with 201, and marks optional bodies optional', () => {
    assert.ok(doc.paths['/v1/webhook_endpoints'].post.responses['201']);
    assert.ok(doc.paths['/v1/admin/merchants/{id}/api_keys'].post.responses['201']);
    for (const path of ['/v1/payments/{id}/refunds', '/v1/payments/{id}/capture', '/v1/payments/{id}/cancel', '/v1/events/{id}/redeliver', '/v1/connector_accounts/{id}/make_default']) {
      assert.equal(doc.paths[path].post.requestBody.required, false, `${path} body is optional`);
    }
    assert.equal(doc.paths['/v1/payments'].post.requestBody.required, true);
  });

  test('lists each status\'s error codes, and the declined payment\'s id and decline code', () => {
    const declined = doc.components.schemas.PaymentDeclinedErrorDetail;
    assert.deepEqual(declined.properties.code.enum, ['card_declined']);
    assert.ok(declined.required.includes('payment_id'));
    assert.ok(declined.properties.decline_code);
    assert.ok(doc.components.schemas.ConflictErrorDetail.properties.code.enum.includes('idempotency_key_in_use'));
    assert.ok(doc.paths['/v1/payments'].post.responses['402']);
  });

  test('documents the request and response headers', () => {
    const create = doc.paths['/v1/payments/{id}/refunds'].post;
    assert.ok(create.parameters.some((p: any) => p.$ref === '#/components/parameters/IdempotencyKey'));
    assert.ok(create.responses['201'].headers['Request-Id']);
    assert.ok(create.responses['201'].headers['Idempotent-Replayed']);
    assert.ok(create.responses['429'].headers['Retry-After'].required);
    assert.ok(create.responses['201'].headers['X-RateLimit-Remaining']);
  });

  test('describes every event type Settle sends in the webhooks section', () => {
    assert.deepEqual(Object.keys(doc.webhooks), [...EVENT_TYPES]);
    const refunded = doc.webhooks['payment.refunded'].post;
    assert.equal(refunded.requestBody.content['application/json'].schema.$ref, '#/components/schemas/PaymentRefundedEvent');
    const event = doc.components.schemas.PaymentRefundedEvent;
    assert.deepEqual(event.properties.type.enum, ['payment.refunded']);
    assert.equal(event.properties.data.properties.object.$ref, '#/components/schemas/Payment');
  });
});

describe('the contract check', () => {
  let h: Harness;
  let contract: Contract;
  let payment: any;
  before(async () => {
    h = await createHarness('pglite');
    contract = new Contract((await h.call('GET', '/openapi.json')).body);
    payment = await pay(h);
  });
  after(async () => h?.close());
  const headers = { 'request-id': 'req_x' };

  test('accepts a documented answer', () => {
    contract.check('GET', `/v1/payments/${payment.id}`, 200, headers, JSON.stringify(payment));
  });

  test('refuses an undocumented field, a missing required field, a wrong type', () => {
    assert.throws(() => contract.check('GET', `/v1/payments/${payment.id}`, 200, headers, JSON.stringify({ ...payment, surprise: 1 })), ContractViolation);
    const { amount_refundable: _gone, ...missing } = payment;
    assert.throws(() => contract.check('GET', `/v1/payments/${payment.id}`, 200, headers, JSON.stringify(missing)), ContractViolation);
    assert.throws(() => contract.check('GET', `/v1/payments/${payment.id}`, 200, headers, JSON.stringify({ ...payment, amount: '100' })), ContractViolation);
  });

  test('refuses an undocumented status, an error code of another status, a missing Request-Id', () => {
    assert.throws(() => contract.check('GET', `/v1/payments/${payment.id}`, 418, headers, '{}'), /not documented/);
    const wrongCode = { error: { type: 'invalid_request_error', code: 'payment_not_found', message: 'x', request_id: 'req_x' } };
    assert.throws(() => contract.check('GET', '/v1/payments', 400, headers, JSON.stringify(wrongCode)), ContractViolation);
    assert.throws(() => contract.check('GET', `/v1/payments/${payment.id}`, 200, {}, JSON.stringify(payment)), /Request-Id/);
  });

  test('prefers a concrete path to a templated one', () => {
    const refundBody = { error: { type: 'invalid_request_error', code: 'invalid_param', message: 'x', param: 'payment_id', request_id: 'req_x' } };
    contract.check('POST', '/v1/payments/refund', 400, headers, JSON.stringify(refundBody));
    assert.throws(() => contract.check('POST', '/v1/payments/refund', 201, headers, JSON.stringify(payment)), ContractViolation);
  });
});
