/**
 * One HTTP/2 request's headers as the proxy reads them, in one pass: the request authz and the
 * routes see (the same NormalizedRequest as HTTP/1.1's: the path normalized once by
 * ../http/normalize.ts, the authority as its host) and the headers forwarded upstream (that path,
 * the client's identity and mesh headers removed, the mesh's own set). Pure.
 */
import type * as http2 from 'node:http2';
import { isStripped, type HeaderRules } from '../http/headers';
import { normalizeHost, normalizeTarget } from '../http/normalize';
import type { NormalizedRequest } from '../http/types';
import { isGrpc } from './grpc';

/** Connection-specific headers (RFC 9113 §8.2.2) never pass; `te` only as `trailers`. */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);
const MAX_HEADERS = 100;

export type H2Request =
  | { ok: true; req: NormalizedRequest; forward: http2.OutgoingHttpHeaders; target: string; grpc: boolean }
  | { ok: false; reason: string; method: string; path: string };

export function readRequest(headers: http2.IncomingHttpHeaders, rules: HeaderRules): H2Request {
  const method = one(headers[':method']) ?? '';
  const rawPath = one(headers[':path']) ?? '';
  const refuse = (reason: string): H2Request => ({ ok: false, reason, method, path: rawPath.slice(0, 256) });
  if (method === 'CONNECT') return refuse('connect-method');
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/.test(method)) return refuse('invalid-method');
  const authority = one(headers[':authority']) ?? one(headers.host);
  const host = normalizeHost(authority);
  if (host === undefined) return refuse(authority === undefined ? 'missing-host' : 'invalid-host');
  if (rawPath.length === 0) return refuse('invalid-request-target');
  const t = normalizeTarget(rawPath, authority);
  if (!t.ok) return refuse(t.reason);
  const scheme = one(headers[':scheme']) ?? 'http';
  const seen: Record<string, string[]> = { host: [host] };
  const forward: http2.OutgoingHttpHeaders = { ':method': method, ':path': t.target, ':authority': authority!, ':scheme': scheme };
  let count = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (++count > MAX_HEADERS) return refuse('too-many-headers');
    if (NOT_FORWARDED.has(name) || isStripped(name, rules)) continue;
    const values = Array.isArray(value) ? value : [value];
    if (name === 'te') {
      if (values.every((v) => v.trim().toLowerCase() === 'trailers')) forward.te = 'trailers';
      continue;
    }
    seen[name] = values;
    forward[name] = value;
  }
  for (let i = 0; i < rules.setPairs.length; i += 2) forward[rules.setPairs[i]!.toLowerCase()] = rules.setPairs[i + 1]!;
  const req: NormalizedRequest = { method, path: t.path, query: t.query, host, headers: seen, httpVersion: '2.0' };
  const grpc = isGrpc(one(headers['content-type']));
  return { ok: true, req, forward, target: t.target, grpc };
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A response's headers as relayed to the client: `:status` and every regular header, as sent. */
export function relayedHeaders(headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || (name.startsWith(':') && name !== ':status') || NOT_FORWARDED.has(name)) continue;
    out[name] = value;
  }
  return out;
}
