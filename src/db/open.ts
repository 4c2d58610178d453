import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../lib/logger.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite.js';
import { createPostgresDb } from './postgres.js';

/** `DATABASE_URL` selects a real server; otherwise the embedded database in the data directory. */
export async function openDb(config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolSize' | 'dbPreparedStatements'>, logger?: Logger): Promise<Db> {
  if (config.databaseUrl) {
    return createPostgresDb({
      connectionString: config.databaseUrl,
      max: config.dbPoolSize,
      prepare: config.dbPreparedStatements,
      onPreparedStatementsRefused: (err) => logger?.warn({ err: err.message },
        'the database connection refused a named prepared statement (a transaction pooler?): running without them; set SETTLE_DB_PREPARED_STATEMENTS=false'),
    });
  }
  return createPgliteDb(join(config.dataDir, 'pgdata'));
}
