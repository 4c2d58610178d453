/**
 * The HTTP transport the Adyen library sends its requests through (the library's documented
 * `ClientInterface` extension point). The library builds the request (URL, JSON body, headers'
 * values) and parses the answer; this only moves the bytes, for two reasons the library's own
 * transport cannot serve: it speaks `https:` only (the operator may point a test-mode account at
 * a plain-http PSP simulator on loopback), and a request must never leave for a host other than
 * the one the connector chose for the account (`allowedBase`), whatever URL the library builds.
 */
import type { Config } from '@adyen/api-library';
import type { IRequest } from '@adyen/api-library/lib/src/typings/requestOptions.js';
import { pspHttp, type PspHttp } from '../psp-http.js';
import { HttpClientException } from './adyen-library.js';

/** Thrown when no request was sent at all (nothing happened at Adyen). */
export class AdyenRequestNotSentError extends Error {
  override readonly name = 'AdyenRequestNotSentError';
}

/** Thrown when the request may have reached Adyen but no answer came back (network, timeout). */
export class AdyenNoAnswerError extends Error {
  override readonly name = 'AdyenNoAnswerError';
}

export class AdyenHttpTransport {
  constructor(
    private readonly allowedBase: string,
    private readonly timeoutMs: number,
    private readonly http: PspHttp = pspHttp,
  ) {}

  async request(endpoint: string, json: string | Buffer, config: Config, _isApiKeyRequired: boolean, requestOptions: IRequest.Options = {}): Promise<string> {
    if (!endpoint.startsWith(`${this.allowedBase}/`)) {
      throw new AdyenRequestNotSentError('adyen: the library built a URL outside the account\'s endpoint; nothing was sent');
    }
    if (!config.apiKey) throw new AdyenRequestNotSentError('adyen: the account has no API key; nothing was sent');
    const url = new URL(endpoint);
    if (requestOptions.params) url.search = new URLSearchParams(requestOptions.params as Record<string, string>).toString();
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'accept': 'application/json',
      'x-api-key': config.apiKey,
      'user-agent': 'settle-gateway adyen-node-api-library',
    };
    if (requestOptions.idempotencyKey) headers['idempotency-key'] = requestOptions.idempotencyKey;
    let status: number;
    let body: string;
    let responseHeaders: Record<string, string>;
    try {
      const res = await this.http(url, {
        method: requestOptions.method ?? 'POST',
        headers,
        body: requestOptions.method === 'GET' ? undefined : typeof json === 'string' ? json : json.toString('utf8'),
        timeoutMs: this.timeoutMs,
      });
      status = res.status;
      body = res.text;
      responseHeaders = res.headers;
    } catch (err) {
      throw new AdyenNoAnswerError(`adyen: no answer (${(err as Error).name})`);
    }
    if (status >= 200 && status < 300) return body;
    let apiError: Record<string, unknown> | undefined;
    try {
      const parsed = JSON.parse(body) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) apiError = parsed as Record<string, unknown>;
    } catch {
      // not Adyen's JSON error body (a proxy's page, say): the status alone decides
    }
    throw new HttpClientException({
      message: `HTTP ${status}`,
      statusCode: status,
      errorCode: typeof apiError?.errorCode === 'string' ? apiError.errorCode : undefined,
      responseHeaders,
      responseBody: body,
      apiError: apiError as never,
    });
  }
}
