import type { Db } from '../../db/db.js';
import type { SecretBox } from '../../lib/crypto.js';
import { encryptionKeysRepository as repo, type SealedValue } from './encryption-keys.repository.js';

/** A process whose encryption key cannot read this database's secrets: it must not start. */
export class EncryptionKeyMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EncryptionKeyMismatchError';
  }
}

/** Short enough to read in a message, long enough to tell keys apart. */
export const shortFingerprint = (fp: string): string => fp.slice(0, 16);

const HOW_TO =
  'Start with the key this database was set up with (SETTLE_ENCRYPTION_KEY, or the encryption.key file of the data ' +
  'directory it was generated into). To change keys, rotate: docs/security.md.';

export type KeyState =
  /** The database's fingerprint is the sealing key's. */
  | 'current'
  /** The database's fingerprint is SETTLE_ENCRYPTION_KEY_PREVIOUS's: a rotation is under way. */
  | 'rotating';

export interface SealedReport {
  /** Values read, by kind. */
  counts: Record<SealedValue['kind'], number>;
  /** Values still sealed with the previous key. */
  underPrevious: number;
  /** Values no configured key opens (`kind ref`). */
  unreadable: string[];
}

export interface RotationReport extends SealedReport {
  resealed: number;
  /** The database's fingerprint after the rotation (unchanged when a value could not be read). */
  fingerprint: string;
}

const describe = (v: SealedValue) => `${v.kind} ${Object.values(v.ref).join('/')}`;

/**
 * The encryption key cannot silently change: the database keeps the fingerprint of the key that
 * seals its secrets, and a process with another key is refused at start instead of answering 500
 * on the first payment. A rotation re-seals every value under the new key, then moves the
 * fingerprint (docs/security.md).
 */
export class EncryptionKeysService {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
  ) {}

  /** The fingerprint of this process's sealing key. */
  get fingerprint(): string {
    return this.box.fingerprint;
  }

  /**
   * Checks this process's keys against the database; on a database that has no fingerprint yet,
   * records one: the key that opens a secret already stored, or the sealing key when none is.
   * Throws EncryptionKeyMismatchError when the keys cannot read the database's secrets.
   */
  async checkAtStart(): Promise<KeyState> {
    const [current, ...previous] = this.box.fingerprints;
    let stored = await repo.fingerprint(this.db);
    if (stored === undefined) {
      // secrets stored before fingerprints were kept: the key must open them
      const sample = (await repo.sealedValues(this.db))[0];
      let adopt = current;
      if (sample) {
        try {
          adopt = this.box.fingerprints[this.box.openWith(sample.sealed, sample.aad).keyIndex];
        } catch {
          throw new EncryptionKeyMismatchError(
            `The encryption key does not open the secrets already in this database (${describe(sample)}; ` +
              `this key's fingerprint: ${shortFingerprint(current)}). ${HOW_TO}`,
          );
        }
      }
      stored = await repo.adopt(this.db, adopt);
    }
    if (stored === current) return 'current';
    if (previous.includes(stored)) return 'rotating';
    throw new EncryptionKeyMismatchError(
      `The encryption key is not the one this database's secrets are sealed with ` +
        `(database: key fingerprint ${shortFingerprint(stored)}; this process: ${shortFingerprint(current)}` +
        `${previous.length ? `, previous ${previous.map(shortFingerprint).join(', ')}` : ''}). ${HOW_TO}`,
    );
  }

  /** Opens every sealed value with the configured keys and counts them; changes nothing. */
  async report(): Promise<SealedReport> {
    const report: SealedReport = { counts: emptyCounts(), underPrevious: 0, unreadable: [] };
    for (const v of await repo.sealedValues(this.db)) {
      report.counts[v.kind]++;
      try {
        if (this.box.openWith(v.sealed, v.aad).keyIndex > 0) report.underPrevious++;
      } catch {
        report.unreadable.push(describe(v));
      }
    }
    return report;
  }

  /**
   * Re-seals every value not yet under the sealing key, then records the sealing key's
   * fingerprint. Safe beside running gateways that have both keys: each value is replaced only if
   * it is still the one read (a row changed meanwhile is read again), and running it twice
   * re-seals nothing the second time. A value no key opens stops the fingerprint from moving.
   */
  async rotate(): Promise<RotationReport> {
    const [current, ...previous] = this.box.fingerprints;
    const stored = await repo.fingerprint(this.db);
    if (stored !== undefined && stored !== current && !previous.includes(stored)) {
      throw new EncryptionKeyMismatchError(
        `Neither SETTLE_ENCRYPTION_KEY nor SETTLE_ENCRYPTION_KEY_PREVIOUS is the key this database's secrets are sealed with ` +
          `(database: ${shortFingerprint(stored)}). ${HOW_TO}`,
      );
    }
    let resealed = 0;
    for (let pass = 0; pass < 5; pass++) {
      let raced = 0;
      for (const v of await repo.sealedValues(this.db)) {
        let next;
        try {
          next = this.box.reseal(v.sealed, v.aad);
        } catch {
          continue; // counted as unreadable by the report below
        }
        if (!next.changed) continue;
        if (await repo.replaceSealed(this.db, v, next.sealed)) resealed++;
        else raced++;
      }
      if (raced === 0) break;
    }
    const report = await this.report();
    let fingerprint = stored ?? current;
    if (report.unreadable.length === 0 && report.underPrevious === 0) {
      if (stored === undefined) fingerprint = await repo.adopt(this.db, current);
      else if (stored !== current && (await repo.replace(this.db, stored, current))) fingerprint = current;
    }
    return { ...report, resealed, fingerprint };
  }
}

function emptyCounts(): SealedReport['counts'] {
  return { connector_credentials: 0, connector_webhook_secret: 0, webhook_endpoint_secret: 0, stored_response: 0 };
}
