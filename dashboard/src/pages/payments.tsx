import { useState } from 'preact/hooks';
import { api, ApiError, query, type List } from '../api.js';
import { money, toMinor, when } from '../format.js';
import { useLive } from '../hooks.js';
import { ErrorText, Loading, Status, Table } from '../ui.js';

const STATUSES = ['', 'requires_capture', 'succeeded', 'partially_refunded', 'refunded', 'canceled', 'failed', 'processing'];

interface Filters {
  status: string;
  currency: string;
  from: string;
  to: string;
  min: string;
  max: string;
  order_id: string;
  customer_id: string;
}
const EMPTY: Filters = { status: '', currency: '', from: '', to: '', min: '', max: '', order_id: '', customer_id: '' };

export function Payments() {
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  // the cursors of the pages before this one, to go back
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const [search, setSearch] = useState('');
  const [searchError, setSearchError] = useState<ApiError>();

  const params = () => {
    const cur = filters.currency.trim().toUpperCase();
    return query({
      limit: 20,
      cursor,
      status: filters.status,
      currency: cur,
      order_id: filters.order_id.trim(),
      customer_id: filters.customer_id.trim(),
      'created[gte]': filters.from ? new Date(`${filters.from}T00:00:00`).toISOString() : undefined,
      'created[lte]': filters.to ? new Date(`${filters.to}T23:59:59.999`).toISOString() : undefined,
      'amount[gte]': filters.min ? toMinor(filters.min, cur || 'USD') : undefined,
      'amount[lte]': filters.max ? toMinor(filters.max, cur || 'USD') : undefined,
    });
  };
  const { data, error } = useLive(() => api<List<any>>('GET', `/v1/payments${params()}`), [JSON.stringify(filters), cursor]);

  const set = (k: keyof Filters) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  const apply = (e: Event) => {
    e.preventDefault();
    setCursors([]);
    setFilters(draft);
  };

  /** Any id: a payment, a refund or an event leads to its payment; anything else is tried as an order, then a customer id. */
  const find = async (e: Event) => {
    e.preventDefault();
    setSearchError(undefined);
    const id = search.trim();
    if (!id) return;
    try {
      if (id.startsWith('pay_')) {
        await api('GET', `/v1/payments/${encodeURIComponent(id)}`);
        location.hash = `#/payments/${id}`;
      } else if (id.startsWith('re_')) {
        const r = await api('GET', `/v1/refunds/${encodeURIComponent(id)}`);
        location.hash = `#/payments/${r.payment_id}`;
      } else if (id.startsWith('evt_')) {
        const ev = await api('GET', `/v1/events/${encodeURIComponent(id)}`);
        const obj = ev.data.object;
        location.hash = `#/payments/${obj.object === 'refund' ? obj.payment_id : obj.id}`;
      } else {
        for (const field of ['order_id', 'customer_id'] as const) {
          const r = await api<List<any>>('GET', `/v1/payments${query({ [field]: id, limit: 1 })}`);
          if (r.data.length) {
            setCursors([]);
            setDraft({ ...EMPTY, [field]: id });
            setFilters({ ...EMPTY, [field]: id });
            return;
          }
        }
        setSearchError(new ApiError(404, { error: { type: 'invalid_request_error', code: 'not_found', message: `Nothing found for ${id}.` } }));
      }
    } catch (err) {
      setSearchError(err as ApiError);
    }
  };

  return (
    <>
      <h1 tabIndex={-1}>Payments</h1>
      <form class="search" onSubmit={find} role="search">
        <label for="search">Search by any id</label>
        <input id="search" placeholder="pay_…, re_…, evt_…, order or customer id" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <button type="submit">Find</button>
      </form>
      <ErrorText error={searchError} />
      <form class="filters" onSubmit={apply} aria-label="Filters">
        <label>Status
          <select value={draft.status} onChange={set('status')}>
            {STATUSES.map((s) => <option value={s}>{s ? s.replace(/_/g, ' ') : 'any'}</option>)}
          </select>
        </label>
        <label>Currency<input value={draft.currency} onInput={set('currency')} maxLength={3} size={4} placeholder="USD" /></label>
        <label>From<input type="date" value={draft.from} onInput={set('from')} /></label>
        <label>To<input type="date" value={draft.to} onInput={set('to')} /></label>
        <label>Min amount<input inputMode="decimal" value={draft.min} onInput={set('min')} size={8} /></label>
        <label>Max amount<input inputMode="decimal" value={draft.max} onInput={set('max')} size={8} /></label>
        <label>Order id<input value={draft.order_id} onInput={set('order_id')} /></label>
        <label>Customer id<input value={draft.customer_id} onInput={set('customer_id')} /></label>
        <div class="filter-actions">
          <button type="submit">Apply filters</button>
          <button type="button" class="secondary" onClick={() => { setDraft(EMPTY); setFilters(EMPTY); setCursors([]); }}>Clear</button>
        </div>
      </form>
      <ErrorText error={error} />
      {!data ? <Loading /> : (
        <>
          <Table label="Payments" head={['Amount', 'Status', 'Payment', 'Order', 'Customer', 'Created']}>
            {data.data.map((p) => (
              <tr>
                <td class="num">{money(p.amount, p.currency)}</td>
                <td><Status value={p.status} /></td>
                <td><a href={`#/payments/${p.id}`}>{p.id}</a></td>
                <td>{p.order_id ?? '—'}</td>
                <td>{p.customer_id ?? '—'}</td>
                <td>{when(p.created_at)}</td>
              </tr>
            ))}
          </Table>
          {data.data.length === 0 ? <p class="muted">No payments match.</p> : null}
          <div class="pager">
            <button type="button" class="secondary" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</button>
            <button type="button" class="secondary" disabled={!data.has_more} onClick={() => data.next_cursor && setCursors([...cursors, data.next_cursor])}>Next page</button>
          </div>
        </>
      )}
    </>
  );
}
