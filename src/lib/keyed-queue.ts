/**
 * Runs at most `limit` of the tasks given for one key at a time, the others waiting their turn
 * in the order given; tasks for different keys run side by side. Nothing is kept for a key once
 * its last task has settled.
 *
 * The refund service runs a payment's row-locking transactions through it with a limit of 2:
 * one transaction holds the payment's row lock while the next already waits for it in the
 * database, ready the moment it is released, and the rest wait here holding no connection.
 * Without it, every refund of one busy payment queued on the row lock with a pooled connection
 * of its own: the pool filled with waiters (stalling other payments' refunds too) and the
 * server woke each of them in turn. The row lock still decides, across processes too.
 */
export class KeyedQueue {
  private readonly keys = new Map<string, { running: number; waiting: (() => void)[] }>();

  constructor(private readonly limit = 1) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error('KeyedQueue limit must be a positive integer');
  }

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let entry = this.keys.get(key);
    if (!entry) {
      entry = { running: 0, waiting: [] };
      this.keys.set(key, entry);
    }
    const e = entry;
    const start = (): Promise<T> => {
      e.running++;
      let run: Promise<T>;
      try {
        run = task();
      } catch (err) {
        run = Promise.reject(err);
      }
      return run.finally(() => {
        e.running--;
        const next = e.waiting.shift();
        if (next) next();
        else if (e.running === 0) this.keys.delete(key);
      });
    };
    if (e.running < this.limit) return start();
    return new Promise<T>((resolve, reject) => e.waiting.push(() => start().then(resolve, reject)));
  }

  /** Keys with a task running or waiting. */
  get size(): number {
    return this.keys.size;
  }
}
