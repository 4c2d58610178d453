/**
 * The psp-sim's fault configuration: what `PUT /_sim/faults` sets and every PSP API request
 * consults. Probabilities are drawn from a seedable generator so a failing test can be replayed.
 */
import { SandboxPspError } from './psp-model.js';

/** The PSP API operations a fault can target. */
export const SIM_OPS = ['authorize', 'capture', 'cancel', 'refund', 'refund_status', 'payment_state'] as const;
export type SimOp = (typeof SIM_OPS)[number];

export interface SimWebhookFaults {
  /** Wait before sending each webhook, in ms. Default 0. */
  delay_ms: number;
  /** Send every webhook twice (same event id). Default false. */
  duplicate: boolean;
  /** Hold webhooks and send each small batch in reverse order. Default false. */
  reorder: boolean;
  /** When false, events are only kept in memory (`GET /_sim/events`). Default true. */
  enabled: boolean;
}

export interface SimFaults {
  /** Delay before a request is processed, in ms. Default 0. */
  latency_ms: number;
  /** When set, the delay is drawn uniformly from latency_ms … latency_max_ms for each request
   *  (a PSP answering in 200–400 ms). Default null: always latency_ms. */
  latency_max_ms: number | null;
  /** Probability of answering 500 without applying the operation. Default 0. */
  error_rate: number;
  /** Probability of never answering (the connection is held until the client gives up or the
   *  server closes); the operation is not applied. Default 0. */
  timeout_rate: number;
  /** Probability of applying the operation and then destroying the socket without an answer
   *  (the classic lost response). Default 0. */
  drop_response_rate: number;
  /** Every refund is accepted as pending, whatever the card. Default false. */
  force_pending: boolean;
  /** Overrides the pending delay of refunds (else the request's, else 2000). Default null. */
  pending_delay_ms: number | null;
  /** Operations the latency and the three rates apply to; null = all. Default null. */
  ops: SimOp[] | null;
  /** Seed for the fault draws; null = Math.random. Default null. */
  seed: number | null;
  webhook: SimWebhookFaults;
}

export const defaultSimFaults = (): SimFaults => ({
  latency_ms: 0,
  latency_max_ms: null,
  error_rate: 0,
  timeout_rate: 0,
  drop_response_rate: 0,
  force_pending: false,
  pending_delay_ms: null,
  ops: null,
  seed: null,
  webhook: { delay_ms: 0, duplicate: false, reorder: false, enabled: true },
});

/** Body of `PUT /_sim/faults`: every field optional; unknown fields are refused. */
export type SimFaultsInput = Partial<Omit<SimFaults, 'webhook'>> & { webhook?: Partial<SimWebhookFaults> };

const rate = { type: 'number', minimum: 0, maximum: 1 } as const;
const ms = { type: 'integer', minimum: 0, maximum: 3_600_000 } as const;

/** An empty body (null) is allowed: it resets everything to the defaults. */
export const simFaultsSchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    latency_ms: ms,
    latency_max_ms: { anyOf: [ms, { type: 'null' }] },
    error_rate: rate,
    timeout_rate: rate,
    drop_response_rate: rate,
    force_pending: { type: 'boolean' },
    pending_delay_ms: { anyOf: [ms, { type: 'null' }] },
    ops: { anyOf: [{ type: 'array', items: { enum: [...SIM_OPS] }, uniqueItems: true }, { type: 'null' }] },
    seed: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
    webhook: {
      type: 'object',
      additionalProperties: false,
      properties: {
        delay_ms: ms,
        duplicate: { type: 'boolean' },
        reorder: { type: 'boolean' },
        enabled: { type: 'boolean' },
      },
    },
  },
} as const;

export type SimFaultDecision = 'none' | 'timeout' | 'error' | 'drop';

/** The live fault configuration plus its random source. */
export class SimFaultState {
  private config: SimFaults = defaultSimFaults();
  private random: () => number = Math.random;

  get current(): SimFaults {
    return this.config;
  }

  /** Replaces the whole configuration: omitted fields take their defaults (PUT semantics). */
  set(input: SimFaultsInput): SimFaults {
    const defaults = defaultSimFaults();
    if (input.latency_max_ms != null && input.latency_max_ms < (input.latency_ms ?? defaults.latency_ms)) {
      throw new SandboxPspError('invalid_request', 'latency_max_ms must be at least latency_ms.');
    }
    this.config = { ...defaults, ...input, webhook: { ...defaults.webhook, ...input.webhook } };
    this.random = this.config.seed === null ? Math.random : mulberry32(this.config.seed);
    return this.config;
  }

  reset(): SimFaults {
    return this.set({});
  }

  targets(op: SimOp): boolean {
    return this.config.ops === null || this.config.ops.includes(op);
  }

  /** The delay before answering `op`, in ms: drawn from the range when latency_max_ms is set (one
   *  more draw, taken only then, so the sequence of a seed without a range is unchanged). */
  latency(op: SimOp): number {
    if (!this.targets(op)) return 0;
    const { latency_ms, latency_max_ms } = this.config;
    if (latency_max_ms === null || latency_max_ms <= latency_ms) return latency_ms;
    return latency_ms + Math.floor(this.random() * (latency_max_ms - latency_ms + 1));
  }

  /** One independent draw per fault kind, in a fixed order, so a seed replays exactly. */
  decide(op: SimOp): SimFaultDecision {
    if (!this.targets(op)) return 'none';
    const { timeout_rate, error_rate, drop_response_rate } = this.config;
    if (this.hit(timeout_rate)) return 'timeout';
    if (this.hit(error_rate)) return 'error';
    if (this.hit(drop_response_rate)) return 'drop';
    return 'none';
  }

  private hit(probability: number): boolean {
    // Always draw, even at 0 or 1, so the sequence does not depend on which rates are set.
    const r = this.random();
    return r < probability;
  }
}

/** A small, well-known 32-bit PRNG; plenty for fault injection. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
