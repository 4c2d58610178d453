/**
 * What differs between connectors in the end-to-end suites: how the sim is started, where the
 * gateway finds the PSP (the operator's environment), the connector account's body, and how the
 * sim names the account and its refunds. Everything else in a suite is the same test.
 */
import { randomBytes } from 'node:crypto';
import { describe } from 'node:test';

export interface ConnectorAccountPlan {
  /** `POST /v1/connector_accounts` body for a test-mode account. */
  body: Record<string, unknown>;
  /** The account's name at the sim (where its webhooks are registered), given the created account. */
  simAccount(account: { id: string }): string;
  /** Faults every test starts from: what the wire cannot take as an account setting. */
  faults: Record<string, unknown>;
}

export interface ConnectorSetup {
  connector: 'sandbox' | 'stripe' | 'adyen';
  /** The psp-sim wire the connector speaks. */
  wire: 'sandbox' | 'stripe' | 'adyen';
  /** More `settle psp-sim` arguments for this wire. */
  simArgs: readonly string[];
  /** Environment of the gateway process, given the sim's URL. */
  gatewayEnv(simUrl: string): Record<string, string>;
  /** A connector account whose pending refunds stay pending `pendingDelayMs`. */
  account(simUrl: string, opts: { pendingDelayMs: number }): ConnectorAccountPlan;
  /** A refund id of the sim's operator API as the connector reports it; null when the wire names
   *  refunds by references of its own (Adyen's pspReference), checked by `refundRefPattern`. */
  wireRefundId(modelRefundId: string): string | null;
  /** The shape of a refund's `connector_ref`. */
  refundRefPattern: RegExp;
  /** The inbound signature header. */
  signatureHeader: string;
  /** A failure code the sim's bank reports, and the code the gateway shows for it. */
  failure: { psp: string; gateway: string };
  /** What the API may answer for a refund the PSP accepts: `succeeded` (a synchronous PSP), or
   *  `pending` (Adyen: every refund is `received`, its outcome comes by notification — which can
   *  overtake the answer, so `succeeded` too). */
  refundAnswers: readonly ('succeeded' | 'pending')[];
  /** Whether the PSP can be asked what it did for a payment (reconciliation finds differences);
   *  false: reconciliation can only report the payments as unverifiable. */
  statusQuery: boolean;
}

export const SANDBOX_SETUP: ConnectorSetup = {
  connector: 'sandbox',
  wire: 'sandbox',
  simArgs: [],
  gatewayEnv: () => ({}),
  account: (simUrl, opts) => ({
    body: { connector: 'sandbox', settings: { base_url: simUrl, pending_delay_ms: opts.pendingDelayMs } },
    simAccount: (account) => account.id,
    faults: {},
  }),
  wireRefundId: (id) => id,
  refundRefPattern: /^sbx_re_/,
  signatureHeader: 'sandbox-signature',
  failure: { psp: 'bank_rejected', gateway: 'bank_rejected' },
  refundAnswers: ['succeeded'],
  statusQuery: true,
};

export const STRIPE_SETUP: ConnectorSetup = {
  connector: 'stripe',
  wire: 'stripe',
  simArgs: [],
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
  refundRefPattern: /^re_/,
  signatureHeader: 'stripe-signature',
  failure: { psp: 'declined', gateway: 'refund_declined' },
  refundAnswers: ['succeeded'],
  statusQuery: true,
};

export const ADYEN_SETUP: ConnectorSetup = {
  connector: 'adyen',
  wire: 'adyen',
  // Adyen's notification retry schedule (30 days) at 1/5000 speed: a notification that found the
  // gateway down is retried at once three times, then 24, 60, 120, 180, 360, 720 ms, 1.4, 2.9,
  // 5.8 s later, then every 5.8 s for 8.6 minutes (docs/psp-sim.md)
  simArgs: ['--retry-time-scale', '0.0002'],
  gatewayEnv: (simUrl) => ({ SETTLE_ADYEN_CHECKOUT_BASE: simUrl }),
  account: (_simUrl, opts) => {
    const merchantAccount = `Settle${randomBytes(6).toString('hex')}ECOM`;
    return {
      body: {
        connector: 'adyen',
        credentials: { api_key: `AQE${randomBytes(24).toString('base64url')}`, merchant_account: merchantAccount, hmac_key: randomBytes(32).toString('hex').toUpperCase() },
      },
      // Adyen's notifications go per merchant account
      simAccount: () => merchantAccount,
      faults: { pending_delay_ms: opts.pendingDelayMs },
    };
  },
  // Adyen's refund references are its own 16 characters; the sim's operator API names the model's
  wireRefundId: () => null,
  refundRefPattern: /^[A-Z0-9]{16}$/,
  signatureHeader: 'adyen-signature',
  // a refund the bank fails after it succeeded: REFUND_FAILED, whose reason text is not shown
  failure: { psp: 'bank_rejected', gateway: 'refund_failed' },
  refundAnswers: ['pending', 'succeeded'],
  statusQuery: false,
};

export const CONNECTOR_SETUPS: readonly ConnectorSetup[] = [SANDBOX_SETUP, STRIPE_SETUP, ADYEN_SETUP];

/**
 * `suite` once per connector, in a describe named after the connector under one named `title`.
 * The connectors' suites run at once: each starts its own PSP sim, gateways and database, and
 * mostly waits on them. A suite's own tests run one after the other: they share its processes.
 */
export function describeEachConnector(title: string, suite: (setup: ConnectorSetup) => void): void {
  describe(title, { concurrency: true }, () => {
    // a describe hands its concurrency down to the ones inside unless they say otherwise
    for (const setup of CONNECTOR_SETUPS) describe(setup.connector, { concurrency: 1 }, () => suite(setup));
  });
}
