// Copies Redoc's standalone bundle and its licence notices into dist/reference/, where the gateway
// serves them at /docs, so that the API reference loads nothing from outside the gateway.
// One change is made to the bundle: its sidebar footer shows Redocly's logo from their CDN; the
// image's address becomes an empty data: URL, so the browser fetches nothing (Redoc drops an image
// that fails to load; the "API docs by Redocly" link stays).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = createRequire(join(root, 'package.json')).resolve('redoc/bundles/redoc.standalone.js');
const target = join(root, 'dist', 'reference');
mkdirSync(target, { recursive: true });

const LOGO = '"https://cdn.redoc.ly/redoc/logo-mini.svg"';
const source = readFileSync(bundle, 'utf8');
const found = source.split(LOGO).length - 1;
if (found !== 1) {
  // another Redoc version: look again at what it loads from outside (test/e2e/api-reference.test.ts checks)
  throw new Error(`vendor-reference: expected Redoc's CDN logo address once in ${bundle}, found it ${found} times`);
}
writeFileSync(join(target, 'redoc.standalone.js'), source.replace(LOGO, '"data:,"'));
copyFileSync(`${bundle}.LICENSE.txt`, join(target, 'redoc.standalone.js.LICENSE.txt'));
copyFileSync(join(dirname(bundle), '..', 'LICENSE'), join(target, 'LICENSE'));
