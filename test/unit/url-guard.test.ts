import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import fc from 'fast-check';
import {
  BlockedAddressError,
  blockedAddressesReason,
  blockedHostReason,
  classifyAddress,
  guardedLookup,
  ipLiteral,
  isMetadataAddress,
  isMetadataHostname,
  isPublicAddress,
  parseWebhookUrl,
  type AddressClass,
} from '../../src/modules/webhooks/url-guard.js';

function expectClasses(cases: Array<[string, AddressClass | undefined]>): void {
  for (const [address, expected] of cases) {
    assert.equal(classifyAddress(address), expected, `classifyAddress(${JSON.stringify(address)})`);
  }
}

describe('classifyAddress: IPv4', () => {
  it('classifies the special-purpose ranges and their edges', () => {
    expectClasses([
      ['0.0.0.0', 'unspecified'],
      ['0.1.2.3', 'unspecified'],
      ['127.0.0.1', 'loopback'],
      ['127.255.255.254', 'loopback'],
      ['10.0.0.0', 'private'],
      ['10.255.255.255', 'private'],
      ['9.255.255.255', 'public'],
      ['11.0.0.0', 'public'],
      ['172.15.255.255', 'public'],
      ['172.16.0.0', 'private'],
      ['172.31.255.255', 'private'],
      ['172.32.0.0', 'public'],
      ['192.168.0.1', 'private'],
      ['192.169.0.1', 'public'],
      ['169.254.169.254', 'link_local'],
      ['100.63.255.255', 'public'],
      ['100.64.0.0', 'cgnat'],
      ['100.127.255.255', 'cgnat'],
      ['100.128.0.0', 'public'],
      ['192.0.0.8', 'reserved'],
      ['192.0.2.10', 'reserved'],
      ['198.18.0.1', 'reserved'],
      ['198.19.255.255', 'reserved'],
      ['198.20.0.0', 'public'],
      ['198.51.100.7', 'reserved'],
      ['203.0.113.9', 'reserved'],
      ['224.0.0.1', 'multicast'],
      ['239.255.255.255', 'multicast'],
      ['240.0.0.1', 'reserved'],
      ['255.255.255.255', 'reserved'],
      ['8.8.8.8', 'public'],
      ['93.184.216.34', 'public'],
    ]);
  });

  it('says a host name or a malformed address is not an address', () => {
    expectClasses([
      ['example.com', undefined],
      ['localhost', undefined],
      ['', undefined],
      ['1.2.3', undefined],
      ['256.1.1.1', undefined],
      ['1.2.3.4.5', undefined],
      ['[example.com]', undefined],
    ]);
  });
});

describe('classifyAddress: IPv6', () => {
  it('classifies loopback, unspecified, unique-local, link-local, multicast and reserved space', () => {
    expectClasses([
      ['::', 'unspecified'],
      ['::1', 'loopback'],
      ['0:0:0:0:0:0:0:1', 'loopback'],
      ['[::1]', 'loopback'],
      ['fc00::1', 'private'],
      ['fd12:3456:789a::1', 'private'],
      ['fe80::1', 'link_local'],
      ['febf:ffff::1', 'link_local'],
      ['fe80::1%eth0', 'link_local'],
      ['fec0::1', 'private'],
      ['ff02::1', 'multicast'],
      ['2001:db8::1', 'reserved'],
      ['2001::1', 'reserved'], // Teredo
      ['3fff::1', 'reserved'],
      ['100::1', 'reserved'],
      ['4000::1', 'reserved'],
      ['::127.0.0.1', 'reserved'], // IPv4-compatible, deprecated
      ['2606:4700:4700::1111', 'public'],
      ['2001:4860:4860::8888', 'public'],
      ['[2a00:1450:4001:82b::200e]', 'public'],
    ]);
  });

  it('classifies addresses that embed an IPv4 address by the embedded address', () => {
    expectClasses([
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['[::ffff:10.0.0.1]', 'private'],
      ['0000:0000:0000:0000:0000:ffff:c0a8:0001', 'private'],
      ['::ffff:169.254.169.254', 'link_local'],
      ['::ffff:8.8.8.8', 'public'],
      ['64:ff9b::10.1.1.1', 'private'],
      ['64:ff9b::8.8.8.8', 'public'],
      ['2002:7f00:1::1', 'loopback'], // 6to4 of 127.0.0.1
      ['2002:c0a8:101::1', 'private'], // 6to4 of 192.168.1.1
      ['2002:808:808::1', 'public'],
    ]);
  });

  it('gives every IPv4 address the same class in all its IPv6 spellings', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const [a, b, c, d] = v4.split('.').map(Number);
        const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
        const cls = classifyAddress(v4);
        assert.ok(cls !== undefined);
        assert.equal(classifyAddress(`::ffff:${v4}`), cls);
        assert.equal(classifyAddress(`[::ffff:${hex}]`), cls);
        assert.equal(classifyAddress(`::FFFF:${hex.toUpperCase()}`), cls);
        assert.equal(classifyAddress(`64:ff9b::${v4}`), cls);
        assert.equal(classifyAddress(`2002:${hex}::1`), cls);
      }),
      { numRuns: 2000 },
    );
  });

  it('never calls an address in 10/8, 127/8, 172.16/12, 192.168/16 or 169.254/16 public', () => {
    fc.assert(
      fc.property(fc.constantFrom('10', '127', '172.16', '172.31', '192.168', '169.254'), fc.ipV4(), (prefix, random) => {
        const parts = prefix.split('.');
        const address = [...parts, ...random.split('.').slice(parts.length)].join('.');
        assert.equal(isPublicAddress(address), false, address);
      }),
    );
  });
});

describe('ipLiteral and blockedHostReason', () => {
  it('strips brackets from IPv6 hosts and returns undefined for names', () => {
    assert.equal(ipLiteral('[::1]'), '::1');
    assert.equal(ipLiteral('10.0.0.1'), '10.0.0.1');
    assert.equal(ipLiteral('example.com'), undefined);
  });

  it('blocks localhost names and non-public literals without DNS, and lets public ones through', () => {
    assert.match(blockedHostReason('localhost')!, /loopback/);
    assert.match(blockedHostReason('api.LOCALHOST.')!, /loopback/);
    assert.match(blockedHostReason('[::1]')!, /loopback/);
    assert.match(blockedHostReason('169.254.169.254')!, /cloud metadata/);
    assert.match(blockedHostReason('169.254.1.1')!, /link-local/);
    assert.match(blockedHostReason('100.64.1.1')!, /carrier-grade NAT/);
    assert.equal(blockedHostReason('93.184.216.34'), undefined);
    assert.equal(blockedHostReason('example.com'), undefined);
  });

  it('sees exotic IPv4 spellings as the address the HTTP client will reach', () => {
    for (const raw of ['http://2130706433/', 'http://0x7f.1/', 'http://127.1/', 'http://[::ffff:127.0.0.1]/', 'http://[0:0::1]/']) {
      const check = parseWebhookUrl(raw, { requireHttps: false });
      assert.ok(check.ok, raw);
      assert.match(blockedHostReason(check.url.hostname) ?? 'not blocked', /loopback/, raw);
    }
  });

  it('blocks a resolution as soon as one address is not public', () => {
    assert.equal(blockedAddressesReason('ok.example', ['93.184.216.34', '2606:4700::1']), undefined);
    assert.equal(blockedAddressesReason('mixed.example', ['93.184.216.34', '10.0.0.5']), 'mixed.example resolves to a private address');
    assert.match(blockedAddressesReason('v6.example', ['fd00::1'])!, /private/);
    assert.match(blockedAddressesReason('none.example', [])!, /did not resolve/);
  });
});

describe('parseWebhookUrl', () => {
  it('accepts absolute http(s) URLs and refuses anything else', () => {
    assert.equal(parseWebhookUrl('https://example.com/hooks', { requireHttps: true }).ok, true);
    assert.equal(parseWebhookUrl('http://localhost:3000/hooks', { requireHttps: false }).ok, true);
    for (const raw of ['not a url', '/relative/path', 'ftp://example.com/', 'javascript:alert(1)', 'file:///etc/passwd']) {
      const check = parseWebhookUrl(raw, { requireHttps: false });
      assert.equal(check.ok, false, raw);
    }
  });

  it('requires https when asked to (live mode)', () => {
    const check = parseWebhookUrl('http://example.com/hooks', { requireHttps: true });
    assert.equal(check.ok, false);
    assert.match(!check.ok ? check.message : '', /https/);
  });

  it('refuses credentials in the URL', () => {
    assert.equal(parseWebhookUrl('https://user:pw@example.com/', { requireHttps: true }).ok, false);
  });
});

describe('guardedLookup', () => {
  const fake = (table: Record<string, string[]>) => {
    const calls: string[] = [];
    const resolve = async (hostname: string): Promise<LookupAddress[]> => {
      calls.push(hostname);
      const addresses = table[hostname];
      if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
    return { calls, resolve };
  };
  const run = (lookup: ReturnType<typeof guardedLookup>, host: string, all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((res) =>
      lookup(host, { all }, (err, address, family) => res({ err, address, family })),
    );

  it('hands public addresses to the socket in both callback forms', async () => {
    const { resolve } = fake({ 'hooks.example': ['93.184.216.34', '2606:4700::1'] });
    const lookup = guardedLookup(resolve);
    const single = await run(lookup, 'hooks.example', false);
    assert.equal(single.err, null);
    assert.equal(single.address, '93.184.216.34');
    assert.equal(single.family, 4);
    const all = await run(lookup, 'hooks.example', true);
    assert.deepEqual(all.address, [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:4700::1', family: 6 },
    ]);
  });

  it('refuses to connect when the name now resolves to a private address (rebinding)', async () => {
    const { resolve } = fake({ 'rebind.example': ['10.0.0.7'] });
    const { err } = await run(guardedLookup(resolve), 'rebind.example', false);
    assert.ok(err instanceof BlockedAddressError);
    assert.equal(err.message, 'blocked: rebind.example resolves to a private address');
  });

  it('refuses localhost without asking DNS', async () => {
    const { calls, resolve } = fake({ localhost: ['93.184.216.34'] });
    const { err } = await run(guardedLookup(resolve), 'localhost', true);
    assert.ok(err instanceof BlockedAddressError);
    assert.deepEqual(calls, []);
  });

  it('passes resolver errors through', async () => {
    const { resolve } = fake({});
    const { err } = await run(guardedLookup(resolve), 'missing.example', false);
    assert.equal(err?.code, 'ENOTFOUND');
  });
});

describe('address policies: development (test mode) and public (live mode)', () => {
  it('development allows loopback and private addresses, and never link-local, metadata, unspecified or reserved ones', () => {
    for (const host of ['127.0.0.1', '[::1]', 'localhost', '10.0.0.1', '192.168.1.1', '172.16.0.1', '[fd12::1]', '93.184.216.34', 'example.com']) {
      assert.equal(blockedHostReason(host, 'development'), undefined, host);
    }
    for (const host of ['169.254.169.254', '169.254.0.1', '[fe80::1]', '[febf::ffff]', '0.0.0.0', '0.1.2.3', '[::]', '[fd00:ec2::254]', '[fd00:ec2:0:0:0:0:0:254]',
      '100.100.100.200', '100.64.0.1', '224.0.0.1', '192.0.2.1', '[::ffff:169.254.169.254]', '[::ffff:a9fe:a9fe]', '[64:ff9b::a9fe:a9fe]',
      'metadata.google.internal', 'METADATA.google.internal.', 'metadata', 'instance-data', 'metadata.goog']) {
      assert.ok(blockedHostReason(host, 'development'), `${host} is allowed in test mode`);
      assert.ok(blockedHostReason(host, 'public'), `${host} is allowed in live mode`);
    }
    assert.equal(blockedHostReason('169.254.169.254', 'development'), '169.254.169.254 is a cloud metadata address');
    assert.equal(blockedHostReason('[fd00:ec2::254]', 'development'), 'fd00:ec2::254 is a cloud metadata address');
    assert.equal(blockedHostReason('0.0.0.0', 'development'), '0.0.0.0 is an unspecified address');
    assert.equal(blockedHostReason('metadata.google.internal', 'development'), 'metadata.google.internal is a cloud metadata host name');
    assert.equal(blockedHostReason('10.0.0.1', 'public'), '10.0.0.1 is a private address');
  });

  it('knows the metadata addresses in every spelling, and nothing near them', () => {
    for (const a of ['169.254.169.254', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '[fd00:ec2::254]', 'fd00:ec2:0::254', '100.100.100.200', '169.254.170.2']) {
      assert.equal(isMetadataAddress(a), true, a);
    }
    for (const a of ['169.254.169.253', 'fd00:ec2::255', '100.100.100.201', 'example.com', '']) assert.equal(isMetadataAddress(a), false, a);
    assert.equal(isMetadataHostname('Metadata.Google.Internal.'), true);
    assert.equal(isMetadataHostname('metadata.example.com'), false);
  });

  it('URL parsing turns every IPv4 spelling of the metadata address into the address the guard refuses', () => {
    for (const raw of ['http://2852039166/', 'http://0xa9fea9fe/', 'http://0xA9.0xFE.0xA9.0xFE/', 'http://0251.0376.0251.0376/', 'http://169.254.43518/', 'http://[::ffff:169.254.169.254]/']) {
      const check = parseWebhookUrl(raw, { requireHttps: false });
      assert.ok(check.ok, raw);
      assert.match(blockedHostReason(check.url.hostname, 'development') ?? 'allowed', /cloud metadata address/, raw);
    }
  });

  it('the development lookup answers localhost itself and checks resolved addresses against the policy', async () => {
    const calls: string[] = [];
    const table: Record<string, string[]> = { 'lan.example': ['192.168.0.9'], 'meta.example': ['10.0.0.1', '169.254.169.254'] };
    const lookup = guardedLookup(async (hostname) => {
      calls.push(hostname);
      return (table[hostname] ?? []).map((address) => ({ address, family: 4 }));
    }, 'development');
    const run = (host: string) => new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((res) => lookup(host, { all: true }, (err, address) => res({ err, address })));
    assert.deepEqual((await run('localhost')).address, [{ address: '127.0.0.1', family: 4 }]);
    assert.deepEqual((await run('lan.example')).address, [{ address: '192.168.0.9', family: 4 }]);
    const meta = await run('meta.example');
    assert.ok(meta.err instanceof BlockedAddressError);
    assert.equal(meta.err.message, 'blocked: meta.example resolves to a cloud metadata address');
    assert.ok((await run('metadata.google.internal')).err instanceof BlockedAddressError);
    assert.deepEqual(calls, ['lan.example', 'meta.example'], 'localhost or a metadata name was sent to the resolver');
  });
});
