import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, messages, protocol, types } from '@electric-sql/pglite';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { parseInt8, sqlState, TransactionRolledBackError, type Db, type QueryResult, type Tx } from './db.js';

/**
 * PGlite's default start parameters run the single-user backend with `-F` (fsync off). We pass
 * our own list without it, so a committed transaction is flushed to the data directory before
 * the commit returns: a crash of the gateway process loses nothing it acknowledged.
 * (PGlite's Node filesystem, Emscripten's NODEFS, has no fsync: `fdatasync()` and `fsync()` from
 * the backend return success without a system call. The commit's WAL write reaches the file, i.e.
 * the OS page cache, before COMMIT returns; an OS crash or power loss is not covered.)
 *
 * Memory: the backend's shared memory lives in the WASM heap, inside the gateway process, and a
 * WASM heap never shrinks. The `shared_buffers = 128MB` that initdb writes made the heap ~190 MB
 * (the gateway ~400 MB RSS); with 16 MB it stays at the module's 128 MB minimum, most of it never
 * touched. Pages that do not fit are read back from the OS page cache: on the refund workload
 * 16 MB and 128 MB measured the same throughput. `max_connections` sizes per-backend shared
 * arrays (lock table, AIO handles, PGPROCs); a single-user backend needs a handful.
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
  '-c', 'shared_buffers=16MB',
  '-c', 'max_connections=5',
];

/** Statements worth preparing: data statements, not DDL or transaction control. */
const PREPARABLE = /^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b/i;
/** Distinct statement texts kept prepared; past this, statements are parsed on every call. The
 *  gateway issues a few dozen; the cap only guards against a caller that builds SQL without bound. */
const MAX_PREPARED = 1000;
/**
 * Statements run between two `DISCARD PLANS`: the first after 128, each interval twice the last,
 * up to 8192. A cached generic plan (a prepared statement switches to one after five executions;
 * foreign-key checks keep SPI plans too) is made for the table sizes of the moment and PGlite
 * never revisits it: its single-user backend has no autovacuum to analyze a table and so
 * invalidate the plans that read it. A plan made while `refunds` or `idempotency_keys` was nearly empty
 * scans them sequentially, and the statements slow down as they grow (the idempotency-key update
 * went from ~0.2 to ~0.8 ms over a 6,000-refund bench). Discarding the plans replans them for the
 * sizes now on disk (the planner reads each table's current length); doubling the interval
 * follows tables that grow with the work done, at a cost of a few replans per interval.
 */
const REPLAN_FIRST = 128;
/** Largest message buffer kept between batches. */
const BUFFER_KEPT = 1024 * 1024;
const REPLAN_MAX = 8192;

interface Field {
  name: string;
  type: number;
}

/** A statement parsed once in the backend: its parameter types and its result's columns. */
interface Prepared {
  name: string;
  paramTypes: number[];
  fields: Field[];
}

/** See `isStalePlan` in postgres.ts: a prepared `SELECT *` whose table changed shape. */
function isStalePlan(err: unknown): boolean {
  return sqlState(err) === '0A000' && /cached plan must not change result type/.test(String((err as Error).message));
}

/**
 * Frontend messages, written into one reused buffer: a batch is handed to the backend and
 * consumed synchronously, and batches never overlap (one holder of the lock at a time).
 */
class Writer {
  buf = Buffer.allocUnsafe(16 * 1024);
  at = 0;

  reset(): this {
    this.at = 0;
    return this;
  }
  private room(n: number) {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
  private byte(b: number) {
    this.room(1);
    this.buf[this.at++] = b;
  }
  private int16(n: number) {
    this.room(2);
    this.buf.writeInt16BE(n, this.at);
    this.at += 2;
  }
  private int32(n: number) {
    this.room(4);
    this.buf.writeInt32BE(n, this.at);
    this.at += 4;
  }
  private cstring(s: string) {
    this.room(s.length * 3 + 1);
    this.at += this.buf.write(s, this.at, 'utf8');
    this.buf[this.at++] = 0;
  }
  /** A message: its code, a length patched in at the end, and a body. */
  private message(code: string, body: () => void): this {
    this.byte(code.charCodeAt(0));
    const lengthAt = this.at;
    this.int32(0);
    body();
    this.buf.writeInt32BE(this.at - lengthAt, lengthAt);
    return this;
  }

  parse(name: string, text: string) {
    return this.message('P', () => {
      this.cstring(name);
      this.cstring(text);
      this.int16(0);
    });
  }
  describe(kind: 'S' | 'P', name: string) {
    return this.message('D', () => {
      this.byte(kind.charCodeAt(0));
      this.cstring(name);
    });
  }
  /** Bind into the unnamed portal, as PGlite's serializer writes it: a format code per value
   *  (binary for a buffer, text otherwise), and results in text. */
  bind(statement: string, values: readonly (string | ArrayBufferView | ArrayBuffer | null)[]) {
    return this.message('B', () => {
      this.cstring('');
      this.cstring(statement);
      this.int16(values.length);
      for (const v of values) this.int16(v !== null && typeof v !== 'string' ? 1 : 0);
      this.int16(values.length);
      for (const v of values) {
        if (v === null) {
          this.int32(-1);
        } else if (typeof v === 'string') {
          this.room(v.length * 3 + 4);
          const n = this.buf.write(v, this.at + 4, 'utf8');
          this.buf.writeInt32BE(n, this.at);
          this.at += 4 + n;
        } else {
          const bytes = ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(v);
          this.int32(bytes.length);
          this.room(bytes.length);
          this.buf.set(bytes, this.at);
          this.at += bytes.length;
        }
      }
      this.int16(0);
    });
  }
  execute() {
    return this.message('E', () => {
      this.cstring('');
      this.int32(0);
    });
  }
  sync() {
    return this.message('S', () => {});
  }
  query(text: string) {
    return this.message('Q', () => this.cstring(text));
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}

/** What the backend answered to one batch. */
interface Reply {
  rows: Record<string, unknown>[];
  /** The last CommandComplete tag. */
  tag: string | undefined;
  /** Rows written, as PGlite counts them from the command tags. */
  affected: number;
  /** From a statement Describe. */
  paramTypes: number[];
  fields: Field[];
  /** The first ErrorResponse, as PGlite's own protocol parser builds it. */
  error: messages.DatabaseError | undefined;
}

/** Commands whose tag ends in a count of rows written (PGlite's parseResults). */
const WRITE_TAGS = new Set(['INSERT', 'UPDATE', 'DELETE', 'COPY', 'MERGE']);

/**
 * Reads a batch's backend messages. DataRows are decoded with `fields` until a RowDescription
 * in the reply replaces them; each value goes through PGlite's type parsers, as in its query().
 */
function readReply(buf: Buffer, end: number, fields: Field[], parsers: Record<number, (x: string, typeId?: number) => unknown>): Reply {
  const reply: Reply = { rows: [], tag: undefined, affected: 0, paramTypes: [], fields, error: undefined };
  let at = 0;
  while (at + 5 <= end) {
    const code = buf[at];
    const len = buf.readInt32BE(at + 1);
    const body = at + 5;
    const next = at + 1 + len;
    switch (code) {
      case 0x44 /* D: DataRow */: {
        const n = buf.readInt16BE(body);
        const row: Record<string, unknown> = {};
        let p = body + 2;
        for (let i = 0; i < n; i++) {
          const flen = buf.readInt32BE(p);
          p += 4;
          const f = reply.fields[i];
          if (flen === -1) {
            row[f.name] = types.parseType(null, f.type, parsers);
          } else {
            row[f.name] = types.parseType(buf.toString('utf8', p, p + flen), f.type, parsers);
            p += flen;
          }
        }
        reply.rows.push(row);
        break;
      }
      case 0x43 /* C: CommandComplete */: {
        const tag = buf.toString('utf8', body, next - 1);
        const parts = tag.split(' ');
        if (WRITE_TAGS.has(parts[0])) reply.affected += parseInt(parts[parts.length - 1], 10);
        reply.tag = tag;
        break;
      }
      case 0x54 /* T: RowDescription */: {
        const n = buf.readInt16BE(body);
        const out: Field[] = new Array(n);
        let p = body + 2;
        for (let i = 0; i < n; i++) {
          const z = buf.indexOf(0, p);
          const name = buf.toString('utf8', p, z);
          p = z + 1;
          const type = buf.readInt32BE(p + 6);
          p += 18;
          out[i] = { name, type };
        }
        reply.fields = out;
        break;
      }
      case 0x74 /* t: ParameterDescription */: {
        const n = buf.readInt16BE(body);
        for (let i = 0; i < n; i++) reply.paramTypes.push(buf.readInt32BE(body + 2 + 4 * i));
        break;
      }
      case 0x6e /* n: NoData */:
        reply.fields = [];
        break;
      case 0x45 /* E: ErrorResponse */:
        if (!reply.error) {
          new protocol.Parser().parse(buf.subarray(at, next), (m) => {
            reply.error ??= m as messages.DatabaseError;
          });
        }
        break;
      // ParseComplete, BindComplete, ReadyForQuery, EmptyQueryResponse, notices: nothing to keep
    }
    at = next;
  }
  return reply;
}

/** Runs the functions given to it one after another, each once the previous one settled. */
function serializer() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

export interface PgliteOptions {
  /** A data directory PGlite dumped (`dumpDataDir`), to start from instead of running initdb: a
   *  new in-memory database made in a second of CPU instead of four (the tests' harness). */
  loadDataDir?: Blob;
}

/**
 * `dataDir` is a directory, or `memory://` for a throwaway database (tests). A directory is
 * locked for this process until close() (see data-dir-lock.ts); `holder` is what another process
 * is told this one is (default: `settle` and this process's arguments).
 */
export async function createPgliteDb(dataDir: string, holder = `settle ${process.argv.slice(2).join(' ')}`.trim(), opts: PgliteOptions = {}): Promise<Db> {
  let lock: DataDirLock | undefined;
  if (!dataDir.startsWith('memory://')) {
    mkdirSync(dataDir, { recursive: true });
    lock = lockDataDir(dataDir, holder);
  }
  let lite: PGlite;
  const open = () => PGlite.create(dataDir, {
    startParams: DURABLE_START_PARAMS,
    parsers: { 20: (v: string) => parseInt8(v) },
    ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
  });
  try {
    // A new directory's first open runs initdb in this process's WebAssembly memory, which grows
    // to ~700 MB of RSS and never shrinks: the gateway would keep it for its whole life. Opened
    // again, the database runs in ~260 MB (the first instance's memory is freed), for about a
    // second more on a first start only.
    if (!dataDir.startsWith('memory://') && !opts.loadDataDir && !existsSync(join(dataDir, 'PG_VERSION'))) await (await open()).close();
    lite = await open();
  } catch (err) {
    lock?.release();
    throw err;
  }

  // PGlite runs one statement at a time. Every use of the backend below holds this lock, a
  // transaction for its whole length, so transactions from concurrent requests are serialized
  // rather than interleaved (as PGlite's own transaction() does with its mutexes).
  const exclusive = serializer();

  const out = new Writer();
  let inBuf = Buffer.allocUnsafe(64 * 1024);
  let inLen = 0;
  const onRawData = (bytes: Uint8Array) => {
    if (inLen + bytes.length > inBuf.length) {
      const next = Buffer.allocUnsafe(Math.max(inBuf.length * 2, inLen + bytes.length));
      inBuf.copy(next, 0, 0, inLen);
      inBuf = next;
    }
    inBuf.set(bytes, inLen);
    inLen += bytes.length;
  };

  /**
   * One batch of wire-protocol messages through the backend, in a single call (PGlite's query()
   * makes six, one per message, and parses every reply into message objects first).
   * `syncToFs: false` as PGlite's query() passes for each step: `syncToFs()` is a no-op on the
   * Node and memory filesystems, where the backend's writes (its WAL flush at commit included)
   * go to the files directly.
   */
  const send = async (fields: Field[] = []): Promise<Reply> => {
    inLen = 0;
    await lite.execProtocolRawStream(out.done(), { syncToFs: false, onRawData });
    const reply = readReply(inBuf, inLen, fields, lite.parsers);
    // a large result or parameter grew a buffer: do not keep it
    if (inBuf.length > BUFFER_KEPT) inBuf = Buffer.allocUnsafe(64 * 1024);
    if (out.buf.length > BUFFER_KEPT) out.buf = Buffer.allocUnsafe(16 * 1024);
    return reply;
  };

  const prepared = new Map<string, Prepared>();
  let nextName = 0;

  /** The values as PGlite's query() serializes them: by the parameter's type, in text. */
  const values = (paramTypes: number[], params: readonly unknown[]) =>
    params.map((param, i) => {
      if (param === null || param === undefined) return null;
      const ser = lite.serializers[paramTypes[i]];
      return (ser ? ser(param) : (param as { toString(): string }).toString()) as string | ArrayBufferView | null;
    });

  const prepare = async (sql: string): Promise<Prepared> => {
    const name = `s${++nextName}`;
    out.reset().parse(name, sql).describe('S', name).sync();
    const r = await send();
    if (r.error) throw r.error;
    const p = { name, paramTypes: r.paramTypes, fields: r.fields };
    prepared.set(sql, p);
    return p;
  };

  const result = <T>(r: Reply): QueryResult<T> => {
    if (r.error) throw r.error;
    // pg's rowCount: rows returned, or rows written
    return { rows: r.rows as T[], rowCount: r.rows.length || r.affected };
  };

  let replanAt = REPLAN_FIRST;
  let sinceReplan = 0;

  const runPrepared = async <T>(sql: string, params: readonly unknown[]): Promise<QueryResult<T>> => {
    sinceReplan++;
    const p = prepared.get(sql) ?? (await prepare(sql));
    out.reset().bind(p.name, values(p.paramTypes, params)).execute().sync();
    return result<T>(await send(p.fields));
  };

  /** The unnamed statement, as PGlite's query() runs it: Parse and Describe to learn the
   *  parameter types, then Bind, Describe, Execute, Sync. */
  const runUnnamed = async <T>(sql: string, params: readonly unknown[]): Promise<QueryResult<T>> => {
    out.reset().parse('', sql).describe('S', '');
    const described = await send();
    if (described.error) {
      out.reset().sync();
      await send();
      throw described.error;
    }
    out.reset().bind('', values(described.paramTypes, params)).describe('P', '').execute().sync();
    return result<T>(await send());
  };

  /** A statement, its error decorated as PGlite's query() does (query, params). */
  const run = async <T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> => {
    try {
      if (prepared.has(sql) || (PREPARABLE.test(sql) && prepared.size < MAX_PREPARED)) return await runPrepared<T>(sql, params);
      return await runUnnamed<T>(sql, params);
    } catch (e) {
      if (e instanceof messages.DatabaseError) Object.assign(e, { query: sql, params, queryOptions: undefined });
      throw e;
    }
  };

  /** A simple-protocol command (transaction control); its command tag. */
  const command = async (text: string): Promise<string | undefined> => {
    out.reset().query(text);
    const r = await send();
    if (r.error) throw Object.assign(r.error, { query: text, params: undefined, queryOptions: undefined });
    return r.tag;
  };

  /** Between statements (never inside a transaction): see REPLAN_FIRST. */
  const replanIfDue = async () => {
    if (sinceReplan < replanAt) return;
    sinceReplan = 0;
    replanAt = Math.min(replanAt * 2, REPLAN_MAX);
    await command('DISCARD PLANS');
  };

  /** Forgets every prepared statement (before DDL, or after a stale plan). */
  const deallocateAll = async () => {
    if (prepared.size === 0) return;
    prepared.clear();
    await command('DEALLOCATE ALL');
  };

  return {
    kind: 'pglite',
    query<T>(sql: string, params?: readonly unknown[]) {
      return exclusive(async () => {
        await replanIfDue();
        try {
          return await run<T>(sql, params);
        } catch (err) {
          if (!isStalePlan(err)) throw err;
          await deallocateAll();
          return run<T>(sql, params);
        }
      });
    },
    exec(sql) {
      return exclusive(async () => {
        // a script may change what prepared statements refer to (migrations)
        await deallocateAll();
        await lite.exec(sql);
      });
    },
    transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      const attempt = () =>
        exclusive(async () => {
          await replanIfDue();
          await command('BEGIN');
          let closed = false;
          // statements of one transaction issued together still run one at a time, as in
          // PGlite's transaction() (the writer and the reply buffer are shared)
          const inTx = serializer();
          // set by lastQuery: the transaction ended there
          let ended: 'committed' | 'rolled back' | undefined;
          const commit = async () => {
            // COMMIT of a transaction that saw an error rolls back instead
            if ((await inTx(() => command('COMMIT'))) === 'ROLLBACK') throw new TransactionRolledBackError();
          };
          const tx: Tx = {
            query<R>(sql: string, params?: readonly unknown[]) {
              if (closed) return Promise.reject(new Error('Transaction is closed'));
              return inTx(() => run<R>(sql, params));
            },
            async lastQuery<R>(sql: string, params?: readonly unknown[]) {
              if (closed) return Promise.reject(new Error('Transaction is closed'));
              closed = true;
              ended = 'rolled back';
              let r: QueryResult<R>;
              try {
                r = await inTx(() => run<R>(sql, params));
              } catch (err) {
                await inTx(() => command('ROLLBACK'));
                throw err;
              }
              await commit();
              ended = 'committed';
              return r;
            },
          };
          try {
            const value = await fn(tx);
            if (ended === 'committed') return value;
            if (ended) throw new TransactionRolledBackError(); // lastQuery failed, and fn went on
            closed = true;
            await commit();
            return value;
          } catch (err) {
            if (!closed) {
              closed = true;
              await inTx(() => command('ROLLBACK'));
            }
            if (isStalePlan(err)) await deallocateAll();
            throw err;
          }
        });
      return attempt().catch((err) => {
        if (!isStalePlan(err)) throw err;
        return attempt();
      });
    },
    close() {
      return exclusive(async () => {
        try {
          await lite.close();
        } finally {
          lock?.release();
        }
      });
    },
  };
}
