import { useState } from 'preact/hooks';
import { api, type List } from '../api.js';
import { when } from '../format.js';
import { useAction, useLive } from '../hooks.js';
import { can, useSession } from '../session.js';
import { ErrorText, Loading, Section, Status, Table } from '../ui.js';

interface Field {
  name: string;
  label: string;
  part: 'credentials' | 'settings';
  secret?: boolean;
  type?: 'number' | 'select';
  options?: string[];
  liveOnly?: boolean;
}

/** What each connector asks for (contract section 4); credentials are write-only. */
const CONNECTORS: Record<string, { testOnly?: boolean; fields: Field[] }> = {
  sandbox: { testOnly: true, fields: [{ name: 'pending_delay_ms', label: 'Pending refunds settle after (ms)', part: 'settings', type: 'number' }] },
  stripe: {
    fields: [
      { name: 'secret_key', label: 'Stripe secret key', part: 'credentials', secret: true },
      { name: 'webhook_secret', label: 'Stripe webhook signing secret', part: 'credentials', secret: true },
    ],
  },
  adyen: {
    fields: [
      { name: 'api_key', label: 'Adyen API key', part: 'credentials', secret: true },
      { name: 'merchant_account', label: 'Adyen merchant account', part: 'credentials' },
      { name: 'hmac_key', label: 'Adyen HMAC key', part: 'credentials', secret: true },
      { name: 'environment', label: 'Environment', part: 'settings', type: 'select', options: ['test', 'live'] },
      { name: 'live_url_prefix', label: 'Live URL prefix', part: 'settings', liveOnly: true },
    ],
  },
};

export function ConnectorAccounts() {
  const { session } = useSession();
  const { data, error, reload } = useLive(() => api<List<any>>('GET', '/v1/connector_accounts?limit=100'), []);
  const connectors = Object.entries(CONNECTORS).filter(([, c]) => session.test_mode || !c.testOnly).map(([n]) => n);
  const [connector, setConnector] = useState(connectors[0]);
  const [name, setName] = useState('');
  const [values, setValues] = useState<Record<string, string>>({});
  const create = useAction('connector-account', (key) => {
    const body: Record<string, any> = { connector, ...(name.trim() ? { name: name.trim() } : {}) };
    for (const f of CONNECTORS[connector].fields) {
      const v = values[f.name]?.trim();
      if (!v) continue;
      body[f.part] ??= {};
      body[f.part][f.name] = f.type === 'number' ? Number(v) : v;
    }
    return api('POST', '/v1/connector_accounts', body, { idempotencyKey: key });
  });
  const makeDefault = useAction('make-default', (key, id: string) => api('POST', `/v1/connector_accounts/${id}/make_default`, undefined, { idempotencyKey: key }));
  const deactivate = useAction('deactivate', (_key, id: string) => api('DELETE', `/v1/connector_accounts/${id}`));
  const writable = can(session, 'connector_accounts:write');
  return (
    <>
      <h1 tabIndex={-1}>Connector accounts</h1>
      {writable ? (
        <Section title="Add a connector account">
          <form onSubmit={async (e) => {
            e.preventDefault();
            if (await create.go()) { setValues({}); setName(''); reload(); }
          }}>
            <label for="connector">Connector</label>
            <select id="connector" value={connector} onChange={(e) => { setConnector((e.target as HTMLSelectElement).value); setValues({}); }}>
              {connectors.map((c) => <option value={c}>{c}</option>)}
            </select>
            <label for="account-name">Name (optional)</label>
            <input id="account-name" maxLength={200} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
            {CONNECTORS[connector].fields.filter((f) => !f.liveOnly || session.test_mode === false).map((f) => (
              <>
                <label for={`f-${f.name}`}>{f.label}{f.part === 'credentials' ? ' (write-only, encrypted)' : ''}</label>
                {f.type === 'select' ? (
                  <select id={`f-${f.name}`} value={values[f.name] ?? ''} onChange={(e) => setValues({ ...values, [f.name]: (e.target as HTMLSelectElement).value })}>
                    <option value="">default</option>
                    {f.options!.map((o) => <option value={o}>{o}</option>)}
                  </select>
                ) : (
                  <input id={`f-${f.name}`} type={f.secret ? 'password' : f.type === 'number' ? 'number' : 'text'} autocomplete="off" value={values[f.name] ?? ''} onInput={(e) => setValues({ ...values, [f.name]: (e.target as HTMLInputElement).value })} />
                )}
              </>
            ))}
            <button type="submit" disabled={create.busy}>Add account</button>
          </form>
          <ErrorText error={create.error} />
        </Section>
      ) : null}
      <ErrorText error={makeDefault.error ?? deactivate.error ?? error} />
      {!data ? <Loading /> : (
        <Table label="Connector accounts" head={['Name', 'Connector', 'Status', 'Default', 'Id', 'Created', '']}>
          {data.data.map((a) => (
            <tr>
              <td>{a.name ?? '—'}</td>
              <td>{a.connector}</td>
              <td><Status value={a.status} /></td>
              <td>{a.is_default ? 'default' : ''}</td>
              <td><code>{a.short_id}</code></td>
              <td>{when(a.created_at)}</td>
              <td class="row">
                {writable && a.status === 'active' && !a.is_default ? <button type="button" class="small secondary" onClick={async () => { if (await makeDefault.go(a.id)) reload(); }}>Make default</button> : null}
                {writable && a.status === 'active' ? <button type="button" class="small danger" onClick={async () => { if (confirm(`Deactivate ${a.short_id}? No new payment or refund will route through it.`) && (await deactivate.go(a.id))) reload(); }}>Deactivate</button> : null}
              </td>
            </tr>
          ))}
        </Table>
      )}
    </>
  );
}
