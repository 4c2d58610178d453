/**
 * The contract test: every response the HTTP and end-to-end suites receive from a gateway is
 * checked against the gateway's own /openapi.json — the operation's schema for that status, and
 * its required headers. Object schemas are checked closed (an undocumented field fails, as does a
 * missing required one), so the document and the server cannot drift apart.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { errorResponseSchema } from '../../src/http/schemas.js';

type Json = Record<string, any>;

/** Operational routes the document leaves out on purpose (not part of the merchant API). */
const UNDOCUMENTED = [/^\/healthz$/, /^\/readyz$/, /^\/metrics$/, /^\/openapi\.json$/, /^\/docs(\/|$)/];

export class ContractViolation extends Error {}

export class Contract {
  private readonly ajv: Ajv2020;
  private readonly routes: { method: string; path: string; re: RegExp; templated: number }[] = [];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(private readonly doc: Json) {
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
    (addFormats as unknown as (a: Ajv2020) => void)(this.ajv);
    this.ajv.addSchema(closeObjects(structuredClone(doc)), 'openapi');
    this.ajv.addSchema(closeObjects(structuredClone(errorResponseSchema) as Json), 'error');
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      const re = new RegExp('^' + path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$');
      for (const method of Object.keys(item)) {
        if (['get', 'post', 'put', 'delete', 'patch'].includes(method)) {
          this.routes.push({ method, path, re, templated: (path.match(/\{/g) ?? []).length });
        }
      }
    }
    // a concrete path wins over a templated one (/v1/payments/refund before /v1/payments/{id})
    this.routes.sort((a, b) => a.templated - b.templated);
  }

  /** Throws a ContractViolation naming every difference between the response and the document. */
  check(method: string, url: string, status: number, headers: Record<string, unknown>, raw: string): void {
    const path = url.split('?')[0];
    if (UNDOCUMENTED.some((re) => re.test(path))) return;
    const where = `${method} ${path} → ${status}`;
    const body = parse(raw);
    const route = this.routes.find((r) => r.method === method.toLowerCase() && r.re.test(path));
    if (!route) {
      // no such operation: the gateway answers with the error envelope
      if (status < 400) throw new ContractViolation(`${where}: a success from an undocumented operation`);
      this.validate('error', body, where, raw);
      return;
    }
    const responses = this.doc.paths[route.path][route.method].responses as Json;
    const key = [String(status), `${Math.floor(status / 100)}XX`, 'default'].find((k) => responses[k]);
    if (!key) throw new ContractViolation(`${where}: status ${status} is not documented for ${route.method.toUpperCase()} ${route.path} (documented: ${Object.keys(responses).join(', ')})`);
    const response = responses[key];
    for (const [name, spec] of Object.entries<Json>(response.headers ?? {})) {
      const header = spec.$ref ? this.doc.components.headers[spec.$ref.split('/').pop()] : spec;
      if (header.required && headers[name.toLowerCase()] === undefined) {
        throw new ContractViolation(`${where}: required header ${name} is missing`);
      }
    }
    if (!response.content) {
      if (raw !== '') throw new ContractViolation(`${where}: a body where the document has none`);
      return;
    }
    // the media type the response says it is, when the document lists it (a text/plain answer)
    const contentType = String(headers['content-type'] ?? '').split(';')[0].trim();
    const media = response.content[contentType] ? contentType : 'application/json';
    const pointer = ['paths', route.path, route.method, 'responses', key, 'content', media, 'schema']
      .map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
    this.validate(`openapi#/${pointer}`, body, where, raw);
  }

  private validate(ref: string, body: unknown, where: string, raw: string) {
    let fn = this.validators.get(ref);
    if (!fn) {
      fn = this.ajv.compile({ $ref: ref });
      this.validators.set(ref, fn);
    }
    if (!fn(body)) {
      const errors = (fn.errors ?? []).slice(0, 8).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${e.params.additionalProperty})` : ''}`);
      throw new ContractViolation(`${where}: the body does not match the document:\n  ${errors.join('\n  ')}\nbody: ${raw.slice(0, 2000)}`);
    }
  }
}

function parse(raw: string): unknown {
  try {
    return raw === '' ? undefined : JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Every object schema that lists its properties and says nothing of others refuses others. */
function closeObjects<T>(node: T): T {
  if (Array.isArray(node)) node.forEach(closeObjects);
  else if (node && typeof node === 'object') {
    const o = node as Json;
    for (const [k, v] of Object.entries(o)) if (k !== 'example' && k !== 'examples') closeObjects(v);
    if (o.type === 'object' && o.properties && o.additionalProperties === undefined) {
      o.additionalProperties = false;
    }
  }
  return node;
}

const byBaseUrl = new Map<string, Promise<Contract | undefined>>();

/**
 * The contract of the gateway at `baseUrl`, from its /openapi.json; undefined when `baseUrl` is
 * not a gateway (the PSP simulator), whose answers are not the gateway's contract.
 */
export function contractAt(baseUrl: string): Promise<Contract | undefined> {
  let c = byBaseUrl.get(baseUrl);
  if (!c) {
    c = (async () => {
      const res = await fetch(`${baseUrl}/openapi.json`);
      if (res.status !== 200) return undefined;
      const doc = (await res.json()) as Json;
      return doc.info?.title === 'Settle API' ? new Contract(doc) : undefined;
    })();
    byBaseUrl.set(baseUrl, c);
  }
  return c;
}
