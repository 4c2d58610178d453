/**
 * PostgreSQL clusters and PgBouncer poolers of a test's own: their own data directory, config and
 * free port on loopback, so a test may stop, restart or kill them without touching the shared
 * server on :5432. Run as the `postgres` user when the test runs as root (neither server runs as
 * root).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The newest installed PostgreSQL's bin directory (Debian layout), or PG_BIN. */
export function postgresBinDir(): string | undefined {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], 'bin') : undefined;
}

export function pgbouncerBinary(): string | undefined {
  return ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'].find((p) => existsSync(p));
}

/**
 * Whether a test needing `what` can run here: under CI=true a missing tool fails the test (CI
 * installs it), locally the test is skipped with the reason.
 */
export function toolOrSkip(t: { skip: (msg: string) => void }, what: string, present: boolean): boolean {
  if (present) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${what} is not installed`);
  t.skip(`${what} is not installed`);
  return false;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;

/** Owner ids of the `postgres` account, when running as root. */
async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (!asRoot) return undefined;
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/** `cmd args` as the postgres user when root (runuser), as ourselves otherwise. */
function command(cmd: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

async function runAs(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const [c, a] = command(cmd, args);
  try {
    const r = await run(c, a, { timeout: timeoutMs });
    return r.stdout + r.stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** A directory the servers (running as `postgres` when we are root) may write to. */
async function ownedDir(prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const ids = await postgresIds();
  if (ids) chownSync(dir, ids.uid, ids.gid);
  chmodSync(dir, 0o700);
  return dir;
}

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication). */
  url: string;
  /** Clean shutdown (`pg_ctl stop -m fast`): sessions are ended, the server goes down. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it (if running) and deletes its directory. */
  destroy(): Promise<void>;
}

/** A fresh cluster (initdb) of its own, started on a free loopback port. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no PostgreSQL server binaries (initdb, pg_ctl) found');
  const dir = await ownedDir('settle-pg-');
  const data = join(dir, 'data');
  await runAs(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  // fsync off: a test cluster; a clean stop and restart loses nothing with or without it
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  let running = false;
  const pg: PrivatePostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await runAs(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '120', 'start']);
      running = true;
    },
    async stop() {
      await runAs(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '120', 'stop']);
      running = false;
    },
    async destroy() {
      if (running) await runAs(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

export interface PgBouncer {
  port: number;
  /** The URL of database `database` through the pooler. */
  url: string;
  proc: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/**
 * PgBouncer in transaction pooling mode in front of `serverUrl` (trust authentication), on a free
 * loopback port, with a config of its own. `poolSize` server connections per database and user.
 */
export async function startPgBouncer(serverUrl: string, opts: { poolSize?: number } = {}): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (!binary) throw new Error('pgbouncer is not installed');
  const server = new URL(serverUrl);
  const database = server.pathname.slice(1) || 'postgres';
  const dir = await ownedDir('settle-pgbouncer-');
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  const users = join(dir, 'userlist.txt');
  writeFileSync(users, '"postgres" ""\n');
  writeFileSync(ini, [
    '[databases]',
    `${database} = host=${server.hostname} port=${server.port || 5432} dbname=${database} user=${decodeURIComponent(server.username || 'postgres')}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir = ${dir}`,
    'auth_type = trust',
    `auth_file = ${users}`,
    'pool_mode = transaction',
    `default_pool_size = ${opts.poolSize ?? 10}`,
    'max_client_conn = 500',
    // what the pg client sends at startup besides application_name
    'ignore_startup_parameters = extra_float_digits,options',
    'server_login_retry = 1',
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n'));
  const ids = await postgresIds();
  for (const f of [ini, users]) if (ids) chownSync(f, ids.uid, ids.gid);
  mkdirSync(dir, { recursive: true });
  // as root, pgbouncer switches to the postgres user itself (-u): signals reach it directly
  const proc = spawn(binary, asRoot ? ['-u', 'postgres', ini] : [ini], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pgbouncer did not start:\n${out}`)), 30_000);
    const check = () => {
      if (/process up|listening on 127\.0\.0\.1/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pgbouncer exited with ${code}:\n${out}`));
    });
  });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
