/**
 * One pass over the header lines exactly as sent (`rawHeaders`): the checks Node's parser
 * does not make (duplicate Host, Transfer-Encoding other than exactly `chunked`, too many
 * lines), and the two views built from the same pass — the header map authz sees and the
 * header list forwarded upstream (identity and hop-by-hop headers removed, framing and the
 * mesh's own headers set by us).
 */
import { normalizeHost } from './normalize';

export interface HeaderRules {
  /** Lowercase names (with '_' read as '-') removed from the client's request. */
  readonly stripExact: ReadonlySet<string>;
  readonly stripPrefixes: readonly string[];
  /** The mesh's headers, appended to every forwarded request: name, value, name, value… */
  readonly setPairs: readonly string[];
}

/** The client certificate header the mesh alone may set. */
export const XFCC = 'x-forwarded-client-cert';
/** The mesh's own header names: a client's copies never pass, whatever the front was told. */
export const MESH_HEADER_PREFIX = 'x-palisade-';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function compileHeaderRules(setHeaders: Record<string, string> = {}, stripHeaders: string[] = []): HeaderRules {
  const stripExact = new Set<string>([XFCC]);
  const stripPrefixes: string[] = [MESH_HEADER_PREFIX];
  for (const h of stripHeaders) {
    const name = h.toLowerCase().replaceAll('_', '-');
    if (name.endsWith('*')) {
      if (name.length === 1) throw new RangeError('stripHeaders: a bare "*" would strip every header');
      stripPrefixes.push(name.slice(0, -1));
    } else stripExact.add(name);
  }
  const setPairs: string[] = [];
  for (const [name, value] of Object.entries(setHeaders)) {
    if (!TOKEN.test(name)) throw new RangeError(`setHeaders: invalid header name ${JSON.stringify(name)}`);
    if (!FIELD_VALUE.test(value)) throw new RangeError(`setHeaders: invalid value for ${name}`);
    stripExact.add(name.toLowerCase().replaceAll('_', '-'));
    setPairs.push(name, value);
  }
  return { stripExact, stripPrefixes, setPairs };
}

/** `base` plus a connection's own mesh headers (e.g. XFCC naming that connection's caller). */
export function withSetHeaders(base: HeaderRules, setHeaders: Record<string, string> | undefined): HeaderRules {
  if (!setHeaders || Object.keys(setHeaders).length === 0) return base;
  const extra = compileHeaderRules(setHeaders);
  return {
    stripExact: new Set([...base.stripExact, ...extra.stripExact]),
    stripPrefixes: base.stripPrefixes,
    setPairs: [...base.setPairs, ...extra.setPairs],
  };
}

/**
 * Never forwarded as the client sent them: connection-scoped headers (RFC 9110 §7.6.1),
 * and the ones the front rewrites itself (Host, framing, Expect).
 */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'expect',
  'content-length',
  'host',
]);

/** Methods for which Node's client would invent chunked framing for an empty body. */
const BODYLESS_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

export interface InspectedHeaders {
  ok: true;
  /** normalized Host */
  host: string;
  /** Host exactly as sent (for the absolute-form comparison) */
  rawHost: string;
  contentLength: number;
  chunked: boolean;
  headers: Record<string, string[]>;
  forward: string[];
}

export interface HeaderRefusal {
  ok: false;
  reason: string;
}

function refusal(reason: string): HeaderRefusal {
  return { ok: false, reason };
}

export function isStripped(lower: string, rules: HeaderRules): boolean {
  const name = lower.includes('_') ? lower.replaceAll('_', '-') : lower;
  if (rules.stripExact.has(name)) return true;
  for (const p of rules.stripPrefixes) if (name.startsWith(p)) return true;
  return false;
}

/** Decimal digits only (Node's parser checks too; this keeps the rule in one visible place). */
function parseContentLength(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
  }
  return Number(v);
}

/**
 * Check and split the header lines of one request. `upgrade` is set for a WebSocket
 * upgrade that is to be tunnelled: its Connection/Upgrade pair is forwarded.
 */
export function inspectHeaders(
  raw: string[],
  method: string,
  httpVersion: string,
  rules: HeaderRules,
  maxHeaders: number,
  upgrade: boolean,
): InspectedHeaders | HeaderRefusal {
  if (raw.length > maxHeaders * 2) return refusal('too-many-headers');
  let rawHost: string | undefined;
  let contentLength = -1;
  let te: string | undefined;
  let connectionDrops: Set<string> | undefined;
  let upgrades = 0;
  let upgradeValue = '';
  const lowerNames: string[] = new Array(raw.length >> 1);
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    lowerNames[i >> 1] = lower;
    const value = raw[i + 1]!;
    switch (lower) {
      case 'host':
        if (rawHost !== undefined) return refusal('duplicate-host');
        rawHost = value;
        break;
      case 'content-length':
        if (contentLength !== -1) return refusal('duplicate-content-length');
        contentLength = parseContentLength(value);
        if (contentLength < 0) return refusal('invalid-content-length');
        break;
      case 'transfer-encoding':
        if (te !== undefined) return refusal('invalid-transfer-encoding');
        te = value;
        break;
      case 'connection':
        for (const part of value.split(',')) {
          const token = part.trim().toLowerCase();
          if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
          (connectionDrops ??= new Set()).add(token);
        }
        break;
      case 'upgrade':
        upgrades += 1;
        upgradeValue = value;
        break;
      default:
        break;
    }
  }
  if (upgrade && (upgrades !== 1 || upgradeValue.toLowerCase() !== 'websocket')) return refusal('upgrade-not-supported');
  if (te !== undefined) {
    if (contentLength !== -1) return refusal('content-length-with-transfer-encoding');
    if (te.toLowerCase() !== 'chunked') return refusal('invalid-transfer-encoding');
    if (httpVersion !== '1.1') return refusal('transfer-encoding-in-http10');
  }
  if (rawHost === undefined) return refusal('missing-host');
  const host = normalizeHost(rawHost);
  if (host === undefined) return refusal('invalid-host');

  const headers: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  headers.host = [host];
  const forward: string[] = ['Host', host];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = lowerNames[i >> 1]!;
    if (NOT_FORWARDED.has(lower) || lower.startsWith('proxy-')) continue;
    if (connectionDrops?.has(lower) || isStripped(lower, rules)) continue;
    const value = raw[i + 1]!;
    const list = headers[lower];
    if (list === undefined) headers[lower] = [value];
    else list.push(value);
    forward.push(raw[i]!, value);
  }
  const chunked = te !== undefined;
  if (chunked) {
    forward.push('Transfer-Encoding', 'chunked');
    headers['transfer-encoding'] = ['chunked'];
  } else if (contentLength !== -1) {
    const v = String(contentLength);
    forward.push('Content-Length', v);
    headers['content-length'] = [v];
  } else if (!BODYLESS_BY_DEFAULT.has(method)) {
    forward.push('Content-Length', '0');
  }
  if (upgrade) forward.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
  for (const p of rules.setPairs) forward.push(p);
  return { ok: true, host, rawHost, contentLength: contentLength === -1 ? 0 : contentLength, chunked, headers, forward };
}

/** Connection-scoped response headers: never relayed; Node frames the response it writes itself. */
const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

/** An upstream response's header lines, minus hop-by-hop ones (and those its Connection header names). */
export function relayedResponseHeaders(raw: string[], keepUpgrade: boolean): string[] {
  let drops: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'connection') continue;
    for (const part of raw[i + 1]!.split(',')) {
      const token = part.trim().toLowerCase();
      if (token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade') (drops ??= new Set()).add(token);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (keepUpgrade && (lower === 'connection' || lower === 'upgrade')) {
      out.push(raw[i]!, raw[i + 1]!);
      continue;
    }
    if (RESPONSE_HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || drops?.has(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** A response head written on a raw connection (101 for a tunnel, or an answer to an upgrade request). */
export function rawResponseHead(status: number, message: string, headers: string[], close: boolean): string {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (close) head += 'connection: close\r\n';
  return head + '\r\n';
}
