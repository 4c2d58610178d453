import { useState } from 'preact/hooks';
import { api, query, type List } from '../api.js';
import { money, when } from '../format.js';
import { useLive } from '../hooks.js';
import { ErrorText, Loading, Status, Table } from '../ui.js';

/** Refunds, pending ones first: they are the ones someone may have to chase. */
export function Refunds() {
  const [status, setStatus] = useState('');
  const { data, error } = useLive(async () => {
    if (status) return (await api<List<any>>('GET', `/v1/refunds${query({ status, limit: 50 })}`)).data;
    const [pending, all] = await Promise.all([
      api<List<any>>('GET', '/v1/refunds?status=pending&limit=50'),
      api<List<any>>('GET', '/v1/refunds?limit=50'),
    ]);
    return [...pending.data, ...all.data.filter((r) => r.status !== 'pending')];
  }, [status]);
  return (
    <>
      <h1 tabIndex={-1}>Refunds</h1>
      <div class="filters">
        <label>Status
          <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
            <option value="">any (pending first)</option>
            <option value="pending">pending</option>
            <option value="succeeded">succeeded</option>
            <option value="failed">failed</option>
          </select>
        </label>
      </div>
      <ErrorText error={error} />
      {!data ? <Loading /> : (
        <Table label="Refunds" head={['Amount', 'Status', 'Refund', 'Payment', 'Reason', 'PSP reference', 'Created']}>
          {data.map((r) => (
            <tr>
              <td class="num">{money(r.amount, r.currency)}</td>
              <td><Status value={r.status} />{r.failure_message ? <div class="muted small">{r.failure_message}</div> : null}</td>
              <td>{r.id}</td>
              <td><a href={`#/payments/${r.payment_id}`}>{r.payment_id}</a></td>
              <td>{r.reason ?? '—'}</td>
              <td>{r.connector_ref ?? '—'}</td>
              <td>{when(r.created_at)}</td>
            </tr>
          ))}
        </Table>
      )}
      {data && data.length === 0 ? <p class="muted">No refunds.</p> : null}
    </>
  );
}
