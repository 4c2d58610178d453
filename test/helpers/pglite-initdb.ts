import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';

/** The installed PGlite's version: what initdb writes is that version's. */
function pgliteVersion(): string {
  // the package exports no package.json: it is found beside its entry point (dist/)
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  return (JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string }).version;
}

let initial: Promise<Blob> | undefined;

/**
 * A new PGlite database's data directory, as `initdb` left it (no migration applied), for the
 * in-process harness to start each database from: initdb costs about four seconds of CPU per
 * database, loading its dump about one. Made once per PGlite version and kept in the temporary
 * directory for the other test processes (written aside, then renamed: a reader never sees half
 * a file). Each harness still runs every migration on its database.
 */
export function pgliteInitialDataDir(): Promise<Blob> {
  initial ??= (async () => {
    const file = join(tmpdir(), `settle-test-pglite-initdb-${pgliteVersion()}.tar`);
    try {
      return new Blob([readFileSync(file)]);
    } catch {
      // not made yet
    }
    const lite = await PGlite.create('memory://');
    const dump = await lite.dumpDataDir('none');
    await lite.close();
    const aside = `${file}.${process.pid}`;
    writeFileSync(aside, new Uint8Array(await dump.arrayBuffer()));
    renameSync(aside, file);
    return dump;
  })();
  return initial;
}
