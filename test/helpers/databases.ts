import pg from 'pg';
import { randomString } from '../../src/lib/ids.js';

/** The server the Postgres-backed tests run against; each test file gets a fresh database on it. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let available: Promise<boolean> | undefined;

export function postgresAvailable(): Promise<boolean> {
  available ??= (async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return available;
}

/**
 * Postgres-backed tests fail (never skip) under CI when the server is missing; locally they
 * are skipped with a reason. `t` may be a hook's context, which has no `skip` on Node 20: then
 * the caller's tests skip themselves on the `false` returned.
 */
export async function postgresOrSkip(t: { skip?: (msg: string) => void }): Promise<boolean> {
  if (await postgresAvailable()) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but PostgreSQL is unreachable at ${TEST_DATABASE_URL}`);
  if (typeof t.skip === 'function') t.skip(`PostgreSQL unreachable at ${TEST_DATABASE_URL}`);
  return false;
}

export interface TempDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database named `<prefix><random>` on the server at `serverUrl` (the bench's too). */
export async function createDatabaseOn(serverUrl: string, prefix: string): Promise<TempDatabase> {
  const name = `${prefix}${randomString(10, 'abcdefghijklmnopqrstuvwxyz0123456789')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export const createTempDatabase = (): Promise<TempDatabase> => createDatabaseOn(TEST_DATABASE_URL, 'settle_t_');
