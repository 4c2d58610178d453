import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, type List } from '../api.js';
import { money, when } from '../format.js';
import { useLive } from '../hooks.js';
import { can, useSession } from '../session.js';
import { ErrorText, Loading, Section, Status, Table } from '../ui.js';

/** A pending refund older than this is worth a look: PSPs normally settle them in minutes. */
const PENDING_TOO_LONG_MS = 15 * 60 * 1000;
const DAY = 86_400_000;

export function Overview() {
  const { session } = useSession();
  const { data, error } = useLive(async () => {
    const [payments, refunds, pending, failedEvents, differences] = await Promise.all([
      can(session, 'payments:read') ? api<List<any>>('GET', '/v1/payments?limit=100') : undefined,
      can(session, 'refunds:read') ? api<List<any>>('GET', '/v1/refunds?limit=100') : undefined,
      can(session, 'refunds:read') ? api<List<any>>('GET', '/v1/refunds?status=pending&limit=100') : undefined,
      can(session, 'events:read') ? api<List<any>>('GET', '/v1/events?delivery_status=failed&limit=20') : undefined,
      can(session, 'ledger:read') ? api<List<any>>('GET', '/v1/reconciliation/differences?status=open&limit=20') : undefined,
    ]);
    return { payments: payments?.data, refunds: refunds?.data, pending: pending?.data, failedEvents: failedEvents?.data, differences: differences?.data, more: { failed: failedEvents?.has_more, differences: differences?.has_more } };
  }, []);
  if (!data) return <><h1 tabIndex={-1}>Overview</h1><ErrorText error={error} /><Loading /></>;

  // one currency at a time: the one most payments are in
  const counts = new Map<string, number>();
  for (const p of data.payments ?? []) counts.set(p.currency, (counts.get(p.currency) ?? 0) + 1);
  const currency = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'USD';
  const payments = (data.payments ?? []).filter((p) => p.currency === currency);
  const refunds = (data.refunds ?? []).filter((r) => r.currency === currency && r.status === 'succeeded');
  const captured = payments.reduce((s, p) => s + p.amount_captured, 0);
  const refunded = payments.reduce((s, p) => s + p.amount_refunded, 0);
  const stale = (data.pending ?? []).filter((r) => Date.now() - Date.parse(r.created_at) > PENDING_TOO_LONG_MS);

  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <ErrorText error={error} />
      <div class="tiles">
        <Tile label={`Captured (${currency}, last ${payments.length} payments)`} value={money(captured, currency)} />
        <Tile label="Refund rate" value={captured ? `${((refunded / captured) * 100).toFixed(1)} %` : '—'} testid="refund-rate" />
        <Tile label={`Refunds pending over ${PENDING_TOO_LONG_MS / 60000} min`} value={data.pending ? String(stale.length) : '—'} warn={stale.length > 0} />
        <Tile label="Events with failed webhook deliveries" value={data.failedEvents ? `${data.failedEvents.length}${data.more.failed ? '+' : ''}` : '—'} warn={(data.failedEvents?.length ?? 0) > 0} />
        <Tile label="Open reconciliation differences with the PSPs" value={data.differences ? `${data.differences.length}${data.more.differences ? '+' : ''}` : '—'} warn={(data.differences?.length ?? 0) > 0} testid="differences" />
      </div>
      {data.payments ? (
        <Section title={`Volume per day (${currency})`}>
          <VolumeChart payments={payments} refunds={refunds} currency={currency} />
        </Section>
      ) : null}
      {stale.length ? (
        <Section title="Refunds pending longer than expected">
          <Table label="Refunds pending longer than expected" head={['Refund', 'Amount', 'Payment', 'Since']}>
            {stale.map((r) => (
              <tr><td>{r.id}</td><td class="num">{money(r.amount, r.currency)}</td><td><a href={`#/payments/${r.payment_id}`}>{r.payment_id}</a></td><td>{when(r.created_at)}</td></tr>
            ))}
          </Table>
        </Section>
      ) : null}
      {data.failedEvents?.length ? (
        <Section title="Webhook delivery failures">
          <Table label="Webhook delivery failures" head={['Event', 'Type', 'Created']}>
            {data.failedEvents.map((e) => <tr><td>{e.id}</td><td>{e.type}</td><td>{when(e.created_at)}</td></tr>)}
          </Table>
          <p><a href="#/developers">Redeliver from Developers</a></p>
        </Section>
      ) : null}
      {data.differences?.length ? (
        <Section title="Reconciliation differences">
          <Table label="Reconciliation differences" head={['Payment', 'Kind', 'What differs', 'Detected']}>
            {data.differences.map((d) => (
              <tr><td><a href={`#/payments/${d.payment_id}`}>{d.payment_id}</a></td><td>{d.kind.replace(/_/g, ' ')}</td><td>{d.message}</td><td>{when(d.detected_at)}</td></tr>
            ))}
          </Table>
        </Section>
      ) : null}
      {data.pending?.length ? (
        <Section title="All pending refunds">
          <ul>{data.pending.map((r) => <li><a href={`#/payments/${r.payment_id}`}>{r.id}</a> <Status value={r.status} /> {money(r.amount, r.currency)}</li>)}</ul>
        </Section>
      ) : null}
    </>
  );
}

function Tile({ label, value, warn, testid }: { label: string; value: string; warn?: boolean; testid?: string }) {
  return (
    <div class={`tile ${warn ? 'warn' : ''}`}>
      <div class="tile-value" data-testid={testid}>{value}</div>
      <div class="tile-label">{label}</div>
    </div>
  );
}

/** Captured and refunded amounts per day, as two bar-like series (uPlot). */
function VolumeChart({ payments, refunds, currency }: { payments: any[]; refunds: any[]; currency: string }) {
  const box = useRef<HTMLDivElement>(null);
  const digits = 10 ** (new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2);
  const byDay = (rows: any[], amount: (r: any) => number) => {
    const m = new Map<number, number>();
    for (const r of rows) {
      const day = Math.floor(Date.parse(r.created_at) / DAY) * DAY;
      m.set(day, (m.get(day) ?? 0) + amount(r));
    }
    return m;
  };
  const paid = byDay(payments, (p) => p.amount_captured);
  const back = byDay(refunds, (r) => r.amount);
  const last = Math.floor(Date.now() / DAY) * DAY;
  const first = Math.min(last - 13 * DAY, ...paid.keys());
  const days: number[] = [];
  for (let d = first; d <= last; d += DAY) days.push(d);
  const key = JSON.stringify([days.length, [...paid.values()], [...back.values()]]);
  useEffect(() => {
    if (!box.current) return;
    const width = Math.max(260, box.current.clientWidth);
    const bars = uPlot.paths.bars!({ size: [0.6, 40] });
    const plot = new uPlot(
      {
        width, height: 220,
        scales: { x: { time: true } },
        axes: [{}, { values: (_u, v) => v.map((x) => String(x)) }],
        series: [
          {},
          { label: `Captured (${currency})`, stroke: '#2f6f4f', fill: 'rgba(47,111,79,0.35)', paths: bars },
          { label: `Refunded (${currency})`, stroke: '#a4442b', fill: 'rgba(164,68,43,0.45)', paths: bars },
        ],
      },
      [days.map((d) => d / 1000), days.map((d) => (paid.get(d) ?? 0) / digits), days.map((d) => (back.get(d) ?? 0) / digits)],
      box.current,
    );
    // follows the width of its box: a phone turned sideways, a window resized
    const resize = new ResizeObserver(() => {
      if (box.current) plot.setSize({ width: Math.max(260, box.current.clientWidth), height: 220 });
    });
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [key]);
  return <div ref={box} class="chart" role="img" aria-label={`Captured and refunded ${currency} per day over the last ${days.length} days`} />;
}
