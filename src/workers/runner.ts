import type { Config } from '../config.js';
import { isDatabaseUnavailable, type Db } from '../db/db.js';
import type { Logger } from '../lib/logger.js';
import type { Services } from '../services.js';
import { syncPendingRefunds } from './refund-sync.worker.js';

/** How often each loop tries again while the database is unreachable. */
const DATABASE_DOWN_POLL_MS = 1000;

interface Loop {
  name: string;
  /** Returns how much work it did; a pass that did work is followed at once by another. */
  pass: () => Promise<number>;
  /** Idle interval. */
  everyMs: number;
}

/**
 * Runs the background workers in this process: outbound webhook delivery, refund sync, inbound
 * webhook processing, payment recovery and idempotency-key cleanup. Every worker is safe to
 * run in several processes at once.
 */
export class WorkerRunner {
  private stopped = false;
  /** The database was unreachable on the last failed pass: said once, not on every poll. */
  private databaseDown = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly loops: Loop[], private readonly log: Logger) {}

  static forGateway(config: Config, db: Db, services: Services, log: Logger): WorkerRunner {
    return new WorkerRunner([
      // starts sends without waiting for them: a slow endpoint holds one slot, not the loop
      { name: 'webhook-delivery', everyMs: config.workerPollMs, pass: () => services.webhooks.dispatchDue() },
      {
        name: 'refund-sync',
        everyMs: config.workerPollMs,
        // One refund per claim, leased for as long as its sync can take (at most two PSP calls):
        // a process that dies mid-pass holds up that one refund only until the lease lapses.
        pass: () => syncPendingRefunds(db, services.refunds, log, {
          syncBaseMs: config.refundSyncBaseMs,
          syncMaxMs: config.refundSyncMaxMs,
          batch: 1,
          leaseMs: 2 * config.connectorTimeoutMs + 5_000,
        }),
      },
      { name: 'inbound-webhooks', everyMs: config.workerPollMs, pass: () => services.inbound.processDue() },
      { name: 'payment-recovery', everyMs: 10_000, pass: () => services.payments.recoverProcessing(config.connectorTimeoutMs + 30_000) },
      { name: 'idempotency-cleanup', everyMs: 600_000, pass: () => services.idempotency.purgeExpired() },
      ...(config.reconcileIntervalMs > 0 ? [reconciliationLoop(config, services)] : []),
    ], log);
  }

  /** Whether this runner has a loop of that name (tests, process roles). */
  has(name: string): boolean {
    return this.loops.some((l) => l.name === name);
  }

  start(): void {
    for (const loop of this.loops) this.schedule(loop, 0);
  }

  private schedule(loop: Loop, delay: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const run = (async () => {
        let did = 0;
        let delay = loop.everyMs;
        try {
          did = await loop.pass();
          if (this.databaseDown) {
            this.databaseDown = false;
            this.log.info('database reachable again; background work resumes');
          }
        } catch (err) {
          if (isDatabaseUnavailable(err)) {
            // every loop would fail the same way: one line per outage, and a slower poll
            if (!this.databaseDown) this.log.warn({ err: (err as Error).message }, 'database unavailable; background work waits for it');
            this.databaseDown = true;
            delay = Math.max(loop.everyMs, DATABASE_DOWN_POLL_MS);
          } else {
            this.log.warn({ worker: loop.name, err: (err as Error).message }, 'worker pass failed');
          }
        }
        this.schedule(loop, did > 0 ? 0 : delay);
      })();
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
    }, delay);
    this.timers.add(timer);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
  }
}

/**
 * Reconciliation with the PSPs (docs/reconciliation.md): every process polls, one runs it per
 * interval (a lease row in the database), over the payments with activity in the lookback
 * window, leaving the latest changes to the next run (their webhooks may be in flight).
 */
function reconciliationLoop(config: Config, services: Services): Loop {
  const everyMs = config.reconcileIntervalMs;
  return {
    name: 'reconciliation',
    everyMs: Math.min(everyMs, 60_000),
    pass: async () => {
      await services.reconciliation.backgroundPass({
        everyMs,
        lookbackMs: config.reconcileLookbackHours * 3_600_000,
        settleMs: config.reconcileSettleMs,
        stalePendingMs: config.reconcileStalePendingHours * 3_600_000,
        leaseMs: Math.max(everyMs, 600_000),
      });
      return 0; // paced by its interval, never back to back
    },
  };
}
