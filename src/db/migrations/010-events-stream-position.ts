/**
 * The event stream's position (`GET /v1/events/stream`): the id of the transaction that wrote each
 * event. An event whose transaction id is below the oldest transaction still running is committed,
 * and so is every event of a lower transaction id, so a reader that follows (tx, id) and stops at
 * that horizon never skips an event committed late, whichever process wrote it.
 *
 * Expand only: the column is added without a default first (no table rewrite), then given its
 * default for new rows. Events written before this migration have no position and are not replayed
 * by the stream. The index is built in the migration's transaction (writes to events wait for it).
 */
export const sql = /* sql */ `
ALTER TABLE events ADD COLUMN IF NOT EXISTS tx xid8;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS events_stream ON events (merchant_id, test_mode, tx) WHERE tx IS NOT NULL;
`;
