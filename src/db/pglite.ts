import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { parseInt8, type Db, type Tx } from './db.js';

/**
 * PGlite's default start parameters run the single-user backend with `-F` (fsync off). We pass
 * our own list without it, so a committed transaction is flushed to the data directory before
 * the commit returns: a crash of the gateway process loses nothing it acknowledged.
 */
const DURABLE_START_PARAMS = [
  '--single',
  '-O',
  '-j',
  '-c', 'search_path=public',
  '-c', 'exit_on_error=false',
  '-c', 'log_checkpoints=false',
  '-c', 'max_worker_processes=0',
  '-c', 'max_parallel_workers=0',
  '-c', 'max_parallel_workers_per_gather=0',
  '-c', 'max_parallel_maintenance_workers=0',
  '-c', 'io_method=sync',
  '-c', 'fsync=on',
  '-c', 'synchronous_commit=on',
  '-c', 'full_page_writes=on',
];

/**
 * pg's rowCount: rows returned, or rows written. PGlite reports `affectedRows: 0` for a SELECT,
 * so the returned rows come first.
 */
function rowCount(r: { rows: unknown[]; affectedRows?: number }): number {
  return r.rows.length || (r.affectedRows ?? 0);
}

/** `dataDir` is a directory, or `memory://` for a throwaway database (tests). */
export async function createPgliteDb(dataDir: string): Promise<Db> {
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const lite = await PGlite.create(dataDir, {
    startParams: DURABLE_START_PARAMS,
    parsers: { 20: (v: string) => parseInt8(v) },
  });

  // PGlite runs one statement at a time; its transaction() holds an exclusive lock, so
  // transactions from concurrent requests are serialized rather than interleaved.
  return {
    kind: 'pglite',
    async query<T>(sql: string, params?: readonly unknown[]) {
      const r = await lite.query<T>(sql, params as unknown[]);
      return { rows: r.rows, rowCount: rowCount(r) };
    },
    async exec(sql) {
      await lite.exec(sql);
    },
    transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return lite.transaction(async (t) =>
        fn({
          async query<R>(sql: string, params?: readonly unknown[]) {
            const r = await t.query<R>(sql, params as unknown[]);
            return { rows: r.rows, rowCount: rowCount(r) };
          },
        }),
      );
    },
    async close() {
      await lite.close();
    },
  };
}
