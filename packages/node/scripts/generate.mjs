#!/usr/bin/env node
/**
 * Regenerates src/schema.ts from a gateway's OpenAPI document:
 *   npm run generate -w @settle-gateway/node -- http://localhost:8080   (a running gateway)
 *   npm run generate -w @settle-gateway/node -- ./openapi.json          (a saved document)
 * The gateway's test suite fails when src/schema.ts differs from what its document generates.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSchema } from './schema-source.mjs';

const source = process.argv[2] ?? 'http://localhost:8080';
const doc = /^https?:/.test(source)
  ? await (await fetch(`${source.replace(/\/$/, '')}/openapi.json`)).json()
  : JSON.parse(await readFile(source, 'utf8'));
const out = join(dirname(fileURLToPath(import.meta.url)), '../src/schema.ts');
await writeFile(out, await generateSchema(doc));
console.log(`wrote ${out}`);
