/**
 * Everything the front checks about one request before authz, as a pure function of what
 * the parser produced: version, header lines, framing, Host, target. The result is either
 * the normalized request (and the exact form it is forwarded in) or a refusal reason.
 */
import { inspectHeaders, type HeaderRules } from './headers';
import { normalizeTarget } from './normalize';
import type { NormalizedRequest } from './types';

/** How Node's server handed the request over. */
export const enum Kind {
  Request,
  /** `Expect: 100-continue`: 100 is sent only once authz allows the request */
  Continue,
  /** an `Expect` other than 100-continue */
  Expectation,
  /** a WebSocket upgrade (detached from Node's HTTP machinery) */
  Upgrade,
  /** CONNECT (detached) */
  Connect,
}

export interface ParsedRequest {
  method?: string | undefined;
  url?: string | undefined;
  httpVersion: string;
  rawHeaders: string[];
}

export interface Checked {
  ok: true;
  request: NormalizedRequest;
  /** origin-form target to forward: normalized path + query as sent */
  target: string;
  /** header lines to forward: name, value, … */
  forward: string[];
  chunked: boolean;
  contentLength: number;
}

export interface CheckRefusal {
  ok: false;
  reason: string;
  /** what is known of the request, for the record */
  host: string;
  path: string | undefined;
}

function refused(reason: string, host = '', path?: string): CheckRefusal {
  return { ok: false, reason, host, path };
}

export function checkRequest(req: ParsedRequest, kind: Kind, rules: HeaderRules, maxHeaders: number): Checked | CheckRefusal {
  if (kind === Kind.Connect) return refused('connect-method');
  const method = req.method ?? '';
  const version = req.httpVersion;
  if (version !== '1.1' && version !== '1.0') return refused('unsupported-http-version');
  const upgrade = kind === Kind.Upgrade;
  const h = inspectHeaders(req.rawHeaders, method, version, rules, maxHeaders, upgrade);
  if (!h.ok) return refused(h.reason);
  const t = normalizeTarget(req.url ?? '', h.rawHost);
  if (!t.ok) return refused(t.reason, h.host);
  if (t.path === '*' && method !== 'OPTIONS') return refused('asterisk-form-not-options', h.host, t.path);
  if (upgrade) {
    if (method !== 'GET' || version !== '1.1') return refused('upgrade-not-supported', h.host, t.path);
    if (h.chunked || h.contentLength > 0) return refused('upgrade-with-body', h.host, t.path);
  }
  if (kind === Kind.Expectation) return refused('unsupported-expectation', h.host, t.path);
  return {
    ok: true,
    request: { method, path: t.path, query: t.query, host: h.host, headers: h.headers, httpVersion: version },
    target: t.target,
    forward: h.forward,
    chunked: h.chunked,
    contentLength: h.contentLength,
  };
}
