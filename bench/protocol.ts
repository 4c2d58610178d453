/**
 * What the bench orchestrator (run.ts) and its load-generator child process (load.ts) say to
 * each other. The load generator is a separate process from both the gateway and the
 * orchestrator, so neither shares an event loop with the thing it measures.
 */
import type { GroupLimits } from '../src/db/group.js';

/** One SQL statement as the gateway issued it (text + parameter values). */
export interface RecordedStatement {
  text: string;
  values: unknown[];
  /** Run as the transaction's last statement, COMMIT pipelined behind it (`Tx.lastQuery`). */
  last?: boolean;
  /** Sent before the statement before it was answered (pipelined behind it). */
  pipelined?: boolean;
}

/** An autocommit statement, or a BEGIN … COMMIT group, in the order the gateway ran them. */
export interface RecordedStep {
  tx: boolean;
  statements: RecordedStatement[];
}

/**
 * The exact statement sequence of one refund request. `tokens` are the per-request values inside
 * the parameters (payment id, its connector ref, the idempotency key, generated ids) that a replay
 * replaces with fresh ones so that each replayed refund is a new one on a new payment.
 */
export interface Recording {
  steps: RecordedStep[];
  tokens: string[];
  paymentId: string;
  paymentRef: string;
  idempotencyKey: string;
}

export interface Window {
  /** Measured for this long after the warm-up. */
  durationMs: number;
  /** Requests before this are not measured (connections, JIT, caches). Default 0. */
  warmupMs: number;
  /** Stop the measured window after this many requests. Default unlimited. */
  maxRequests?: number;
  concurrency: number;
  /** Keep each request's latency in issue order (only meaningful at concurrency 1). */
  ordered?: boolean;
  /** The gateway under test: its /metrics (event-loop delay) and pid (CPU time), read at the
   *  window's edges. */
  gateway?: { metricsUrl: string; pid: number };
  /** The database server, when it runs on this machine: CPU of its processes is read at the
   *  window's edges. */
  postgresUrl?: string;
  /** Further processes whose CPU time is read at the window's edges, summed per label (every
   *  gateway process of a multi-process series, the pooler, the PSP simulator). */
  processes?: { label: string; pids: number[] }[];
}

export type HttpPlan =
  /** A refund per payment id, each with its own idempotency key; `repeat` refunds the same one. */
  | {
      type: 'refunds';
      paymentIds: string[];
      /** Omitted = full refund (empty JSON object body). */
      amount?: number;
      /** Fraction of requests that resend an earlier completed request with its key. Default 0. */
      replayFraction?: number;
      repeat?: boolean;
      keyPrefix: string;
    }
  | { type: 'fixed'; path: string; body: string };

export interface HttpJob extends Window {
  kind: 'http';
  url: string;
  /** Several gateway processes: requests go round-robin over them (`url` is the first). */
  urls?: string[];
  authorization?: string;
  plan: HttpPlan;
  /** Meanwhile, a closed loop of GETs of these paths (round-robin); their latencies come back
   *  as `reads`. */
  reader?: { paths: string[]; concurrency: number };
}

/**
 * An open loop: refunds sent at a fixed rate whatever the answers do (a constant-arrival-rate
 * schedule). Request i is due at start + i / rate; its latency is measured from that intended
 * time (coordinated omission corrected) and from the moment it was actually sent.
 */
export interface OpenJob extends Window {
  kind: 'open';
  url: string;
  authorization?: string;
  /** Requests per second. */
  rate: number;
  /** Most connections the generator may open (it opens one whenever all are busy). */
  connections: number;
  paymentIds: string[];
  keyPrefix: string;
}

export interface SqlJob extends Window {
  kind: 'sql';
  url: string;
  poolSize: number;
  recording: Recording;
  /** The gateway's transaction grouping (limits as the gateway computes them); unset: every transaction alone. */
  groups?: GroupLimits;
  targets: { id: string; ref: string }[];
  keyPrefix: string;
}

export type LoadJob = HttpJob | SqlJob | OpenJob;

export interface LoadResult {
  /** Requests completed inside the measured window. */
  count: number;
  elapsedMs: number;
  /** Milliseconds, for the requests counted (closed loop: those sent inside the window). */
  latencies: Float64Array;
  statuses: Record<string, number>;
  errors: number;
  errorSamples: string[];
  /** Responses that carried `Idempotent-Replayed: true`. */
  replayed: number;
  /** Requests that were meant as replays. */
  replaysSent: number;
  /** Payment ids consumed (warm-up included). */
  consumed: number;
  warmupCount: number;
  /** Closed loop: requests sent during the warm-up and answered inside the window. They count
   *  in `count` (the throughput) but not in `latencies` (the steady state's). */
  carriedOver?: { count: number; maxMs: number };
  gateway?: {
    cpuMs: number;
    /** Of which in the kernel (system calls: sockets, mostly). */
    sysMs: number;
    eventLoopP99Ms: number | null;
    eventLoopMaxMs: number | null;
    /** The gateway's garbage collections during the window, by kind (prom-client's
     *  `nodejs_gc_duration_seconds`): how many, their total pause, and how many paused ≥ 100 ms. */
    gc?: Record<string, { count: number; totalMs: number; over100ms: number }>;
  };
  /** Whole-machine CPU busy share during the window, 0–100 (two cores = 100 when both busy). */
  machineBusyPct: number;
  /** CPU used by the database server's processes during the window, in ms. */
  postgresCpuMs: number;
  /** Machine CPU busy share in the 300 ms before the run, before any load: other work on the machine. */
  backgroundBusyPct: number;
  /** CPU of each `Window.processes` label during the window, in ms. */
  processCpuMs?: Record<string, number>;
  /** The reader's GET latencies (HttpJob.reader), ms, and its failed reads. */
  reads?: { latencies: Float64Array; errors: number; errorSamples: string[] };
  /** Open loop only. `latencies` are then measured from the intended send time. */
  open?: {
    targetRate: number;
    /** When the measured window opened (ms since the epoch), to place the slots on other clocks. */
    windowStartEpochMs: number;
    /** Requests due in the measured window, all sent. */
    sent: number;
    /** Latencies from the actual send, ms. */
    uncorrected: Float64Array;
    /** How late the generator sent each request after its intended time, ms. */
    lag: Float64Array;
    /** Connections the generator had open at the end. */
    connections: number;
    /** Answers still outstanding when the measured window closed. */
    inFlightAtEnd: number;
    /** Where the slow answers (over `slowMs` from the intended time) fall: the measured window
     *  cut into 100 ms slots by intended send time. Slow answers crowded into a few slots are
     *  stalls (the gateway or the database stopped for a while); spread over many, queueing. */
    slow: { slowMs: number; count: number; slots: number; slotsWithSlow: number; worstSlots: { atMs: number; slow: number; maxMs: number }[] };
  };
}
