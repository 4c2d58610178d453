import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { migrate } from '../../src/db/migrate.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { keyFingerprint, SecretBox } from '../../src/lib/crypto.js';
import { encryptionKeysRepository } from '../../src/modules/encryption/encryption-keys.repository.js';
import { EncryptionKeyMismatchError, EncryptionKeysService } from '../../src/modules/encryption/encryption-keys.service.js';

describe('encryption key fingerprint on a database that has secrets but no fingerprint yet (made before fingerprints were kept)', () => {
  const keyA = randomBytes(32);
  const keyB = randomBytes(32);

  async function databaseSealedWith(key: Buffer) {
    const db = await createPgliteDb('memory://');
    await migrate(db);
    await db.query("INSERT INTO merchants (id, name) VALUES ('mer_1', 'm')");
    await db.query(
      `INSERT INTO webhook_endpoints (id, merchant_id, test_mode, url, enabled_events, status, secret_sealed)
       VALUES ('we_1', 'mer_1', true, 'http://127.0.0.1:9/', '{*}', 'enabled', $1)`,
      [new SecretBox(key).seal('whsec_x', 'we_1')],
    );
    return db;
  }

  test('a key that does not open the stored secrets is refused and no fingerprint is recorded', async () => {
    const db = await databaseSealedWith(keyA);
    try {
      await assert.rejects(new EncryptionKeysService(db, new SecretBox(keyB)).checkAtStart(), (err) => {
        assert.ok(err instanceof EncryptionKeyMismatchError);
        assert.match(err.message, /does not open the secrets already in this database \(webhook_endpoint_secret we_1/);
        return true;
      });
      assert.equal(await encryptionKeysRepository.fingerprint(db), undefined);
    } finally {
      await db.close();
    }
  });

  test('the key that opens them is recorded; with it as the previous key, a rotation is under way', async () => {
    const db = await databaseSealedWith(keyA);
    try {
      assert.equal(await new EncryptionKeysService(db, new SecretBox(keyB, [keyA])).checkAtStart(), 'rotating');
      assert.equal(await encryptionKeysRepository.fingerprint(db), keyFingerprint(keyA));
      assert.equal(await new EncryptionKeysService(db, new SecretBox(keyA)).checkAtStart(), 'current');
      await assert.rejects(new EncryptionKeysService(db, new SecretBox(keyB)).checkAtStart(), EncryptionKeyMismatchError);
    } finally {
      await db.close();
    }
  });

  test('an empty database records the sealing key', async () => {
    const db = await createPgliteDb('memory://');
    try {
      await migrate(db);
      assert.equal(await new EncryptionKeysService(db, new SecretBox(keyB, [keyA])).checkAtStart(), 'current');
      assert.equal(await encryptionKeysRepository.fingerprint(db), keyFingerprint(keyB));
    } finally {
      await db.close();
    }
  });
});
