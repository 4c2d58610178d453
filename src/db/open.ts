import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite.js';
import { createPostgresDb } from './postgres.js';

/** `DATABASE_URL` selects a real server; otherwise the embedded database in the data directory. */
export async function openDb(config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolSize'>): Promise<Db> {
  if (config.databaseUrl) {
    return createPostgresDb({ connectionString: config.databaseUrl, max: config.dbPoolSize });
  }
  return createPgliteDb(join(config.dataDir, 'pgdata'));
}
