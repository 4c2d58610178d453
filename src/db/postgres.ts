import { createHash } from 'node:crypto';
import pg from 'pg';
import { parseInt8, sqlState, TransactionRolledBackError, withRetry, type Db, type QueryResult, type Tx } from './db.js';

pg.types.setTypeParser(pg.types.builtins.INT8, parseInt8);

export interface PostgresOptions {
  connectionString: string;
  /** Pool size. Default 20. */
  max?: number;
  /** Reported to the server as application_name. Default `settle`. */
  applicationName?: string;
  /** Run data statements as named prepared statements (parsed and planned once per connection).
   *  Default true. Behind a transaction pooler (PgBouncer before 1.21 in `pool_mode=transaction`)
   *  a connection's prepared statements are not the next transaction's: set false there. Left
   *  true, the first statement the pooler routes to a server without it turns them off for the
   *  process (`onPreparedStatementsRefused`) and is run again unnamed. */
  prepare?: boolean;
  /** Called once when the server (a pooler) refused a named prepared statement and the process
   *  went on without them. */
  onPreparedStatementsRefused?: (err: Error) => void;
}

/** Statements worth preparing: data statements, not DDL or transaction control. */
const PREPARABLE = /^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b/i;
/** Distinct statement texts prepared per process; past this, statements run unnamed. The gateway
 *  issues a few dozen; the cap only guards against a caller that builds SQL without bound. */
const MAX_PREPARED = 1000;
const names = new Map<string, string>();

/**
 * The prepared-statement name of a statement text (stable across connections and processes), or
 * undefined when it runs unnamed.
 */
export function preparedName(sql: string): string | undefined {
  let name = names.get(sql);
  if (name === undefined) {
    if (names.size >= MAX_PREPARED || !PREPARABLE.test(sql)) return undefined;
    name = `settle_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    names.set(sql, name);
  }
  return name;
}

/**
 * A prepared `SELECT *` refuses to run once its table gained a column (a migration applied by a
 * newer process meanwhile). The connection is dropped and the work retried on a fresh one, which
 * prepares the statement again.
 */
function isStalePlan(err: unknown): boolean {
  return sqlState(err) === '0A000' && /cached plan must not change result type/.test(String((err as Error).message));
}

/**
 * A named prepared statement missing on the server connection (26000), or there already (42P05):
 * a transaction pooler gave this client another server connection than the one it prepared on.
 * Never a wrong result: a statement's name is a hash of its text.
 */
function isPreparedStatementMismatch(err: unknown): boolean {
  const state = sqlState(err);
  return (state === '26000' || state === '42P05') && /prepared statement "settle_/.test(String((err as Error).message));
}

/** The client's socket, when it has one that can be corked (the bench's floor corks it as we do). */
export function socketOf(client: pg.PoolClient): { cork(): void; uncork(): void } | undefined {
  const stream = (client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
  return stream?.cork && stream.uncork ? (stream as { cork(): void; uncork(): void }) : undefined;
}

const corkedSockets = new WeakSet<object>();

/**
 * Corks the client's socket until the current tick's work is done: every statement sent
 * meanwhile — BEGIN with a transaction's first statement, a statement with COMMIT behind it, the
 * statements several members of a transaction group send as their locks are granted — leaves in
 * one write (one syscall, one packet for the server to read) instead of one each.
 */
function corkForTick(client: pg.PoolClient): void {
  const socket = socketOf(client);
  if (!socket || corkedSockets.has(socket)) return;
  corkedSockets.add(socket);
  socket.cork();
  process.nextTick(() => {
    corkedSockets.delete(socket);
    socket.uncork();
  });
}

export function createPostgresDb(opts: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 20,
    application_name: opts.applicationName ?? 'settle',
    connectionTimeoutMillis: 10_000,
    // Pipelining: a query is sent without waiting for the one before it to be answered. The
    // gateway still awaits each statement whose answer it needs; what overlaps is BEGIN with a
    // transaction's first statement and COMMIT with its last (`Tx.lastQuery`): two round trips
    // fewer per transaction, and shorter row locks.
    // Through a transaction pooler (PgBouncer, pool_mode=transaction), which hands the server
    // connection to another client once a transaction ends, this stays correct because nothing
    // is ever pipelined behind a statement that leaves the connection idle: everything overlapped
    // is inside BEGIN … COMMIT, a statement outside a transaction goes alone on a connection
    // checked out for it, and the connection returns to the pool only once COMMIT (or ROLLBACK)
    // is answered. test/e2e/pgbouncer.test.ts runs the refund path through PgBouncer.
    pipeline: true,
  } as pg.PoolConfig);
  // A backend that dies while idle in the pool (server restart, pg_terminate_backend) surfaces
  // here; the pool drops the client and the next query gets a fresh connection.
  pool.on('error', () => {});
  // A fresh connection can report its backend's death in the same socket read as its
  // ReadyForQuery: pg-pool hands the client out and drops its idle listener synchronously, and
  // the caller's own listener (checkout) is only attached after `await pool.connect()` resumes —
  // in between, an 'error' event with no listener kills the process. A listener for the life of
  // every client closes that gap; a client that failed is not queryable, its next query rejects
  // and it is discarded on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  let prepare = opts.prepare ?? true;
  /** True when `err` means the work must run again on a fresh connection (once per cause). */
  const recoverable = (err: unknown): boolean => {
    if (isStalePlan(err)) return true;
    if (!isPreparedStatementMismatch(err)) return false;
    if (prepare) {
      prepare = false;
      opts.onPreparedStatementsRefused?.(err as Error);
    }
    return true;
  };

  const run = async <T>(client: pg.PoolClient, sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> => {
    const name = prepare ? preparedName(sql) : undefined;
    const r = name
      ? await client.query({ name, text: sql, values: params as unknown[] })
      : await client.query(sql, params as unknown[]);
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  };

  /**
   * A pooled connection for the caller's own use. While it is checked out, a connection that dies
   * (server restart, pg_terminate_backend) reports an 'error' on the client: without a listener
   * that would crash the process, so it is noted here and the connection is dropped on release.
   */
  const checkout = async () => {
    const client = await pool.connect();
    let dead: Error | undefined;
    const onError = (err: Error) => {
      dead = err;
    };
    client.on('error', onError);
    return {
      client,
      release(err?: Error | boolean) {
        client.removeListener('error', onError);
        client.release(err || dead);
      },
    };
  };

  const query = async <T>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> => {
    for (let attempt = 1; ; attempt++) {
      const c = await checkout();
      try {
        const r = await run<T>(c.client, sql, params);
        c.release();
        return r;
      } catch (err) {
        // as pg's pool.query does: a connection that saw an error is not reused
        c.release(err as Error);
        if (attempt > 1 || !recoverable(err)) throw err;
      }
    }
  };

  return {
    kind: 'postgres',
    query,
    async exec(sql) {
      await pool.query(sql);
    },
    transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      let staleRetried = false;
      const attempt = async (): Promise<T> => {
        const c = await checkout();
        let broken = false;
        // 'open' until lastQuery sends COMMIT; then 'committed' or 'rolled back' once answered
        let state = 'open' as 'open' | 'ending' | 'committed' | 'rolled back';
        try {
          const closed = () => Promise.reject(new Error('Transaction is closed'));
          const tx: Tx = {
            query: <R>(sql: string, params?: readonly unknown[]) => {
              if (state !== 'open') return closed();
              corkForTick(c.client);
              return run<R>(c.client, sql, params);
            },
            async lastQuery<R>(sql: string, params?: readonly unknown[]) {
              if (state !== 'open') return closed();
              state = 'ending';
              corkForTick(c.client);
              const result = run<R>(c.client, sql, params);
              const commit = c.client.query('COMMIT');
              commit.catch(() => {});
              try {
                const r = await result;
                if ((await commit).command === 'ROLLBACK') throw new TransactionRolledBackError();
                state = 'committed';
                return r;
              } catch (err) {
                // the COMMIT behind a failed statement answers ROLLBACK; wait for it, so the
                // connection goes back to the pool idle
                await commit.catch(() => {});
                state = 'rolled back';
                throw err;
              }
            },
          };
          // BEGIN is not awaited: it is pipelined with the transaction's first statement (a failed
          // BEGIN means a broken connection, which fails that statement too). BEGIN and whatever
          // fn sends before its first await leave in one write.
          corkForTick(c.client);
          const begun = c.client.query('BEGIN');
          const running = fn(tx);
          begun.catch(() => {});
          const result = await running;
          await begun;
          if (state === 'committed') return result;
          if (state !== 'open') throw new TransactionRolledBackError(); // lastQuery failed, and fn went on
          const committed = await c.client.query('COMMIT');
          if (committed.command === 'ROLLBACK') throw new TransactionRolledBackError();
          return result;
        } catch (err) {
          if (state === 'open') {
            try {
              await c.client.query('ROLLBACK');
            } catch {
              broken = true;
            }
          } else if (state !== 'committed' && state !== 'rolled back') {
            broken = true; // COMMIT's answer never came
          }
          if (isStalePlan(err) || isPreparedStatementMismatch(err)) broken = true;
          throw err;
        } finally {
          c.release(broken);
        }
      };
      return withRetry(async () => {
        try {
          return await attempt();
        } catch (err) {
          if (staleRetried || !recoverable(err)) throw err;
          staleRetried = true;
          return attempt();
        }
      });
    },
    async close() {
      await pool.end();
    },
  };
}
