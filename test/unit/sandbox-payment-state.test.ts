import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connector, ConnectorContext } from '../../src/connectors/connector.js';
import { ConnectorUnknownOutcomeError } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';

const ctx = (settings: Record<string, unknown> = {}): ConnectorContext => ({
  accountId: 'acct_truth',
  shortId: 'ca_truth000001',
  testMode: true,
  settings,
  credentials: {},
  webhookSecret: 'whsec_truth',
});

async function authorize(connector: Connector, c: ConnectorContext, key: string, capture: boolean, token = 'pm_card_visa') {
  const auth = await connector.authorize(c, { amount: 1000, currency: 'EUR', paymentMethod: token, capture, idempotencyKey: key, reference: `pay_${key}` });
  assert.ok(auth.outcome === 'captured' || auth.outcome === 'authorized');
  return auth;
}

/** The same behaviour over both transports: in process, and over HTTP to a real psp-sim. */
function transportSuite(name: string, setup: () => { connector: Connector; c: ConnectorContext; psp: () => SandboxPsp }) {
  describe(`sandbox payment state and capture amounts, ${name}`, () => {
    it('answers an authorization with the amount the PSP authorized', async () => {
      const { connector, c } = setup();
      const auth = await authorize(connector, c, `${name}-a1`, false);
      assert.equal(auth.outcome === 'authorized' && auth.amount, 1000);
    });

    it("replays a retried capture with the first call's amount, not the retry's", async () => {
      const { connector, c } = setup();
      const auth = await authorize(connector, c, `${name}-a2`, false);
      const first = await connector.capture(c, { connectorRef: auth.connectorRef!, amount: 300, currency: 'EUR', idempotencyKey: `${name}-cap` });
      const retry = await connector.capture(c, { connectorRef: auth.connectorRef!, amount: 700, currency: 'EUR', idempotencyKey: `${name}-cap` });
      assert.equal(first.outcome === 'succeeded' && first.amountCaptured, 300);
      assert.equal(retry.outcome === 'succeeded' && retry.amountCaptured, 300);
    });

    it('reports the captured amount and every refund with its ref, amount, status and gateway reference', async () => {
      const { connector, c, psp } = setup();
      const auth = await authorize(connector, c, `${name}-a3`, true);
      const ref = auth.connectorRef!;
      const api = await connector.refund(c, { paymentRef: ref, amount: 250, currency: 'EUR', idempotencyKey: `${name}-r1`, reference: 're_gateway_1' });
      const dashboard = psp().dashboardRefund(ref, 100);
      psp().failRefund(dashboard.id);
      const state = await connector.paymentState(c, { paymentRef: ref });
      assert.deepEqual(state, {
        paymentRef: ref,
        status: 'captured',
        amountCaptured: 1000,
        amountRefunded: 250,
        refunds: [
          { connectorRef: api.connectorRef, amount: 250, status: 'succeeded', reference: 're_gateway_1', failureCode: null, failureMessage: null },
          { connectorRef: dashboard.id, amount: 100, status: 'failed', reference: null, failureCode: 'bank_rejected', failureMessage: 'The bank rejected the refund after accepting it.' },
        ],
      });
    });

    it('says unknown, not a guess, for a well-formed ref whose history the PSP lost, and not_found for a foreign ref', async () => {
      const { connector, c } = setup();
      const lost = await connector.paymentState(c, { paymentRef: 'sbx_pay_1000_EUR_visa_abcdefabcdef' });
      assert.deepEqual(lost, { paymentRef: 'sbx_pay_1000_EUR_visa_abcdefabcdef', status: 'unknown', amountCaptured: null, amountRefunded: null, refunds: null });
      const foreign = await connector.paymentState(c, { paymentRef: 'pi_not_ours' });
      assert.equal(foreign.status, 'not_found');
    });
  });
}

const inProcessPsp = new SandboxPsp();
transportSuite('in process', () => ({ connector: createSandboxConnector({ psp: inProcessPsp }), c: ctx(), psp: () => inProcessPsp }));

let sim: PspSimHandle;
before(async () => {
  sim = await startPspSim({ port: 0 });
});
after(async () => {
  await sim.close();
  inProcessPsp.dispose();
});
transportSuite('over HTTP', () => ({ connector: createSandboxConnector({ timeoutMs: 2000 }), c: ctx({ base_url: sim.url }), psp: () => sim.psp }));

describe('sandbox payment state over HTTP, faults', () => {
  it('is an unknown outcome when the PSP answers 500', async () => {
    await sim.app.inject({ method: 'PUT', url: '/_sim/faults', payload: { error_rate: 1, ops: ['payment_state'] } });
    try {
      await assert.rejects(
        createSandboxConnector({ timeoutMs: 2000 }).paymentState(ctx({ base_url: sim.url }), { paymentRef: 'sbx_pay_1000_EUR_visa_abcdefabcdef' }),
        ConnectorUnknownOutcomeError,
      );
    } finally {
      await sim.app.inject({ method: 'DELETE', url: '/_sim/faults' });
    }
  });
});
