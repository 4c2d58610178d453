/**
 * The in-process sandbox connector with controls at the PSP boundary, for tests of the capture
 * path: hold captures until N of them have reached the PSP (so they race past the gateway's own
 * checks), hold one capture's answer, lose the next capture answer (the PSP applied it), or answer
 * a cancel `succeeded` without voiding anything (the PSP's answer and its state disagree).
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
  };
  let gate = Promise.resolve();
  const connector: Connector = {
    ...inner,
    async capture(ctx, req) {
      control.captureCalls += 1;
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
      return result;
    },
    async cancel(ctx, req) {
      if (control.fakeCancel) return { outcome: 'succeeded', connectorRef: req.connectorRef };
      return inner.cancel(ctx, req);
    },
  };
  return { control, connectors: new Map([['sandbox', connector]]) as ConnectorRegistry };
}
