/**
 * Everything the front checks about one request before authz, as a pure function of what
 * the parser produced: version, header lines, framing, Host, target. The result is either
 * the normalized request (and the exact form it is forwarded in) or a refusal reason.
 */
import { inspectHeaders, type HeaderRules } from './headers';
import { normalizeTarget } from './normalize';
import type { NormalizedRequest } from './types';

/** How a request is served (the way Node's server told them apart). */
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

/** `Expect` values that ask for 100-continue (as Node's server matched them). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * The kind of a parsed head: an upgrade (the parser's verdict: Connection: upgrade with an
 * Upgrade header, or CONNECT) ends the parse; in HTTP/1.1 an `Expect` (all its lines, joined)
 * asks for 100-continue or for something the front does not do.
 */
export function kindOf(upgrade: boolean, method: string, httpVersion: string, rawHeaders: readonly string[]): Kind {
  if (upgrade) return method === 'CONNECT' ? Kind.Connect : Kind.Upgrade;
  if (httpVersion !== '1.1') return Kind.Request;
  let expect: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 6 && name.toLowerCase() === 'expect') expect = expect === undefined ? rawHeaders[i + 1]! : `${expect}, ${rawHeaders[i + 1]!}`;
  }
  if (expect === undefined) return Kind.Request;
  return CONTINUE.test(expect) ? Kind.Continue : Kind.Expectation;
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

/** `h2c`: an upgrade to HTTP/2 the caller takes (its Connection, Upgrade and HTTP2-Settings end here), not a WebSocket. */
export function checkRequest(req: ParsedRequest, kind: Kind, rules: HeaderRules, maxHeaders: number, h2c = false): Checked | CheckRefusal {
  if (kind === Kind.Connect) return refused('connect-method');
  const method = req.method ?? '';
  const version = req.httpVersion;
  if (version !== '1.1' && version !== '1.0') return refused('unsupported-http-version');
  const upgrade = kind === Kind.Upgrade;
  const h = inspectHeaders(req.rawHeaders, method, version, rules, maxHeaders, upgrade && !h2c);
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
