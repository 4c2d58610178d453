/**
 * Which webhook URLs the gateway may call (SSRF). Live-mode endpoints must not reach the gateway's
 * own network: the host must not be, or resolve to, a loopback, private, link-local, unspecified,
 * CGNAT, multicast or otherwise reserved address. Test-mode endpoints may reach loopback and
 * private addresses (development), but never link-local, cloud metadata or unspecified ones.
 *
 * Everything here is pure. DNS is injected (`guardedLookup`), so the rules are unit-tested without
 * a resolver, and the same check runs at creation and at connect time (DNS rebinding).
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIPv4, isIPv6 } from 'node:net';

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'cgnat'
  | 'multicast'
  | 'reserved';

/** [first octet-aligned base, prefix length, class]; the first match wins. */
const V4_RANGES: ReadonlyArray<readonly [string, number, AddressClass]> = [
  ['0.0.0.0', 8, 'unspecified'], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'cgnat'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link_local'], // includes cloud metadata services (169.254.169.254)
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'reserved'], // TEST-NET-1
  ['192.88.99.0', 24, 'reserved'], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'], // benchmarking
  ['198.51.100.0', 24, 'reserved'], // TEST-NET-2
  ['203.0.113.0', 24, 'reserved'], // TEST-NET-3
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // future use, and 255.255.255.255 broadcast
];

const V4_TABLE = V4_RANGES.map(([base, bits, cls]) => {
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { net: (v4ToInt(base)! & mask) >>> 0, mask, cls };
});

function v4ToInt(address: string): number | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

function classifyV4Int(n: number): AddressClass {
  for (const { net, mask, cls } of V4_TABLE) if (((n & mask) >>> 0) === net) return cls;
  return 'public';
}

/** Eight 16-bit groups, or undefined. Accepts `::` compression and a dotted IPv4 tail. */
function parseV6(address: string): number[] | undefined {
  let s = address;
  const lastColon = s.lastIndexOf(':');
  if (lastColon === -1) return undefined;
  if (s.slice(lastColon + 1).includes('.')) {
    // "::ffff:1.2.3.4" → "::ffff:102:304"
    const v4 = v4ToInt(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !rest) return undefined;
  const explicit = head.length + rest.length;
  if (halves.length === 2) {
    if (explicit > 7) return undefined;
    return [...head, ...new Array<number>(8 - explicit).fill(0), ...rest];
  }
  return explicit === 8 ? head : undefined;
}

function classifyV6(g: number[]): AddressClass {
  const v4At = (hi: number, lo: number) => classifyV4Int(((g[hi] << 16) >>> 0) + g[lo]);
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);

  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && g[7] === 1) return 'loopback';
  // ::ffff:a.b.c.d (IPv4-mapped) reaches the IPv4 address itself: classify that
  if (zeroUpTo(5) && g[5] === 0xffff) return v4At(6, 7);
  // ::a.b.c.d (IPv4-compatible, deprecated) and ::ffff:0:a.b.c.d (IPv4-translated)
  if (zeroUpTo(6) || (zeroUpTo(4) && g[4] === 0xffff && g[5] === 0)) return 'reserved';
  // 64:ff9b::/96 NAT64 well-known prefix: a gateway forwards to the embedded IPv4 address
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4At(6, 7);
  if (g[0] === 0x2001 && g[1] < 0x200) return 'reserved'; // IETF protocol assignments incl. Teredo
  if (g[0] === 0x2001 && g[1] === 0xdb8) return 'reserved'; // documentation
  if (g[0] === 0x2002) return v4At(1, 2); // 6to4 embeds an IPv4 address
  if (g[0] === 0x3fff && g[1] < 0x1000) return 'reserved'; // documentation (3fff::/20)
  if ((g[0] & 0xfe00) === 0xfc00) return 'private'; // unique local fc00::/7
  if ((g[0] & 0xffc0) === 0xfe80) return 'link_local';
  if ((g[0] & 0xffc0) === 0xfec0) return 'private'; // site-local (deprecated)
  if ((g[0] & 0xff00) === 0xff00) return 'multicast';
  // only 2000::/3 is allocated as global unicast; everything else (100::/64 discard, local-use
  // NAT64 64:ff9b:1::/48, 5f00::/16 SRv6, unassigned space) is not a webhook destination
  if ((g[0] & 0xe000) !== 0x2000) return 'reserved';
  return 'public';
}

/**
 * The class of an IP literal (IPv4, IPv6 with or without brackets or a `%zone`), or undefined when
 * `address` is not an IP literal (a host name).
 */
export function classifyAddress(address: string): AddressClass | undefined {
  let s = address.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone !== -1) {
    // a zone id only means something for link-local and multicast scopes; either way it is local
    if (!isIPv6(s.slice(0, zone))) return undefined;
    const cls = classifyV6(parseV6(s.slice(0, zone))!);
    return cls === 'public' ? 'link_local' : cls;
  }
  if (isIPv4(s)) return classifyV4Int(v4ToInt(s)!);
  if (isIPv6(s)) {
    const groups = parseV6(s);
    return groups ? classifyV6(groups) : 'reserved';
  }
  return undefined;
}

/** True only for addresses a live-mode webhook may be sent to. Host names are not addresses. */
export function isPublicAddress(address: string): boolean {
  return classifyAddress(address) === 'public';
}

/** The IP literal in a URL hostname (`[::1]` → `::1`), or undefined for a host name. */
export function ipLiteral(hostname: string): string | undefined {
  const s = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return isIPv4(s) || isIPv6(s) ? s : undefined;
}

/** `localhost` and `*.localhost` always mean this machine (RFC 6761), whatever DNS says. */
export function isLocalhostName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

export type UrlCheck = { ok: true; url: URL } | { ok: false; message: string };

export interface WebhookUrlRules {
  /** Live mode: only `https`. */
  requireHttps: boolean;
}

/**
 * Syntax and scheme. Note that WHATWG URL parsing already normalizes exotic IPv4 spellings
 * (`http://2130706433/`, `http://0x7f.1/`) to dotted quads, so the hostname we classify is the
 * one the HTTP client will connect to.
 */
export function parseWebhookUrl(raw: string, rules: WebhookUrlRules): UrlCheck {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, message: 'url must be an absolute http(s) URL.' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return { ok: false, message: 'url must use http or https.' };
  }
  if (!url.hostname) return { ok: false, message: 'url must name a host.' };
  if (url.username || url.password) return { ok: false, message: 'url must not contain credentials.' };
  if (rules.requireHttps && url.protocol !== 'https:') {
    return { ok: false, message: 'Live-mode webhook endpoints must use https.' };
  }
  return { ok: true, url };
}

/**
 * Which addresses a webhook may be sent to.
 * - `public` (live mode): public unicast addresses only.
 * - `development` (test mode, and live mode with `SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS`): public,
 *   loopback and private (RFC 1918, unique-local) addresses, so a receiver on the developer's
 *   machine or LAN works.
 * Neither ever allows link-local (169.254.0.0/16, fe80::/10), cloud metadata addresses and names,
 * unspecified (0.0.0.0/8, ::), CGNAT, multicast or reserved addresses.
 */
export type AddressPolicy = 'public' | 'development';

/**
 * Cloud instance-metadata services. Most live in link-local space (blocked anyway); these are
 * listed so that the ones that do not (AWS's IPv6 endpoint in fd00::/8, which is unique-local,
 * Alibaba's in CGNAT space) are refused under every policy, and so the reason says what they are.
 */
const METADATA_ADDRESSES: readonly string[] = [
  '169.254.169.254', // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
  '169.254.170.2', // AWS ECS task metadata
  '169.254.170.23', // AWS EKS pod identity
  'fd00:ec2::254', // AWS IMDS over IPv6
  'fd00:ec2::23', // AWS EKS pod identity over IPv6
  '100.100.100.200', // Alibaba Cloud
];
const METADATA_HOSTNAMES: ReadonlySet<string> = new Set([
  'metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal',
  'metadata.tencentyun.com', 'metadata.platformequinix.com',
]);

/** One spelling per address: dotted IPv4 (also for IPv4-mapped IPv6), else eight hex groups. */
function canonicalAddress(address: string): string | undefined {
  let s = address.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (isIPv4(s)) return s.split('.').map(Number).join('.');
  if (!isIPv6(s)) return undefined;
  const g = parseV6(s);
  if (!g) return undefined;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff].join('.');
  }
  return g.map((x) => x.toString(16)).join(':');
}

const METADATA_CANONICAL: ReadonlySet<string> = new Set(METADATA_ADDRESSES.map((a) => canonicalAddress(a)!));

/** True for a cloud metadata service's address, in any spelling. */
export function isMetadataAddress(address: string): boolean {
  const c = canonicalAddress(address);
  return c !== undefined && METADATA_CANONICAL.has(c);
}

/** True for a cloud metadata service's well-known host name. */
export function isMetadataHostname(hostname: string): boolean {
  return METADATA_HOSTNAMES.has(hostname.toLowerCase().replace(/\.$/, ''));
}

/** Whether an address of this class may be called under `policy`. */
export function classAllowed(cls: AddressClass, policy: AddressPolicy): boolean {
  if (cls === 'public') return true;
  return policy === 'development' && (cls === 'loopback' || cls === 'private');
}

/** Why one resolved or literal address is refused under `policy`, or undefined. */
function addressReason(address: string, policy: AddressPolicy): string | undefined {
  if (isMetadataAddress(address)) return 'a cloud metadata address';
  const cls = classifyAddress(address) ?? 'reserved';
  if (classAllowed(cls, policy)) return undefined;
  const what = describeClass(cls);
  return `${/^[aeiou]/.test(what) ? 'an' : 'a'} ${what} address`;
}

/** Why a host (literal or name) is blocked before any DNS lookup, or undefined. */
export function blockedHostReason(hostname: string, policy: AddressPolicy = 'public'): string | undefined {
  const literal = ipLiteral(hostname);
  if (literal !== undefined) {
    const reason = addressReason(literal, policy);
    return reason && `${literal} is ${reason}`;
  }
  if (isMetadataHostname(hostname)) return `${hostname} is a cloud metadata host name`;
  if (isLocalhostName(hostname) && policy === 'public') return `${hostname} is a loopback host name`;
  return undefined;
}

/**
 * Why a set of resolved addresses is blocked (any refused one blocks), or undefined. The
 * addresses themselves are not named: the reason is shown to the merchant, and a merchant must
 * not learn what the gateway's resolver says about internal names.
 */
export function blockedAddressesReason(hostname: string, addresses: readonly string[], policy: AddressPolicy = 'public'): string | undefined {
  if (addresses.length === 0) return `${hostname} did not resolve to any address`;
  for (const address of addresses) {
    // every address must be allowed: a resolver may hand out any of them on the next lookup
    const reason = addressReason(address, policy);
    if (reason) return `${hostname} resolves to ${reason}`;
  }
  return undefined;
}

export function describeClass(cls: AddressClass): string {
  return cls === 'link_local' ? 'link-local' : cls === 'cgnat' ? 'carrier-grade NAT' : cls;
}

/** Raised by `guardedLookup`; `code` lets the delivery worker report it as a blocked attempt. */
export class BlockedAddressError extends Error {
  readonly code = 'ESETTLE_BLOCKED_ADDRESS';
  constructor(reason: string) {
    super(`blocked: ${reason}`);
    this.name = 'BlockedAddressError';
  }
}

export type ResolveAll = (hostname: string, family: number | undefined) => Promise<LookupAddress[]>;

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for `net.connect`/`tls.connect` that resolves with `resolveAll` and refuses to
 * connect when any resolved address is not allowed under `policy`. The socket connects to the
 * very addresses checked here (the answer is handed to it, it does not resolve again), so a DNS
 * answer that changes after endpoint creation (rebinding) cannot slip through. Under the
 * `development` policy `localhost` is answered with the loopback address without asking DNS.
 */
export function guardedLookup(resolveAll: ResolveAll, policy: AddressPolicy = 'public') {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    const reason = blockedHostReason(hostname, policy);
    if (reason) {
      callback(new BlockedAddressError(reason), '', 0);
      return;
    }
    const family = typeof options.family === 'number' && options.family !== 0 ? options.family : undefined;
    const resolved: Promise<LookupAddress[]> = isLocalhostName(hostname)
      ? Promise.resolve(family === 6 ? [{ address: '::1', family: 6 }] : [{ address: '127.0.0.1', family: 4 }])
      : resolveAll(hostname, family);
    resolved.then(
      (addresses) => {
        const blocked = blockedAddressesReason(hostname, addresses.map((a) => a.address), policy);
        if (blocked) return callback(new BlockedAddressError(blocked), '', 0);
        if (options.all) return callback(null, addresses);
        return callback(null, addresses[0].address, addresses[0].family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}
