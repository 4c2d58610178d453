import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { SecretBox } from '../../src/lib/crypto.js';
import { newId } from '../../src/lib/ids.js';
import type { ConnectorAccountRow } from '../../src/modules/connector-accounts/connector-accounts.repository.js';
import { ConnectorAccountsService } from '../../src/modules/connector-accounts/connector-accounts.service.js';

test('ids: prefixed, time-ordered in creation order, unique, and every random character in use', () => {
  const ids = Array.from({ length: 50_000 }, () => newId('re'));
  for (const id of ids.slice(0, 100)) assert.match(id, /^re_[0-9a-z]{10}[0-9a-z]{4}[0-9A-Za-z]{10}$/);
  assert.equal(new Set(ids).size, ids.length, 'no id twice');
  assert.deepEqual([...ids].sort(), ids, 'sorting by id is sorting by creation');
  // the random tails draw from all 62 characters, each about equally (500,000 draws: ~8,065 each)
  const counts = new Map<string, number>();
  for (const id of ids) for (const ch of id.slice(-10)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  assert.equal(counts.size, 62);
  for (const [ch, n] of counts) assert.ok(n > 7_000 && n < 9_100, `${ch} drawn ${n} times`);
});

test('connector secrets: opened once per sealed value, again when the sealed value changes', () => {
  const box = new SecretBox(randomBytes(32));
  let opens = 0;
  const counting = Object.assign(Object.create(box) as SecretBox, {
    open(sealed: string, aad: string) {
      opens++;
      return box.open(sealed, aad);
    },
  });
  const service = new ConnectorAccountsService(undefined as never, counting, new Map());
  const id = '4f1c2a7e-1111-4222-8333-944445555666';
  const row = (credentials: Record<string, unknown>, secret: string): ConnectorAccountRow => ({
    id, short_id: 'ca_0123456789', merchant_id: 'mer_x', test_mode: true, connector: 'sandbox', name: null, status: 'active',
    is_default: true, settings: { base_url: 'http://127.0.0.1:1' }, credentials_sealed: box.seal(JSON.stringify(credentials), id),
    webhook_secret_sealed: box.seal(secret, id), created_at: new Date(), deleted_at: null,
  });
  const first = row({ api_key: 'k1' }, 'whsec_1');
  const a = service.contextFor(first);
  const b = service.contextFor({ ...first, settings: { base_url: 'http://127.0.0.1:2' } });
  assert.deepEqual(a.credentials, { api_key: 'k1' });
  assert.equal(a.webhookSecret, 'whsec_1');
  assert.equal(opens, 2, 'credentials and webhook secret opened once');
  assert.equal(b.settings.base_url, 'http://127.0.0.1:2', 'settings come from the row, never from the cache');
  assert.throws(() => { (b.credentials as Record<string, unknown>).api_key = 'changed'; }, TypeError, 'shared credentials are frozen');

  const rotated = service.contextFor(row({ api_key: 'k2' }, 'whsec_2'));
  assert.deepEqual(rotated.credentials, { api_key: 'k2' });
  assert.equal(rotated.webhookSecret, 'whsec_2');
  assert.equal(opens, 4, 'new sealed values are opened');
});
