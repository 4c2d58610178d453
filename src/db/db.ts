/**
 * One database handle over two backends that speak the same SQL: `pg` for a real PostgreSQL
 * server, PGlite (PostgreSQL compiled to WASM) in-process. Transactions are opened here and only
 * here, and handed to callers as an explicit `Tx` parameter.
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
}

/** A handle inside an open transaction. */
export interface Tx extends Queryable {
  /**
   * Runs the transaction's last statement and commits: the transaction is committed when this
   * resolves (or rolled back when it rejects), and a statement after it is refused. PostgreSQL
   * gets COMMIT pipelined right behind the statement, one round trip for both.
   */
  lastQuery<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in a READ COMMITTED transaction; retried on deadlock or serialization failure. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Runs a script of several statements (migrations). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * COMMIT answered ROLLBACK: a statement of the transaction failed and its error was caught
 * inside `fn`, so nothing was written. Thrown by both backends (PostgreSQL answers such a COMMIT
 * without an error), so a transaction that wrote nothing never looks committed.
 */
export class TransactionRolledBackError extends Error {
  constructor() {
    super('The transaction was rolled back at COMMIT: one of its statements had failed.');
    this.name = 'TransactionRolledBackError';
  }
}

/** SQLSTATEs after which the whole transaction may safely be run again. */
export const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);

/** int8 → number, refusing anything past 2^53 rather than silently rounding money. */
export function parseInt8(value: string | number | bigint): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`int8 value ${String(value)} exceeds the safe integer range`);
  return n;
}

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

export async function withRetry<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await run();
    } catch (err) {
      const state = sqlState(err);
      if (i >= attempts || !state || !RETRYABLE_SQLSTATES.has(state)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * i));
    }
  }
}

/**
 * SQLSTATEs of a server that cannot serve right now: connection exceptions (class 08, also what
 * PgBouncer answers when it cannot reach the server), shut down or starting up (57P01–57P03),
 * out of connection slots (53300).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300)$/;
/** Socket errors of a connection that could not be made or was lost. */
const UNAVAILABLE_NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** What `pg` and `pg-pool` say when a connection is lost or cannot be had in time. */
const UNAVAILABLE_MESSAGES = /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|timeout expired$)/;

/**
 * The database could not be reached, or the connection was lost, rather than a statement
 * failing: the request may be retried once the database is back (HTTP 503, `Retry-After`).
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const e = err as { code?: unknown; syscall?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NET_CODES.has(code)) return true;
  if (e.syscall === 'connect') return true; // e.g. ENOENT for a Unix socket that is gone
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true;
  // AggregateError: every address of the host refused. Causes are not followed: a PSP call's
  // refused connection, wrapped, is not the database's.
  return Array.isArray(e.errors) && e.errors.some((x) => isDatabaseUnavailable(x, depth + 1));
}
