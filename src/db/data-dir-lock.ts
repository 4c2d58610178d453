import { linkSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * One process per embedded database directory. PGlite has no postmaster to refuse a second
 * backend: two processes on one directory both accept writes, and one's are lost when they stop.
 * So the directory gets a lock file beside it (`<dir>.lock`) naming its holder.
 *
 * The file is created atomically (`link` of a fully written temporary file, which fails when
 * the lock exists). A lock left by a process that died without releasing it (SIGKILL, power
 * loss) is recognised by its pid no longer running on this host and taken over, so a crash
 * never blocks the next start. A lock from another host (a directory on a shared volume) cannot
 * be checked and is always respected.
 */

/** What the lock file says about its holder. */
export interface LockHolder {
  pid: number;
  hostname: string;
  /** The settle command line, e.g. `settle serve`. */
  command: string;
  started_at: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: LockHolder,
  ) {
    super(
      `The embedded database in ${dir} is in use by process ${holder.pid}` +
        `${holder.hostname !== hostname() ? ` on ${holder.hostname}` : ''} (${holder.command}, since ${holder.started_at}). ` +
        'One process at a time may open it: stop that process first, or run several gateways on PostgreSQL (DATABASE_URL).',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock file if it is still this holder's. Idempotent. */
  release(): void;
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return typeof parsed.pid === 'number' ? parsed : undefined;
  } catch {
    return undefined; // missing, or torn by a crash mid-write (never: it is linked whole)
  }
}

/** True unless the holder is certainly gone: a pid on this host that no longer runs. */
function holderAlive(holder: LockHolder): boolean {
  if (holder.hostname !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    // EPERM: the pid runs under another user, so it is alive
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock of `dir` for this process, or throws DataDirLockedError naming the holder.
 * `command` says what this process is, for the message another process will show.
 */
export function lockDataDir(dir: string, command: string): DataDirLock {
  const path = `${resolve(dir)}.lock`;
  const me: LockHolder = { pid: process.pid, hostname: hostname(), command, started_at: new Date().toISOString() };
  const mine = JSON.stringify(me);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}`);
  writeFileSync(tmp, mine, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = readHolder(path);
        if (holder && holderAlive(holder)) throw new DataDirLockedError(dir, holder);
        // stale (its process is gone) or unreadable: remove it and try again
        rmSync(path, { force: true });
        continue;
      }
      // Two processes may both have found the same stale lock and removed it in turn; the
      // file that stays is the winner's. Checking it is ours leaves that race a window of a
      // few system calls, and only when a stale lock is taken over by two starts at once.
      const holder = readHolder(path);
      if (holder && readFileSync(path, 'utf8') !== mine) throw new DataDirLockedError(dir, holder);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off('exit', release);
        try {
          if (readFileSync(path, 'utf8') === mine) unlinkSync(path);
        } catch {
          // already gone
        }
      };
      // a process that exits without closing its database (process.exit) leaves no lock
      process.on('exit', release);
      return { path, release };
    }
    throw new Error(`could not take the lock ${path}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}
