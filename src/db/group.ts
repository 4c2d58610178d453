import type { Db, QueryResult, Tx } from './db.js';

/**
 * Group commit in the application: the short row-locking transactions of concurrent requests
 * that arrive while earlier ones are running share one database transaction, so a burst of
 * refunds pays for one BEGIN, one COMMIT (one WAL flush) and a few round trips per group
 * instead of per refund. PostgreSQL's own group commit only merges the flushes; this also
 * merges the round trips and the wake-ups of the server process, which on a small machine cost
 * as much as the statements themselves.
 *
 * - A request that arrives while fewer than `maxInFlight` transactions run starts at once, alone,
 *   on the plain `db.transaction` path: no waiting is ever added, and a quiet gateway behaves
 *   exactly as without groups.
 * - Otherwise it waits for a running transaction to end; the waiting requests then start
 *   together, up to `maxSize` of them, and never two with the same key (the payment), since two
 *   members of one transaction would not exclude each other through the payment's row lock.
 * - Members start in key order, so their first (locking) statements reach the server in that
 *   order, as every group's do: concurrent groups lock payments in one order.
 * - A member that fails having only read (every statement it sent began with SELECT, locking
 *   reads included) wrote nothing: it gets its error and the group commits the others. This is
 *   how a refund refused after reading its payment (amount too large, already refunded) fails.
 * - Otherwise all or nothing, then one by one: if a member fails after writing, or any statement
 *   fails (a constraint, a deadlock), the group is rolled back — nothing of it was written,
 *   COMMIT was never sent — and every member runs again in a transaction of its own, where it
 *   succeeds or fails exactly as it would have alone. Members must therefore be transaction
 *   bodies that may run again, as any body retried after a deadlock must be.
 * - A member's result is delivered only once the group has committed. If COMMIT itself fails,
 *   the outcome is unknown and every member fails with that error, as a lone transaction would.
 */
export interface GroupLimits {
  /** Transactions of the group's users running at once (singles and groups). */
  maxInFlight: number;
  /** Members of one transaction. */
  maxSize: number;
  /**
   * Start transactions at the end of the event-loop turn (setImmediate) rather than at once, so
   * the steps of requests read in the same turn can share one. For an in-process database
   * (PGlite), whose transactions run to completion within the turn that starts them: without
   * this, no step would ever find another one waiting.
   */
  gatherTurn?: boolean;
}

/**
 * The gateway's limits: on PostgreSQL half the pool (the rest serves reads, webhooks and the
 * workers); on PGlite, which runs one transaction at a time anyway, one. Groups of up to
 * `maxSize` (`SETTLE_REFUND_GROUP_MAX`, 16 by default; 1 turns grouping off).
 */
export function groupLimits(kind: Db['kind'], poolSize: number, maxSize = 16): GroupLimits {
  if (kind === 'pglite') return { maxInFlight: 1, maxSize, gatherTurn: maxSize > 1 };
  return { maxInFlight: Math.max(1, Math.floor(poolSize / 2)), maxSize };
}

interface Member {
  key: string;
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** Thrown inside a group's transaction to roll it back when a member failed. */
const MEMBER_FAILED = Symbol('a member of the group failed');

export class TransactionGroups {
  private readonly waiting: Member[] = [];
  private inFlight = 0;
  /** Transactions run, and members run in them (singles included), for tests and metrics. */
  readonly stats = { transactions: 0, members: 0, groupsRolledBack: 0 };

  constructor(
    private readonly db: Db,
    private readonly limits: GroupLimits,
  ) {
    if (!(limits.maxInFlight >= 1 && limits.maxSize >= 1)) throw new Error('TransactionGroups limits must be at least 1');
  }

  /** Runs `fn` as a transaction of its own or as a member of a group (see above). */
  run<T>(key: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ key, fn, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  private gathering = false;

  private pump(): void {
    if (this.limits.gatherTurn) {
      if (this.gathering) return;
      this.gathering = true;
      setImmediate(() => {
        this.gathering = false;
        this.startWaiting();
      });
      return;
    }
    this.startWaiting();
  }

  private startWaiting(): void {
    while (this.inFlight < this.limits.maxInFlight && this.waiting.length > 0) {
      const batch = this.take();
      this.inFlight++;
      void this.runBatch(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** The waiting members of the next transaction, oldest first, one per key. */
  private take(): Member[] {
    const batch: Member[] = [];
    const keys = new Set<string>();
    for (let i = 0; i < this.waiting.length && batch.length < this.limits.maxSize;) {
      const m = this.waiting[i];
      if (keys.has(m.key)) {
        i++;
        continue;
      }
      keys.add(m.key);
      batch.push(m);
      this.waiting.splice(i, 1);
    }
    return batch;
  }

  private async runBatch(batch: Member[]): Promise<void> {
    this.stats.transactions++;
    this.stats.members += batch.length;
    if (batch.length === 1) {
      await this.alone(batch[0]);
      return;
    }
    batch.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let settled: PromiseSettledResult<unknown>[];
    try {
      settled = await this.db.transaction((tx) => this.runMembers(tx, batch));
    } catch (err) {
      if (err !== MEMBER_FAILED) {
        // BEGIN or COMMIT failed: nothing to run again safely (a COMMIT may have landed)
        for (const m of batch) m.reject(err);
        return;
      }
      this.stats.groupsRolledBack++;
      this.stats.transactions += batch.length;
      await Promise.all(batch.map((m) => this.alone(m)));
      return;
    }
    batch.forEach((m, i) => {
      const s = settled[i];
      if (s.status === 'fulfilled') m.resolve(s.value);
      else m.reject(s.reason);
    });
  }

  /** Runs a member in a transaction of its own and answers it. */
  private alone(m: Member): Promise<void> {
    return this.db.transaction(m.fn).then(m.resolve, m.reject);
  }

  /**
   * Runs every member on the group's transaction. Throws MEMBER_FAILED (roll back, run each
   * alone) when a statement failed or a member that wrote failed; a member that failed having
   * only read is answered with its error once the others commit.
   */
  private async runMembers(tx: Tx, batch: Member[]): Promise<PromiseSettledResult<unknown>[]> {
    let failed = false;
    const wrote = batch.map(() => false);
    const watch = <R>(p: Promise<QueryResult<R>>) => {
      p.catch(() => {
        failed = true; // even if the member catches it: the transaction is aborted
      });
      return p;
    };
    const settled = await Promise.allSettled(batch.map((m, i) => {
      let ended = false;
      const closed = () => Promise.reject(new Error('Transaction is closed'));
      const send = <R>(sql: string, params?: readonly unknown[]) => {
        if (!READS.test(sql)) wrote[i] = true;
        return watch(tx.query<R>(sql, params));
      };
      // the member's last statement does not commit: the group commits once every member is done
      const memberTx: Tx = {
        query: <R>(sql: string, params?: readonly unknown[]) => (ended ? closed() : send<R>(sql, params)),
        lastQuery: <R>(sql: string, params?: readonly unknown[]) => {
          if (ended) return closed();
          ended = true;
          return send<R>(sql, params);
        },
      };
      // started in key order: each member's first statement is sent before the next member starts
      try {
        return m.fn(memberTx);
      } catch (err) {
        return Promise.reject(err);
      }
    }));
    if (failed || settled.some((s, i) => s.status === 'rejected' && wrote[i])) throw MEMBER_FAILED;
    return settled;
  }
}

/** A statement that writes nothing: a plain or locking read (a data-modifying CTE starts with WITH). */
const READS = /^\s*SELECT\b/i;
