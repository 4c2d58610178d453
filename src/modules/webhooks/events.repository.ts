import type { Queryable } from '../../db/db.js';
import { newId } from '../../lib/ids.js';

export const EVENT_TYPES = [
  'payment.succeeded',
  'payment.failed',
  'payment.captured',
  'payment.canceled',
  'payment.partially_refunded',
  'payment.refunded',
  'payment.refund_failed',
  'refund.created',
  'refund.succeeded',
  'refund.failed',
  'reconciliation.difference_found',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface NewEvent {
  type: EventType;
  object: { id: string } & Record<string, unknown>;
}

export interface EventRow {
  id: string;
  merchant_id: string;
  test_mode: boolean;
  type: EventType;
  body: string;
  object_id: string | null;
  created_at: Date;
}

/** The outbox rows of some events: ids, types, bodies (serialized once, delivered byte for byte). */
export interface OutboxRows {
  ids: string[];
  types: string[];
  bodies: string[];
  objectIds: string[];
  createdAt: string;
}

export function outboxRows(testMode: boolean, events: NewEvent[]): OutboxRows {
  const createdAt = new Date().toISOString();
  const rows: OutboxRows = { ids: [], types: [], bodies: [], objectIds: [], createdAt };
  for (const e of events) {
    const id = newId('evt');
    rows.ids.push(id);
    rows.types.push(e.type);
    rows.objectIds.push(e.object.id);
    rows.bodies.push(JSON.stringify({ id, object: 'event', type: e.type, created_at: createdAt, test_mode: testMode, data: { object: e.object } }));
  }
  return rows;
}

/**
 * The outbox write as the tail of a statement: a CTE that inserts the events and the final
 * INSERT of one pending delivery per matching endpoint of the same merchant and mode. Its seven
 * parameters start at `$first` (see `outboxParams`). Other repositories put their own CTEs in
 * front, so that a change and the events describing it are written in one round trip.
 */
export function outboxSql(first: number, gate?: string): { cte: string; insert: string } {
  const $ = (i: number) => `$${first + i}`;
  return {
    cte: `ev AS (
       INSERT INTO events (id, merchant_id, test_mode, type, body, object_id, created_at)
       SELECT u.id, ${$(1)}, ${$(2)}, u.type, u.body, u.object_id, ${$(6)}::timestamptz
       FROM unnest(${$(0)}::text[], ${$(3)}::text[], ${$(4)}::text[], ${$(5)}::text[]) AS u(id, type, body, object_id)${gate ? ` CROSS JOIN ${gate}` : ''}
       RETURNING id, type)`,
    insert: `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at)
     SELECT 'whd_' || md5(ev.id || w.id), ev.id, w.id, 'pending', now()
     FROM ev JOIN webhook_endpoints w
       ON w.merchant_id = ${$(1)} AND w.test_mode = ${$(2)} AND w.deleted_at IS NULL AND w.status = 'enabled'
      AND ('*' = ANY (w.enabled_events) OR ev.type = ANY (w.enabled_events))`,
  };
}

export function outboxParams(merchantId: string, testMode: boolean, rows: OutboxRows): unknown[] {
  return [rows.ids, merchantId, testMode, rows.types, rows.bodies, rows.objectIds, rows.createdAt];
}

const EMIT = outboxSql(1);
const EMIT_SQL = `WITH ${EMIT.cte}\n     ${EMIT.insert}`;

/**
 * The outbox: events are written inside the caller's transaction, together with one pending
 * delivery per matching endpoint of the same merchant and mode, in a single statement.
 * The body is serialized once here and delivered byte for byte.
 */
export async function emitEvents(tx: Queryable, merchantId: string, testMode: boolean, events: NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const rows = outboxRows(testMode, events);
  await tx.query(EMIT_SQL, outboxParams(merchantId, testMode, rows));
  return rows.ids;
}
