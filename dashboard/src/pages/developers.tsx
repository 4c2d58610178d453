import { useState } from 'preact/hooks';
import { api, type List } from '../api.js';
import { when } from '../format.js';
import { useAction, useLive } from '../hooks.js';
import { can, PERMISSIONS, useSession } from '../session.js';
import { ErrorText, Loading, Section, SecretOnce, Status, Table } from '../ui.js';
import { EventDeliveries } from './payment-detail.js';

export function Developers() {
  const { session } = useSession();
  return (
    <>
      <h1 tabIndex={-1}>Developers</h1>
      {can(session, 'webhook_endpoints:read') ? <WebhookEndpoints /> : null}
      {can(session, 'events:read') ? <Events /> : null}
      {can(session, 'api_keys:read') ? <ApiKeys /> : null}
    </>
  );
}

function WebhookEndpoints() {
  const { session } = useSession();
  const { data, error, reload } = useLive(() => api<List<any>>('GET', '/v1/webhook_endpoints?limit=100'), []);
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState<string>();
  const create = useAction('webhook-endpoint', (key) => api('POST', '/v1/webhook_endpoints', { url: url.trim(), enabled_events: ['*'] }, { idempotencyKey: key }));
  const remove = useAction('webhook-endpoint-delete', (_key, id: string) => api('DELETE', `/v1/webhook_endpoints/${id}`));
  const writable = can(session, 'webhook_endpoints:write');
  return (
    <Section title="Webhook endpoints">
      {secret ? <SecretOnce label="Signing secret" secret={secret} onDone={() => setSecret(undefined)} /> : null}
      {writable ? (
        <form class="row" onSubmit={async (e) => {
          e.preventDefault();
          const r = await create.go();
          if (r) { setSecret(r.secret); setUrl(''); reload(); }
        }}>
          <label for="endpoint-url">Endpoint URL (receives every event type)</label>
          <input id="endpoint-url" type="url" required placeholder="https://example.com/settle/webhooks" value={url} onInput={(e) => setUrl((e.target as HTMLInputElement).value)} />
          <button type="submit" disabled={create.busy}>Add endpoint</button>
        </form>
      ) : null}
      <ErrorText error={create.error ?? remove.error ?? error} />
      {!data ? <Loading /> : (
        <Table label="Webhook endpoints" head={['URL', 'Status', 'Events', 'Id', '']}>
          {data.data.map((w) => (
            <tr>
              <td>{w.url}</td>
              <td><Status value={w.status} /></td>
              <td>{w.enabled_events.join(', ')}</td>
              <td>{w.id}</td>
              <td>{writable ? <button type="button" class="danger small" onClick={async () => { if (confirm(`Disable ${w.url}? Deliveries still pending to it end as failed.`) && (await remove.go(w.id))) reload(); }}>Disable</button> : null}</td>
            </tr>
          ))}
        </Table>
      )}
    </Section>
  );
}

function Events() {
  const { session } = useSession();
  const [cursor, setCursor] = useState<string>();
  const { data, error, reload } = useLive(async () => {
    const list = await api<List<any>>('GET', `/v1/events?limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    return { ...list, data: await Promise.all(list.data.map((e) => api('GET', `/v1/events/${e.id}`))) };
  }, [cursor]);
  // a real payment in test mode, as `settle trigger` does: its payment.succeeded event goes to every endpoint
  const test = useAction('test-event', (key) =>
    api('POST', '/v1/payments', { amount: 100, currency: 'USD', payment_method: 'pm_card_visa', description: 'Test event sent from the console' }, { idempotencyKey: key }));
  const canTest = session.test_mode === true && can(session, 'payments:write');
  return (
    <Section title="Events" actions={canTest ? (
      <button type="button" class="secondary" disabled={test.busy} onClick={async () => { if (await test.go()) reload(); }} title="Creates a sandbox payment of 1.00 USD, whose payment.succeeded event is delivered to your endpoints">Send test event</button>
    ) : undefined}>
      <ErrorText error={test.error ?? error} />
      {!data ? <Loading /> : (
        <ol class="events">
          {data.data.map((e) => (
            <li data-testid="event">
              <div><strong>{e.type}</strong> <span class="muted">{when(e.created_at)}</span> · <a href={`#/payments/${e.data.object.object === 'refund' ? e.data.object.payment_id : e.data.object.id}`}>{e.data.object.id}</a></div>
              <EventDeliveries event={e} canRedeliver={can(session, 'events:write')} onChange={reload} />
            </li>
          ))}
        </ol>
      )}
      {data?.data.length === 0 ? <p class="muted">No events yet.</p> : null}
      <div class="pager">
        <button type="button" class="secondary" disabled={!cursor} onClick={() => setCursor(undefined)}>Newest</button>
        <button type="button" class="secondary" disabled={!data?.has_more} onClick={() => setCursor(data?.next_cursor ?? undefined)}>Older</button>
      </div>
    </Section>
  );
}

function ApiKeys() {
  const { session } = useSession();
  const { data, error, reload } = useLive(() => api<List<any>>('GET', '/v1/api_keys?limit=100'), []);
  const [name, setName] = useState('');
  const [granted, setGranted] = useState<string[]>(['payments:read', 'refunds:write']);
  const [secret, setSecret] = useState<string>();
  const create = useAction('api-key', (key) => api('POST', '/v1/api_keys', { name: name.trim(), permissions: granted }, { idempotencyKey: key }));
  const revoke = useAction('api-key-revoke', (_key, prefix: string) => api('DELETE', `/v1/api_keys/${prefix}`));
  const writable = can(session, 'api_keys:write');
  return (
    <Section title="API keys">
      {secret ? <SecretOnce label="Restricted key" secret={secret} onDone={() => setSecret(undefined)} /> : null}
      {writable ? (
        <form onSubmit={async (e) => {
          e.preventDefault();
          const r = await create.go();
          if (r) { setSecret(r.secret); setName(''); reload(); }
        }}>
          <label for="key-name">New restricted key: name</label>
          <input id="key-name" required maxLength={100} placeholder="Support: Dana" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          <fieldset class="perms">
            <legend>Permissions (write includes read)</legend>
            {PERMISSIONS.map((p) => (
              <label class="inline">
                <input type="checkbox" checked={granted.includes(p)} onChange={(e) => setGranted((e.target as HTMLInputElement).checked ? [...granted, p] : granted.filter((g) => g !== p))} /> {p}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={create.busy || granted.length === 0}>Create restricted key</button>
        </form>
      ) : null}
      <ErrorText error={create.error ?? revoke.error ?? error} />
      {!data ? <Loading /> : (
        <Table label="API keys" head={['Key', 'Type', 'Name', 'Permissions', 'Created', '']}>
          {data.data.map((k) => (
            <tr>
              <td><code>{k.key_prefix}…</code></td>
              <td>{k.type}{k.revoked ? <> · <Status value="revoked" /></> : null}</td>
              <td>{k.name ?? '—'}</td>
              <td class="small">{k.permissions ? k.permissions.join(', ') : 'all'}</td>
              <td>{when(k.created_at)}</td>
              <td>{writable && !k.revoked && k.key_prefix !== session.key_prefix ? (
                <button type="button" class="danger small" onClick={async () => { if (confirm(`Revoke ${k.key_prefix}…? Requests with it fail within a second.`) && (await revoke.go(k.key_prefix))) reload(); }}>Revoke</button>
              ) : null}</td>
            </tr>
          ))}
        </Table>
      )}
    </Section>
  );
}
