/**
 * The live event stream (`GET /v1/events/stream`, used by `settle listen`): a merchant's events of
 * one mode as server-sent events, in the order their transactions made them visible, resumable
 * from any event id (`Last-Event-ID`).
 *
 * Where the events come from: the events table, read by a cursor. Every process writes events in
 * its own transactions, so a stream served by one process sees events written by any other the
 * moment they are committed, with no message bus. One indexed query per open stream every
 * `pollMs`; no trigger or NOTIFY on the hot path (a NOTIFY serializes every committing
 * transaction of the database on one lock).
 *
 * Why the cursor is the writing transaction's id (`tx`, migration 010) and not the event id:
 * event ids are ordered by creation time, but a transaction that made an event earlier can commit
 * later, and a cursor on ids would have moved past it. A stream only reads events whose
 * transaction id is below the oldest transaction still running (`pg_snapshot_xmin`): all of
 * those, and everything before them in (tx, id) order, are committed, so no event can appear
 * behind the cursor afterwards. The price is that an event waits for the transactions that began
 * before its own to end (milliseconds, in a gateway whose transactions never wait on a PSP).
 */
import type { PassThrough } from 'node:stream';
import type { Db } from '../../db/db.js';
import { AppError, invalidParam } from '../../http/errors.js';

/** A place in the stream: after the event `id` of transaction `tx` ('' = before all of `tx`'s). */
export interface StreamPosition {
  tx: string;
  id: string;
}

export interface EventStreamOptions {
  /** How often an open stream looks for new events. */
  pollMs: number;
  /** The longest a stream stays silent before a comment line is sent (proxies close idle connections). */
  heartbeatMs: number;
  /** Events read per query. Default 100. */
  batch?: number;
}

export interface OpenStream {
  merchantId: string;
  testMode: boolean;
  /** Only these types are sent (all when undefined). */
  types?: ReadonlySet<string>;
  from: StreamPosition;
  out: PassThrough;
  /** Closes the client's connection (at shutdown, once the stream has ended). */
  closeConnection?: () => void;
  log: { warn(obj: object, msg: string): void };
}

/** How long a disconnected EventSource waits before reconnecting (its `retry:` field). */
export const RECONNECT_MS = 1000;
const EVENT_ID_RE = /^evt_[0-9A-Za-z]{1,64}$/;

interface Row {
  id: string;
  tx: string;
  type: string;
  body: string;
}

export class EventStreamService {
  private readonly streams = new Set<() => void>();
  private readonly batch: number;

  constructor(
    private readonly db: Db,
    private readonly opts: EventStreamOptions,
  ) {
    this.batch = opts.batch ?? 100;
  }

  /** Streams open in this process. */
  get openCount(): number {
    return this.streams.size;
  }

  /**
   * Where a stream starts. With `lastEventId` (an event of this merchant and mode): right after it.
   * Without: at the oldest transaction still running, so every event not yet visible when the
   * stream opened is sent (and a few committed just before may be too).
   */
  async startPosition(merchantId: string, testMode: boolean, lastEventId: string | undefined): Promise<StreamPosition> {
    if (lastEventId === undefined) {
      const r = await this.db.query<{ xmin: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
      return { tx: r.rows[0].xmin, id: '' };
    }
    if (!EVENT_ID_RE.test(lastEventId)) throw invalidParam('Last-Event-ID', 'Invalid Last-Event-ID: must be an event id (evt_…).');
    const r = await this.db.query<{ tx: string | null }>(
      'SELECT tx::text AS tx FROM events WHERE id = $1 AND merchant_id = $2 AND test_mode = $3',
      [lastEventId, merchantId, testMode],
    );
    if (r.rows.length === 0) {
      throw new AppError('event_not_found', `No such event: ${lastEventId}.`, { param: 'Last-Event-ID' });
    }
    // an event written before the stream existed (no position): everything with a position follows it
    return r.rows[0].tx === null ? { tx: '0', id: '' } : { tx: r.rows[0].tx, id: lastEventId };
  }

  /**
   * Writes the merchant's events to `out` as they are committed, until `out` closes (the client
   * went away) or `closeAll` runs. A database error ends the stream: the client reconnects with
   * the last id it got and loses nothing.
   */
  open(s: OpenStream): void {
    const { out } = s;
    let cursor = s.from;
    let closed = false;
    let wake: (() => void) | undefined;
    const stop = () => {
      if (closed) return;
      closed = true;
      this.streams.delete(shutdown);
      wake?.();
    };
    const end = () => {
      stop();
      if (!out.destroyed) out.end();
    };
    const shutdown = () => {
      end();
      s.closeConnection?.();
    };
    this.streams.add(shutdown);
    out.on('close', stop);
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          wake = undefined;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
      });
    const drained = () => new Promise<void>((resolve) => {
      const done = () => {
        out.off('drain', done);
        out.off('close', done);
        resolve();
      };
      out.on('drain', done);
      out.on('close', done);
    });

    out.write(`retry: ${RECONNECT_MS}\n: ${s.testMode ? 'test' : 'live'}-mode events of ${s.merchantId}\n\n`);
    let lastWrite = Date.now();
    const run = async () => {
      while (!closed) {
        let rows: Row[];
        try {
          rows = (await this.db.query<Row>(
            `SELECT id, tx::text AS tx, type, body FROM events
              WHERE merchant_id = $1 AND test_mode = $2 AND tx IS NOT NULL
                AND tx >= $3::xid8 AND (tx, id) > ($3::xid8, $4)
                AND tx < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY tx, id LIMIT ${this.batch}`,
            [s.merchantId, s.testMode, cursor.tx, cursor.id],
          )).rows;
        } catch (err) {
          if (!closed) s.log.warn({ err: (err as Error).message }, 'event stream: reading events failed; ending the stream (the client resumes)');
          end();
          return;
        }
        if (closed) return;
        let flowing = true;
        for (const row of rows) {
          cursor = { tx: row.tx, id: row.id };
          if (s.types && !s.types.has(row.type)) continue;
          flowing = out.write(`id: ${row.id}\nevent: ${row.type}\ndata: ${row.body}\n\n`);
          lastWrite = Date.now();
        }
        if (!flowing) await drained();
        if (rows.length === this.batch) continue;
        if (Date.now() - lastWrite >= this.opts.heartbeatMs) {
          out.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        await sleep(Math.min(this.opts.pollMs, Math.max(1, this.opts.heartbeatMs - (Date.now() - lastWrite))));
      }
    };
    void run();
  }

  /** Ends every open stream and closes its connection (shutdown: open streams must not hold the server open). */
  closeAll(): number {
    const all = [...this.streams];
    for (const shutdown of all) shutdown();
    return all.length;
  }
}
