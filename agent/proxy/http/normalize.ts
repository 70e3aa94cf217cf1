/**
 * The one normalization of a request target and host, done before authz; the request is
 * forwarded in exactly this form, so the policy and the upstream read the same path.
 *
 * Path rules (Istio's strongest documented normalization, DECODE_AND_MERGE_SLASHES, plus
 * the rejections Envoy applies): reject NUL and control bytes (raw or escaped); decode
 * escapes of unreserved characters exactly once; decode %2F and %5C to a slash; treat `\`
 * as `/`; merge repeated slashes; resolve `.` and `..` (RFC 3986 remove_dot_segments, never
 * above root); drop a fragment; reject what still reads differently in some backend: `%25`
 * (double encoding) and `;` or `%3B` (path parameters, which Tomcat-style servers strip); uppercase
 * the escapes that remain. The query is kept as sent and never used for path matching.
 */

export type TargetResult =
  | { ok: true; path: string; query: string; target: string }
  | { ok: false; status: 400; reason: string };

/** Byte classes of a raw path character (ASCII only; anything above is refused). */
const REJECT = 0;
const PLAIN = 1;
const SLASH = 2;
const BACKSLASH = 3;
const PERCENT = 4;
const SEMICOLON = 5;
const DOT = 6;

const PATH_CLASS = new Uint8Array(128);
const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
  if (/[A-Za-z0-9\-_~!$&'()*+,=:@]/.test(ch)) PATH_CLASS[c] = PLAIN;
}
PATH_CLASS[0x2e] = DOT;
PATH_CLASS[0x2f] = SLASH;
PATH_CLASS[0x5c] = BACKSLASH;
PATH_CLASS[0x25] = PERCENT;
PATH_CLASS[0x3b] = SEMICOLON;

/** '%XX' with uppercase hex for every byte value. */
const ESCAPED: string[] = [];
for (let v = 0; v < 256; v++) ESCAPED.push('%' + v.toString(16).toUpperCase().padStart(2, '0'));

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

function fail(reason: string): { ok: false; status: 400; reason: string } {
  return { ok: false, status: 400, reason };
}

/**
 * True when `p` (starting with '/') is already in normal form: only plain characters and
 * single slashes, no escapes, no dot segments. The common case allocates nothing.
 */
function isNormal(p: string): boolean {
  let prev = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    const cls = c < 128 ? PATH_CLASS[c] : REJECT;
    if (cls === PLAIN) {
      prev = c;
      continue;
    }
    if (cls === SLASH) {
      if (prev === 0x2f) return false;
    } else if (cls === DOT) {
      if (prev === 0x2f) {
        const n = p.charCodeAt(i + 1); // NaN past the end
        if (!(n >= 0) || n === 0x2f) return false;
        if (n === 0x2e) {
          const nn = p.charCodeAt(i + 2);
          if (!(nn >= 0) || nn === 0x2f) return false;
        }
      }
    } else {
      return false;
    }
    prev = c;
  }
  return true;
}

/** An empty segment (a repeated slash) and '.' vanish; '..' removes the last one, never above root. */
function pushSegment(segs: string[], seg: string): void {
  if (seg === '..') segs.pop();
  else if (seg !== '' && seg !== '.') segs.push(seg);
}

/** Decode once, merge slashes, remove dot segments — in one pass over `p` (which starts with '/' or '\'). */
function normalizeSlow(p: string): { path: string } | { reason: string } {
  const segs: string[] = [];
  let seg = '';
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    const cls = c < 128 ? PATH_CLASS[c] : REJECT;
    if (cls === PLAIN || cls === DOT) seg += p[i];
    else if (cls === SLASH || cls === BACKSLASH) {
      pushSegment(segs, seg);
      seg = '';
    }
    else if (cls === PERCENT) {
      const h = hexValue(p.charCodeAt(i + 1));
      const l = hexValue(p.charCodeAt(i + 2));
      if (h < 0 || l < 0) return { reason: 'invalid-percent-encoding' };
      const v = (h << 4) | l;
      i += 2;
      if (v === 0) return { reason: 'nul-byte' };
      if (v < 0x20 || v === 0x7f) return { reason: 'control-character' };
      if (v === 0x25) return { reason: 'double-encoding' };
      if (v === 0x3b) return { reason: 'path-parameter' };
      if (v === 0x2f || v === 0x5c) {
        pushSegment(segs, seg);
        seg = '';
      } else if (v < 128 && UNRESERVED[v] === 1) seg += String.fromCharCode(v);
      else seg += ESCAPED[v];
    } else if (cls === SEMICOLON) return { reason: 'path-parameter' };
    else if (c === 0) return { reason: 'nul-byte' };
    else if (c < 0x20 || c === 0x7f) return { reason: 'control-character' };
    else return { reason: 'invalid-path-character' };
  }
  const trailing = seg === '' || seg === '.' || seg === '..';
  pushSegment(segs, seg);
  if (segs.length === 0) return { path: '/' };
  const joined = '/' + segs.join('/');
  return { path: trailing ? joined + '/' : joined };
}

function checkQuery(q: string): boolean {
  for (let i = 1; i < q.length; i++) {
    const c = q.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

function normalizeOrigin(rest: string): TargetResult {
  const hash = rest.indexOf('#');
  const noFragment = hash < 0 ? rest : rest.slice(0, hash);
  const q = noFragment.indexOf('?');
  const rawPath = q < 0 ? noFragment : noFragment.slice(0, q);
  const query = q < 0 ? '' : noFragment.slice(q);
  if (query !== '' && !checkQuery(query)) return fail('invalid-query');
  let path: string;
  if (rawPath.charCodeAt(0) === 0x2f && isNormal(rawPath)) path = rawPath;
  else {
    const r = normalizeSlow(rawPath);
    if ('reason' in r) return fail(r.reason);
    path = r.path;
  }
  return { ok: true, path, query, target: query === '' ? path : path + query };
}

/**
 * Normalize a request target (as on the request line) for authz and forwarding.
 * Origin-form `/p?q`; absolute-form `http://host/p` only when its authority is the Host
 * header's (case-insensitive, default port 80 ignored), forwarded as origin-form;
 * asterisk-form `*` (the caller allows it for OPTIONS only). Anything else is refused.
 */
export function normalizeTarget(rawTarget: string, hostHeader: string | undefined): TargetResult {
  const first = rawTarget.charCodeAt(0);
  if (first === 0x2f || first === 0x5c) return normalizeOrigin(rawTarget);
  if (rawTarget === '*') return { ok: true, path: '*', query: '', target: '*' };
  const scheme = rawTarget.slice(0, 8).toLowerCase();
  if (scheme.startsWith('http://')) {
    const rest = rawTarget.slice(7);
    let end = rest.length;
    for (let i = 0; i < rest.length; i++) {
      const c = rest.charCodeAt(i);
      if (c === 0x2f || c === 0x3f || c === 0x23 || c === 0x5c) {
        end = i;
        break;
      }
    }
    const authority = rest.slice(0, end);
    if (authority.includes('@')) return fail('absolute-form-userinfo');
    const a = normalizeHost(authority);
    if (a === undefined) return fail('invalid-host');
    const h = normalizeHost(hostHeader);
    if (h === undefined || withoutDefaultPort(a) !== withoutDefaultPort(h)) return fail('absolute-form-host-mismatch');
    const remainder = rest.slice(end);
    const c = remainder.charCodeAt(0);
    return normalizeOrigin(c === 0x2f || c === 0x5c ? remainder : '/' + remainder);
  }
  if (scheme === 'https://') return fail('absolute-form-scheme');
  return fail('invalid-request-target');
}

function withoutDefaultPort(host: string): string {
  return host.endsWith(':80') ? host.slice(0, -3) : host;
}

/**
 * `Host` (or an absolute-form authority) → lowercase `name[:port]` with one trailing dot
 * removed, or undefined when it is not a plain DNS name, IPv4 or [IPv6] literal with an
 * optional decimal port 1–65535.
 */
export function normalizeHost(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.length === 0 || raw.length > 262) return undefined;
  const s = raw.toLowerCase();
  let name: string;
  let rest: string;
  if (s.charCodeAt(0) === 0x5b) {
    const close = s.indexOf(']');
    if (close < 3) return undefined;
    for (let i = 1; i < close; i++) {
      const c = s.charCodeAt(i);
      if (!(c === 0x3a || c === 0x2e || (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return undefined;
    }
    if (!s.slice(1, close).includes(':')) return undefined;
    name = s.slice(0, close + 1);
    rest = s.slice(close + 1);
  } else {
    const colon = s.indexOf(':');
    name = colon < 0 ? s : s.slice(0, colon);
    rest = colon < 0 ? '' : s.slice(colon);
    if (name.endsWith('.')) name = name.slice(0, -1);
    if (name.length === 0 || name.length > 253) return undefined;
    let labelLength = 0;
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c === 0x2e) {
        if (labelLength === 0) return undefined;
        labelLength = 0;
      } else if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) labelLength += 1;
      else return undefined;
    }
    if (labelLength === 0) return undefined;
  }
  if (rest === '') return name;
  if (rest.charCodeAt(0) !== 0x3a || rest.length < 2 || rest.length > 6) return undefined;
  for (let i = 1; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const port = Number(rest.slice(1));
  if (port < 1 || port > 65535) return undefined;
  return `${name}:${port}`;
}
