/**
 * Drops `events_object`: no query reads events by `object_id` (the API lists events by merchant,
 * mode, time and type), and every refund paid for it with three random-key index insertions.
 */
export const sql = /* sql */ `
DROP INDEX IF EXISTS events_object;
`;
