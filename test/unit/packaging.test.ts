import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadConfig, NODE_HEAP_ARG } from '../../src/config.js';

const run = promisify(execFile);
/** The repository, from dist/test/unit. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Every environment variable loadConfig reads, seen by handing it an environment that records reads. */
function settingsRead(): string[] {
  const seen = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get(_t, key) {
      if (typeof key === 'string') seen.add(key);
      return undefined;
    },
  });
  loadConfig(env);
  return [...seen].sort();
}

/** Variables .env.example names that node reads, not the configuration. */
const NODE_VARIABLES = ['NODE_OPTIONS'];

test('.env.example names every setting the configuration reads, and nothing else', () => {
  const example = [...read('.env.example').matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
  assert.deepEqual([...new Set(example)].filter((key) => !NODE_VARIABLES.includes(key)).sort(), settingsRead());
});

test('every way to run the gateway caps the V8 heap at the same size', () => {
  const cap = NODE_HEAP_ARG;
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${cap} dist/src/main.js serve`);
  assert.match(read('Dockerfile'), new RegExp(`^\\s*NODE_OPTIONS=${cap} \\\\$`, 'm'));
  assert.match(read('deploy/systemd/settle@.service'), new RegExp(`^Environment=NODE_OPTIONS=${cap}$`, 'm'));
  assert.match(read('.env.example'), new RegExp(`^#NODE_OPTIONS=${cap}$`, 'm'));
});

test('the README documents every setting the configuration reads', () => {
  const readme = read('README.md');
  const missing = settingsRead().filter((key) => !readme.includes(`\`${key}\``));
  assert.deepEqual(missing, []);
});

test('LICENSE is the license package.json declares', () => {
  const pkg = JSON.parse(read('package.json')) as { license: string };
  assert.equal(pkg.license, 'Apache-2.0');
  const license = read('LICENSE');
  assert.match(license, /^\s*Apache License\s+Version 2\.0, January 2004/);
  assert.match(license, /END OF TERMS AND CONDITIONS/);
});

test('CHANGELOG has an entry for the package version', () => {
  const pkg = JSON.parse(read('package.json')) as { version: string };
  assert.match(read('CHANGELOG.md'), new RegExp(`^## \\[${pkg.version.replace(/\./g, '\\.')}\\]`, 'm'));
});

test('the systemd unit runs one role per instance and stops after the shutdown drain', () => {
  const unit = read('deploy/systemd/settle@.service');
  assert.match(unit, /^ExecStart=\S*node \S+\/dist\/src\/main\.js serve --role %i$/m);
  assert.match(unit, /^User=settle$/m);
  const stop = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
  const config = loadConfig({});
  assert.ok(stop * 1000 > config.shutdownDelayMs + config.shutdownTimeoutMs, 'systemd waits longer than the drain and the in-flight timeout');
});

test('the Dockerfile builds in one stage and runs as a non-root user with a health check in another', () => {
  const dockerfile = read('Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM \S+ AS (\w+)$/gm)].map((m) => m[1]);
  assert.deepEqual(stages, ['build', 'runtime']);
  // instructions continued over several lines read as one
  const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime')).replace(/\\\n\s*/g, ' ');
  assert.match(runtime, /^USER (?!root\b|0\b)\w+$/m);
  assert.match(runtime, /^HEALTHCHECK .*\/healthz/m);
  assert.match(runtime, /^COPY --from=build /m);
  assert.doesNotMatch(runtime, /npm (ci|install)(?!.*--omit=dev)/, 'no dev dependencies in the runtime image');
  // npm ci and the build need every workspace of package.json: its manifest before the install,
  // its sources before the build
  const build = dockerfile.slice(0, dockerfile.indexOf('AS runtime'));
  const workspaces: string[] = JSON.parse(read('package.json')).workspaces ?? [];
  for (const ws of workspaces) {
    const dir = ws.replace(/\/\*$/, '');
    const manifest = build.search(new RegExp(`^COPY ${dir}/[^\\s]*package\\.json`, 'm'));
    const sources = build.search(new RegExp(`^COPY ${dir} `, 'm'));
    assert.ok(manifest >= 0 && manifest < build.indexOf('RUN npm ci'), `the build stage copies ${dir}'s manifests before npm ci`);
    assert.ok(sources >= 0 && sources < build.indexOf('RUN npm run build'), `the build stage copies ${dir} before npm run build`);
  }
});

/** A container builder that can build here: docker or podman with a reachable engine. */
async function containerBuilder(): Promise<string | undefined> {
  for (const tool of ['docker', 'podman']) {
    try {
      await run(tool, ['info'], { timeout: 10_000 });
      return tool;
    } catch {
      // not installed, or no engine to talk to
    }
  }
  return undefined;
}

test('the Dockerfile builds', { timeout: 900_000 }, async (t) => {
  const builder = await containerBuilder();
  if (!builder) return t.skip('no container builder with a running engine here (docker or podman): the image build is not checked');
  const tag = `settle-build-check:${process.pid}`;
  try {
    await run(builder, ['build', '-t', tag, ROOT], { timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
    const { stdout } = await run(builder, ['image', 'inspect', tag, '--format', '{{.Config.User}} {{json .Config.Healthcheck}}']);
    assert.match(stdout, /^node /);
    assert.match(stdout, /healthz/);
  } finally {
    await run(builder, ['image', 'rm', '-f', tag]).catch(() => {});
  }
});
