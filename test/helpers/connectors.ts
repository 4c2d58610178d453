/**
 * What differs between connectors in the end-to-end suites: how the sim is started, where the
 * gateway finds the PSP (the operator's environment), the connector account's body, and how the
 * sim names the account and its refunds. Everything else in a suite is the same test.
 */
import { randomBytes } from 'node:crypto';

export interface ConnectorAccountPlan {
  /** `POST /v1/connector_accounts` body for a test-mode account. */
  body: Record<string, unknown>;
  /** The account's name at the sim (where its webhooks are registered), given the created account. */
  simAccount(account: { id: string }): string;
  /** Faults every test starts from: what the wire cannot take as an account setting. */
  faults: Record<string, unknown>;
}

export interface ConnectorSetup {
  connector: 'sandbox' | 'stripe';
  /** The psp-sim wire the connector speaks. */
  wire: 'sandbox' | 'stripe';
  /** Environment of the gateway process, given the sim's URL. */
  gatewayEnv(simUrl: string): Record<string, string>;
  /** A connector account whose pending refunds stay pending `pendingDelayMs`. */
  account(simUrl: string, opts: { pendingDelayMs: number }): ConnectorAccountPlan;
  /** A refund id of the sim's operator API as the connector reports it. */
  wireRefundId(modelRefundId: string): string;
  /** The inbound signature header. */
  signatureHeader: string;
  /** A failure code the sim's bank reports, and the code the gateway shows for it. */
  failure: { psp: string; gateway: string };
}

export const SANDBOX_SETUP: ConnectorSetup = {
  connector: 'sandbox',
  wire: 'sandbox',
  gatewayEnv: () => ({}),
  account: (simUrl, opts) => ({
    body: { connector: 'sandbox', settings: { base_url: simUrl, pending_delay_ms: opts.pendingDelayMs } },
    simAccount: (account) => account.id,
    faults: {},
  }),
  wireRefundId: (id) => id,
  signatureHeader: 'sandbox-signature',
  failure: { psp: 'bank_rejected', gateway: 'bank_rejected' },
};

export const STRIPE_SETUP: ConnectorSetup = {
  connector: 'stripe',
  wire: 'stripe',
  gatewayEnv: (simUrl) => ({ SETTLE_STRIPE_API_BASE: simUrl }),
  account: (_simUrl, opts) => {
    const secretKey = `sk_test_${randomBytes(12).toString('hex')}`;
    return {
      body: { connector: 'stripe', credentials: { secret_key: secretKey, webhook_secret: `whsec_${randomBytes(16).toString('hex')}` } },
      // Stripe names an account by its API key
      simAccount: () => secretKey,
      faults: { pending_delay_ms: opts.pendingDelayMs },
    };
  },
  wireRefundId: (id) => id.replace(/^sbx_re_/, 're_'),
  signatureHeader: 'stripe-signature',
  failure: { psp: 'declined', gateway: 'refund_declined' },
};

export const CONNECTOR_SETUPS: readonly ConnectorSetup[] = [SANDBOX_SETUP, STRIPE_SETUP];
