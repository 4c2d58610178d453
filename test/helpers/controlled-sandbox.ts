/**
 * The in-process sandbox connector with controls at the PSP boundary, for tests of the capture
 * path: hold captures until N of them have reached the PSP (so they race past the gateway's own
 * checks), hold one capture's answer, lose the next capture answer (the PSP applied it), or answer
 * a cancel `succeeded` without voiding anything (the PSP's answer and its state disagree). It can
 * also answer as PSPs do that the in-process sandbox does not imitate: a partial authorization, a
 * capture with a reference of its own (Adyen's capture pspReference), a capture accepted under a new
 * key after the PSP reported the last one failed, an authorization whose answer is lost.
 */
import { ConnectorUnknownOutcomeError, type Connector, type ConnectorRegistry } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import type { SandboxPsp } from '../../src/psp-sim/psp-model.js';

export function controlledSandbox(psp: SandboxPsp) {
  const inner = createSandboxConnector({ psp });
  const control = {
    holdCapturesUntil: 0,
    arrived: 0,
    release: () => {},
    holdOneCapture: undefined as Promise<void> | undefined,
    loseNextCaptureAnswer: false,
    fakeCancel: false,
    /** Captures that reached the connector. */
    captureCalls: 0,
    /** The PSP idempotency key of every capture that reached the connector, in order. */
    captureKeys: [] as string[],
    /** Answer every capture `succeeded` for the amount asked without asking the sandbox (a PSP
     *  that takes a new capture after reporting the last one failed). */
    fakeCapture: false,
    /** The capture's own PSP reference to answer with (default: the payment's). */
    captureRef: undefined as string | undefined,
    /** Authorize only this much (a partial authorization) when set. */
    authorizeAmount: undefined as number | undefined,
    /** The next authorization reaches the PSP, but its answer is lost. */
    loseNextAuthorizeAnswer: false,
  };
  let gate = Promise.resolve();
  const connector: Connector = {
    ...inner,
    async authorize(ctx, req) {
      const result = await inner.authorize(ctx, req);
      if (control.loseNextAuthorizeAnswer) {
        control.loseNextAuthorizeAnswer = false;
        throw new ConnectorUnknownOutcomeError('authorization answer lost on the way back');
      }
      if (control.authorizeAmount !== undefined && result.outcome !== 'declined') return { ...result, amount: control.authorizeAmount };
      return result;
    },
    async capture(ctx, req) {
      control.captureCalls += 1;
      control.captureKeys.push(req.idempotencyKey);
      if (control.fakeCapture) return { outcome: 'succeeded', connectorRef: control.captureRef ?? req.connectorRef, amountCaptured: req.amount };
      if (control.holdCapturesUntil > 0) {
        control.arrived += 1;
        if (control.arrived === 1) gate = new Promise((resolve) => (control.release = resolve));
        if (control.arrived >= control.holdCapturesUntil) control.release();
        await gate;
      }
      const held = control.holdOneCapture;
      control.holdOneCapture = undefined;
      const result = await inner.capture(ctx, req);
      if (held) await held;
      if (control.loseNextCaptureAnswer) {
        control.loseNextCaptureAnswer = false;
        throw new ConnectorUnknownOutcomeError('capture answer lost on the way back');
      }
      if (control.captureRef !== undefined && result.outcome === 'succeeded') return { ...result, connectorRef: control.captureRef };
      return result;
    },
    async cancel(ctx, req) {
      if (control.fakeCancel) return { outcome: 'succeeded', connectorRef: req.connectorRef };
      return inner.cancel(ctx, req);
    },
  };
  return { control, connectors: new Map([['sandbox', connector]]) as ConnectorRegistry };
}
