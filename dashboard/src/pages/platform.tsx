import { useState } from 'preact/hooks';
import { api, type List } from '../api.js';
import { when } from '../format.js';
import { useAction, useLive } from '../hooks.js';
import { ErrorText, Loading, Section, Table } from '../ui.js';

interface Flip {
  enabled: boolean;
  merchant?: { id: string; name: string };
}

/** The platform admin's view: merchants, and the refunds kill switch with what it affects shown first. */
export function Platform() {
  const { data, error, reload } = useLive(async () => {
    const [merchants, feature] = await Promise.all([api<List<any>>('GET', '/v1/admin/merchants?limit=100'), api('GET', '/v1/admin/features/refunds')]);
    return { merchants: merchants.data, more: merchants.has_more, feature };
  }, []);
  const [pending, setPending] = useState<Flip>();
  const flip = useAction('kill-switch', (_key, f: Flip) =>
    api('PUT', '/v1/admin/features/refunds', { enabled: f.enabled, ...(f.merchant ? { merchant_id: f.merchant.id } : {}) }));
  if (!data) return <><h1 tabIndex={-1}>Platform</h1><ErrorText error={error} /><Loading /></>;
  const platformOn = data.feature.platform as boolean;
  const affected = pending ? (pending.merchant ? [pending.merchant] : data.merchants.filter((m) => m.refunds_enabled)) : [];
  return (
    <>
      <h1 tabIndex={-1}>Platform</h1>
      <ErrorText error={error ?? flip.error} />
      <Section title="Refunds kill switch">
        <p>
          Refunds are <strong data-testid="platform-refunds">{platformOn ? 'on' : 'off'}</strong> platform-wide.
          {' '}Switching takes effect on every gateway process within a second; refunds already pending still finish.
        </p>
        {!pending ? (
          <button type="button" class={platformOn ? 'danger' : ''} onClick={() => setPending({ enabled: !platformOn })}>
            {platformOn ? 'Turn refunds off for every merchant…' : 'Turn refunds back on…'}
          </button>
        ) : null}
      </Section>
      {pending ? (
        <Section title="Confirm">
          <div role="alertdialog" aria-labelledby="confirm-text" class="confirm">
            <p id="confirm-text">
              {pending.enabled ? 'Turn refunds on' : 'Turn refunds off'} {pending.merchant ? `for ${pending.merchant.name}` : 'platform-wide'}.
              {' '}{pending.enabled
                ? (pending.merchant && !platformOn ? 'Refunds stay off for it while the platform switch is off.' : 'New refund requests will be accepted again.')
                : `New refund requests from ${pending.merchant ? 'this merchant' : `${affected.length} merchant${affected.length === 1 ? '' : 's'}${data.more ? ' (and more not listed)' : ''}`} will be refused with 403 feature_disabled:`}
            </p>
            {!pending.enabled ? <ul data-testid="affected">{affected.map((m) => <li>{m.name} <span class="muted">{m.id}</span></li>)}</ul> : null}
            <div class="row">
              <button type="button" class={pending.enabled ? '' : 'danger'} disabled={flip.busy} onClick={async () => { if (await flip.go(pending)) { setPending(undefined); reload(); } }}>Confirm</button>
              <button type="button" class="secondary" onClick={() => setPending(undefined)}>Cancel</button>
            </div>
          </div>
        </Section>
      ) : null}
      <Section title="Merchants">
        <Table label="Merchants" head={['Name', 'Id', 'Created', 'Refunds', '']}>
          {data.merchants.map((m) => (
            <tr>
              <td>{m.name}</td>
              <td><code>{m.id}</code></td>
              <td>{when(m.created_at)}</td>
              <td>{m.refunds_effective ? 'on' : m.refunds_enabled ? 'off (platform)' : 'off'}</td>
              <td>
                <button type="button" class={`small ${m.refunds_enabled ? 'danger' : 'secondary'}`} onClick={() => setPending({ enabled: !m.refunds_enabled, merchant: { id: m.id, name: m.name } })}>
                  {m.refunds_enabled ? `Turn refunds off for ${m.name}…` : `Turn refunds on for ${m.name}…`}
                </button>
              </td>
            </tr>
          ))}
        </Table>
        {data.more ? <p class="muted">Showing the newest 100 merchants.</p> : null}
      </Section>
    </>
  );
}
