import { useState } from 'preact/hooks';
import { api, ApiError, type List } from '../api.js';
import { money, toMinor, when } from '../format.js';
import { useAction, useLive } from '../hooks.js';
import { can, useSession } from '../session.js';
import { ErrorText, Loading, Section, Status } from '../ui.js';

interface TimelineItem {
  at: string;
  kind: 'transaction' | 'refund' | 'ledger' | 'event';
  title: string;
  detail?: preact.ComponentChildren;
  key: string;
}

const REASONS = ['customer_request', 'duplicate', 'fraudulent', 'other'];

export function PaymentDetail({ id }: { id: string }) {
  const { session } = useSession();
  const path = `/v1/payments/${encodeURIComponent(id)}`;
  const { data, error, reload } = useLive(async () => {
    const payment = await api('GET', path);
    const [refunds, ledger] = await Promise.all([
      can(session, 'refunds:read') ? api<List<any>>('GET', `${path}/refunds?limit=100`) : undefined,
      can(session, 'ledger:read') ? api<List<any>>('GET', `/v1/ledger/transactions?payment_id=${encodeURIComponent(id)}&limit=100`) : undefined,
    ]);
    let events: any[] = [];
    if (can(session, 'events:read')) {
      const objects = [id, ...(refunds?.data.map((r) => r.id) ?? [])];
      const lists = await Promise.all(objects.map((o) => api<List<any>>('GET', `/v1/events?object_id=${encodeURIComponent(o)}&limit=100`)));
      // each with its delivery attempts
      events = await Promise.all(lists.flatMap((l) => l.data).map((e) => api('GET', `/v1/events/${e.id}`)));
    }
    return { payment, refunds: refunds?.data, ledger: ledger?.data, events };
  }, [id]);

  if (error && !data) return <><h1 tabIndex={-1}>Payment {id}</h1><ErrorText error={error} /></>;
  if (!data) return <><h1 tabIndex={-1}>Payment {id}</h1><Loading /></>;
  const p = data.payment;
  return (
    <>
      <p><a href="#/payments">← Payments</a></p>
      <h1 tabIndex={-1}>{money(p.amount, p.currency)} <Status value={p.status} /></h1>
      <dl class="facts">
        <div><dt>Payment</dt><dd>{p.id}</dd></div>
        <div><dt>Captured</dt><dd>{money(p.amount_captured, p.currency)}</dd></div>
        <div><dt>Refunded</dt><dd data-testid="amount-refunded">{money(p.amount_refunded, p.currency)}</dd></div>
        <div><dt>Refundable</dt><dd>{money(p.amount_refundable, p.currency)}</dd></div>
        <div><dt>Connector</dt><dd>{p.connector} · {p.connector_account_short_id}</dd></div>
        <div><dt>PSP reference</dt><dd>{p.connector_ref ?? '—'}</dd></div>
        <div><dt>Order</dt><dd>{p.order_id ?? '—'}</dd></div>
        <div><dt>Customer</dt><dd>{p.customer_id ?? '—'}</dd></div>
        <div><dt>Created</dt><dd>{when(p.created_at)}</dd></div>
      </dl>
      <ErrorText error={error} />
      <div class="columns">
        <div>
          {can(session, 'payments:write') && p.status === 'requires_capture' ? <CaptureCancel payment={p} onDone={reload} /> : null}
          {can(session, 'refunds:write') && ['succeeded', 'partially_refunded'].includes(p.status) ? <RefundForm payment={p} onDone={reload} /> : null}
        </div>
        <Timeline items={timeline(data)} canRedeliver={can(session, 'events:write')} onChange={reload} />
      </div>
    </>
  );
}

function timeline(d: { payment: any; refunds?: any[]; ledger?: any[]; events: any[] }): TimelineItem[] {
  const cur = d.payment.currency;
  const items: TimelineItem[] = [];
  for (const t of d.payment.transactions) {
    items.push({
      at: t.created_at, kind: 'transaction', key: t.id,
      title: `${t.type[0].toUpperCase()}${t.type.slice(1)} ${money(t.amount, cur)} — ${t.status}`,
      detail: <span class="muted">PSP reference {t.connector_ref ?? '—'}{t.refund_id ? ` · ${t.refund_id}` : ''}</span>,
    });
  }
  for (const r of d.refunds ?? []) {
    items.push({
      at: r.created_at, kind: 'refund', key: r.id,
      title: `Refund ${r.id} ${money(r.amount, cur)} requested`,
      detail: <span>reason {r.reason ?? '—'} · source {r.source}</span>,
    });
    if (r.status !== 'pending' || r.updated_at !== r.created_at) {
      items.push({
        at: r.updated_at, kind: 'refund', key: `${r.id}-status`,
        title: `Refund ${r.id} is ${r.status}`,
        detail: <span>PSP reference {r.connector_ref ?? '—'}{r.failure_message ? ` · ${r.failure_code}: ${r.failure_message}` : ''}</span>,
      });
    }
  }
  for (const l of d.ledger ?? []) {
    items.push({
      at: l.created_at, kind: 'ledger', key: l.id,
      title: `Ledger: ${l.type.replace(/_/g, ' ')}`,
      detail: (
        <ul class="entries">
          {l.entries.map((e: any) => <li>{e.direction} {e.account} {money(e.amount, e.currency)}</li>)}
        </ul>
      ),
    });
  }
  for (const e of d.events) {
    items.push({ at: e.created_at, kind: 'event', key: e.id, title: `Event ${e.type}`, detail: e });
  }
  // newest first; things at the same instant keep their causal order, reversed (a capture above its authorization)
  return items.map((it, i) => ({ it, i })).sort((a, b) => (a.it.at < b.it.at ? 1 : a.it.at > b.it.at ? -1 : b.i - a.i)).map(({ it }) => it);
}

function Timeline({ items, canRedeliver, onChange }: { items: TimelineItem[]; canRedeliver: boolean; onChange: () => void }) {
  return (
    <Section title="Timeline">
      <ol class="timeline" data-testid="timeline">
        {items.map((it) => (
          <li class={`tl-${it.kind}`}>
            <div class="tl-time">{when(it.at)}</div>
            <div class="tl-title">{it.title}</div>
            {it.kind === 'event' ? <EventDeliveries event={it.detail as any} canRedeliver={canRedeliver} onChange={onChange} /> : it.detail}
          </li>
        ))}
      </ol>
    </Section>
  );
}

/** An event's deliveries (one per endpoint) and every attempt, with a redeliver button. */
export function EventDeliveries({ event, canRedeliver, onChange }: { event: any; canRedeliver: boolean; onChange: () => void }) {
  const redeliver = useAction('redeliver', (key) => api('POST', `/v1/events/${event.id}/redeliver`, undefined, { idempotencyKey: key }));
  return (
    <div class="deliveries">
      <span class="muted">{event.id}</span>
      {event.deliveries.length === 0 ? <span class="muted"> · no webhook endpoint subscribed</span> : null}
      <ul>
        {event.deliveries.map((d: any) => (
          <li data-testid="delivery">
            delivery to {d.endpoint_id}: <Status value={d.status} /> after {d.attempts} attempt{d.attempts === 1 ? '' : 's'}
            {d.next_attempt_at ? <span class="muted"> · next {when(d.next_attempt_at)}</span> : null}
          </li>
        ))}
      </ul>
      {event.delivery_attempts.length ? (
        <details>
          <summary>{event.delivery_attempts.length} attempt{event.delivery_attempts.length === 1 ? '' : 's'}</summary>
          <ul>
            {event.delivery_attempts.map((a: any) => (
              <li>#{a.attempt} {when(a.attempted_at)} → {a.http_status ?? a.error} ({a.duration_ms} ms)</li>
            ))}
          </ul>
        </details>
      ) : null}
      {canRedeliver ? (
        <button type="button" class="small secondary" disabled={redeliver.busy} onClick={async () => { if (await redeliver.go()) onChange(); }}>
          Redeliver {event.type}
        </button>
      ) : null}
      <ErrorText error={redeliver.error} />
    </div>
  );
}

function CaptureCancel({ payment, onDone }: { payment: any; onDone: () => void }) {
  const [amount, setAmount] = useState('');
  const capture = useAction('capture', (key) => {
    const minor = amount.trim() ? toMinor(amount, payment.currency) : undefined;
    if (amount.trim() && minor === undefined) throw new ApiError(400, { error: { type: 'invalid_request_error', code: 'invalid_param', message: 'Enter a positive amount.' } });
    return api('POST', `/v1/payments/${payment.id}/capture`, minor ? { amount: minor } : undefined, { idempotencyKey: key });
  });
  const cancel = useAction('cancel', (key) => api('POST', `/v1/payments/${payment.id}/cancel`, undefined, { idempotencyKey: key }));
  return (
    <Section title="Capture or cancel">
      <form onSubmit={async (e) => { e.preventDefault(); if (await capture.go()) onDone(); }}>
        <label for="capture-amount">Amount to capture ({payment.currency}), empty for all {money(payment.amount_capturable, payment.currency)}</label>
        <input id="capture-amount" inputMode="decimal" value={amount} onInput={(e) => setAmount((e.target as HTMLInputElement).value)} />
        <div class="row">
          <button type="submit" disabled={capture.busy}>Capture</button>
          <button type="button" class="danger" disabled={cancel.busy} onClick={async () => { if (await cancel.go()) onDone(); }}>Cancel payment</button>
        </div>
      </form>
      <ErrorText error={capture.error ?? cancel.error} />
    </Section>
  );
}

function RefundForm({ payment, onDone }: { payment: any; onDone: () => void }) {
  const [full, setFull] = useState(true);
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('customer_request');
  const [otherReason, setOtherReason] = useState('');
  const [quantities, setQuantities] = useState<Record<string, string>>({});
  const [done, setDone] = useState<any>();
  const refund = useAction('refund', async (key) => {
    const body: Record<string, unknown> = { reason: reason === 'other' && otherReason.trim() ? otherReason.trim() : reason };
    if (!full) {
      const minor = toMinor(amount, payment.currency);
      if (minor === undefined) throw new ApiError(400, { error: { type: 'invalid_request_error', code: 'invalid_param', message: `Enter an amount in ${payment.currency}, e.g. 12.50.` } });
      body.amount = minor;
    }
    const lines = Object.entries(quantities).filter(([, q]) => Number(q) > 0).map(([id, q]) => ({ id, quantity: Number(q) }));
    if (lines.length) body.line_items = lines;
    return api('POST', `/v1/payments/${payment.id}/refunds`, body, { idempotencyKey: key });
  });
  const blocked = refund.error?.status === 403 ? refund.error : undefined;
  const remainingLines = payment.line_items.filter((li: any) => li.quantity > li.quantity_refunded);
  return (
    <Section title="Refund">
      <form onSubmit={async (e) => {
        e.preventDefault();
        const r = await refund.go();
        if (r) { setDone(r); setAmount(''); setQuantities({}); onDone(); }
      }}>
        <fieldset>
          <legend>Amount (refundable: {money(payment.amount_refundable, payment.currency)})</legend>
          <label class="inline"><input type="radio" name="how" checked={full} onChange={() => setFull(true)} /> Full remaining amount</label>
          <label class="inline"><input type="radio" name="how" checked={!full} onChange={() => setFull(false)} /> Partial</label>
          {!full ? (
            <>
              <label for="refund-amount">Amount ({payment.currency})</label>
              <input id="refund-amount" inputMode="decimal" required value={amount} onInput={(e) => setAmount((e.target as HTMLInputElement).value)} />
            </>
          ) : null}
        </fieldset>
        <label for="refund-reason">Reason</label>
        <select id="refund-reason" value={reason} onChange={(e) => setReason((e.target as HTMLSelectElement).value)}>
          {REASONS.map((r) => <option value={r}>{r.replace(/_/g, ' ')}</option>)}
        </select>
        {reason === 'other' ? (
          <>
            <label for="refund-reason-text">Reason, in your words (optional)</label>
            <input id="refund-reason-text" maxLength={500} value={otherReason} onInput={(e) => setOtherReason((e.target as HTMLInputElement).value)} />
          </>
        ) : null}
        {remainingLines.length ? (
          <fieldset>
            <legend>Line items (quantity to refund)</legend>
            {remainingLines.map((li: any) => {
              const left = li.quantity - li.quantity_refunded;
              return (
                <label class="line">
                  {li.name} — {money(li.unit_amount, payment.currency)} each, {left} of {li.quantity} left
                  <input type="number" min={0} max={left} value={quantities[li.id] ?? ''} onInput={(e) => setQuantities({ ...quantities, [li.id]: (e.target as HTMLInputElement).value })} />
                </label>
              );
            })}
          </fieldset>
        ) : null}
        {blocked ? (
          <p class="error blocked" role="alert" data-testid="refund-blocked">{blocked.message}</p>
        ) : (
          <button type="submit" disabled={refund.busy}>{refund.busy ? 'Refunding…' : 'Refund'}</button>
        )}
      </form>
      {blocked ? <button type="button" class="secondary small" onClick={refund.clearError}>Try again</button> : <ErrorText error={refund.error} />}
      {done ? <p role="status" class="ok">Refund {done.id} for {money(done.amount, done.currency)}: {done.status}.</p> : null}
    </Section>
  );
}
