/**
 * Istio's string matching, compiled once into closures: exact `abc`, prefix `abc*` (matches `abc`
 * too), suffix `*abc`, presence `*` (any non-empty value). Path templates `{*}` / `{**}` follow
 * Envoy's uri_template matcher as Istio configures it.
 */

export type StringMatcher = (value: string) => boolean;

export type Wildcard =
  | { readonly kind: 'any' }
  | { readonly kind: 'exact' | 'prefix' | 'suffix'; readonly text: string };

/** Why `value` is not exact / `prefix*` / `*suffix` / `*`, or undefined. */
export function wildcardProblem(value: string): string | undefined {
  const stars = value.split('*').length - 1;
  if (stars === 0 || value === '*') return undefined;
  if (stars === 1 && (value.startsWith('*') || value.endsWith('*'))) return undefined;
  return `bad wildcard ${JSON.stringify(value)} (use "*" alone, "prefix*" or "*suffix": one "*", at the start or the end)`;
}

/** Assumes `wildcardProblem(value)` is undefined. */
export function parseWildcard(value: string): Wildcard {
  if (value === '*') return { kind: 'any' };
  if (value.startsWith('*')) return { kind: 'suffix', text: value.slice(1) };
  if (value.endsWith('*')) return { kind: 'prefix', text: value.slice(0, -1) };
  return { kind: 'exact', text: value };
}

/** OR of the patterns over a whole value. */
export function stringMatcher(patterns: readonly Wildcard[]): StringMatcher {
  let any = false;
  const exact: string[] = [];
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  for (const p of patterns) {
    if (p.kind === 'any') any = true;
    else if (p.kind === 'exact') exact.push(p.text);
    else if (p.kind === 'prefix') prefixes.push(p.text);
    else suffixes.push(p.text);
  }
  if (any) return (v) => v.length > 0;
  const exactSet = exact.length > 4 ? new Set(exact) : undefined;
  if (prefixes.length === 0 && suffixes.length === 0) {
    if (exactSet) return (v) => exactSet.has(v);
    if (exact.length === 1) {
      const only = exact[0]!;
      return (v) => v === only;
    }
    return (v) => exact.includes(v);
  }
  return (v) => {
    if (exactSet ? exactSet.has(v) : exact.includes(v)) return true;
    for (const p of prefixes) if (v.startsWith(p)) return true;
    for (const s of suffixes) if (v.endsWith(s)) return true;
    return false;
  };
}

const SPIFFE = 'spiffe://';

/** Like `stringMatcher`, over `value[from, to)` (so callers need not slice). */
export type RangeMatcher = (value: string, from: number, to: number) => boolean;

export function rangeMatcher(patterns: readonly Wildcard[]): RangeMatcher {
  if (patterns.some((p) => p.kind === 'any')) return (_, from, to) => to > from;
  const list = patterns as readonly { kind: 'exact' | 'prefix' | 'suffix'; text: string }[];
  return (v, from, to) => {
    const len = to - from;
    for (const p of list) {
      if (len < p.text.length) continue;
      if (p.kind === 'exact' ? len === p.text.length && v.startsWith(p.text, from) : p.kind === 'prefix' ? v.startsWith(p.text, from) : v.startsWith(p.text, to - p.text.length)) {
        return true;
      }
    }
    return false;
  };
}

/**
 * Principals are written without `spiffe://` (`cluster.local/ns/x/sa/y`) and matched against the
 * peer's full SPIFFE ID, like Istio's `StringMatcherWithPrefix(v, "spiffe://")`; `*` is any
 * authenticated peer.
 */
export function principalMatcher(patterns: readonly Wildcard[]): StringMatcher {
  if (patterns.some((p) => p.kind === 'any')) return (id) => id.length > 0;
  // Exact and prefix values become whole-ID patterns; a suffix needs the scheme checked apart.
  const whole = stringMatcher(
    patterns.flatMap((p): Wildcard[] => (p.kind === 'exact' || p.kind === 'prefix' ? [{ kind: p.kind, text: SPIFFE + p.text }] : [])),
  );
  const suffixes = patterns.flatMap((p) => (p.kind === 'suffix' ? [p.text] : []));
  if (suffixes.length === 0) return whole;
  return (id) => {
    if (whole(id)) return true;
    if (!id.startsWith(SPIFFE)) return false;
    for (const s of suffixes) if (id.length >= SPIFFE.length + s.length && id.endsWith(s)) return true;
    return false;
  };
}

/**
 * `(spiffe id) => boolean` for Istio `serviceAccounts` values `ns/sa` (or `sa`, in the policy's
 * namespace): the ID's path is exactly `/ns/<ns>/sa/<sa>` under any trust domain.
 */
export function serviceAccountMatcher(values: readonly string[], policyNamespace: string): StringMatcher {
  const tails = values.map((v) => {
    const slash = v.indexOf('/');
    return slash === -1 ? `/ns/${policyNamespace}/sa/${v}` : `/ns/${v.slice(0, slash)}/sa/${v.slice(slash + 1)}`;
  });
  return (id) => {
    if (!id.startsWith(SPIFFE)) return false;
    const tdEnd = id.indexOf('/', SPIFFE.length);
    if (tdEnd <= SPIFFE.length) return false;
    for (const t of tails) if (id.length === tdEnd + t.length && id.startsWith(t, tdEnd)) return true;
    return false;
  };
}

/** `(spiffe id) => boolean` for Istio `trustDomains` values (exact, prefix, suffix or `*`). */
export function trustDomainMatcher(patterns: readonly Wildcard[]): StringMatcher {
  const inner = rangeMatcher(patterns);
  return (id) => {
    if (!id.startsWith(SPIFFE)) return false;
    const tdEnd = id.indexOf('/', SPIFFE.length);
    return tdEnd > SPIFFE.length && inner(id, SPIFFE.length, tdEnd);
  };
}

/**
 * Index where the `:port` of an HTTP host starts (`example.com:8080` → 11, `[::1]:80` → 5), or
 * `host.length` if it has none.
 */
export function hostPortStart(host: string): number {
  let i = host.length - 1;
  while (i >= 0 && host.charCodeAt(i) >= 48 && host.charCodeAt(i) <= 57) i--;
  if (i < 0 || i === host.length - 1 || host.charCodeAt(i) !== 58) return host.length;
  const bracketed = i > 0 && host.charCodeAt(i - 1) === 93; // "]:port"
  if (!bracketed && host.lastIndexOf(':', i - 1) !== -1) return host.length; // a bare IPv6 literal
  return i;
}

/**
 * Istio `hosts` (case-insensitive: patterns are lowercased here, the request host arrives
 * lowercased). Istio matches the whole `:authority` exactly, port included
 * (pilot/pkg/security/authz/matcher HostMatcher), so a DENY on `example.com` does not catch
 * `example.com:8080` (Istio's best practices tell users to list `example.com:*` too). With
 * `portAgnostic` a pattern also matches the host with its `:port` removed. The caller asks for
 * it only where matching more can only deny more (DENY/AUDIT `hosts`, ALLOW `notHosts`): ALLOW
 * verdicts stay exactly Istio's, and a port in the Host header never dodges a DENY.
 */
export function hostMatcher(patterns: readonly Wildcard[], portAgnostic = true): StringMatcher {
  const lower = patterns.map((p): Wildcard => (p.kind === 'any' ? p : { kind: p.kind, text: p.text.toLowerCase() }));
  if (lower.some((p) => p.kind === 'any')) return (h) => h.length > 0;
  const exact = lower.filter((p) => p.kind === 'exact').map((p) => (p as { text: string }).text);
  const prefixes = lower.filter((p) => p.kind === 'prefix').map((p) => (p as { text: string }).text);
  const suffixes = lower.filter((p) => p.kind === 'suffix').map((p) => (p as { text: string }).text);
  return (h) => {
    const end = portAgnostic ? hostPortStart(h) : h.length;
    for (const e of exact) {
      if (h === e || (end === e.length && end < h.length && h.startsWith(e))) return true;
    }
    for (const p of prefixes) if (h.startsWith(p)) return true;
    for (const s of suffixes) {
      if (h.endsWith(s) || (end < h.length && end >= s.length && h.startsWith(s, end - s.length))) return true;
    }
    return false;
  };
}

export const MATCH_ONE_TEMPLATE = '{*}';
export const MATCH_ANY_TEMPLATE = '{**}';

/** RFC 3986 pchar as Istio's validation accepts in path-template segments. */
const TEMPLATE_LITERAL_RE = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

export function isPathTemplate(path: string): boolean {
  return path.includes(MATCH_ONE_TEMPLATE) || path.includes(MATCH_ANY_TEMPLATE);
}

/**
 * Why `path` is not a valid Istio `paths` value, or undefined: Istio's CheckValidPathTemplate
 * (`{` / `}` only as whole `{*}` / `{**}` segments, no operator after `{**}`, the other segments
 * non-empty pchar literals) plus Envoy's leading "/", and the wildcard rule for plain paths.
 */
export function pathProblem(path: string): string | undefined {
  const template = isPathTemplate(path);
  if (!template) {
    if (/[{}]/.test(path)) {
      return `path ${JSON.stringify(path)} has "{" or "}" outside a path template (templates are whole segments {*} or {**})`;
    }
    return wildcardProblem(path);
  }
  if (!path.startsWith('/')) return `path template ${JSON.stringify(path)} must start with "/"`;
  const segments = path.slice(1, path.length > 1 && path.endsWith('/') ? -1 : undefined).split('/');
  let seenAny = false;
  for (const seg of segments) {
    if (seg === MATCH_ONE_TEMPLATE || seg === MATCH_ANY_TEMPLATE) {
      if (seenAny) {
        return `path template ${JSON.stringify(path)}: {**} must be the last operator (no {*} or {**} after it)`;
      }
      seenAny = seg === MATCH_ANY_TEMPLATE;
      continue;
    }
    if (/[{}]/.test(seg)) {
      return `path template ${JSON.stringify(path)}: segment ${JSON.stringify(seg)} mixes {*}/{**} with other characters (an operator must be a whole segment)`;
    }
    if (!TEMPLATE_LITERAL_RE.test(seg)) {
      const why = seg === '' ? 'an empty segment' : seg.includes('*') ? '"*" outside {*} or {**}' : 'characters other than RFC 3986 pchar';
      return `path template ${JSON.stringify(path)}: segment ${JSON.stringify(seg)} has ${why}`;
    }
  }
  return undefined;
}

/**
 * A path template as a regular expression, built once. Like Envoy's uri_template: `{*}` is one or
 * more characters of one segment, `{**}` is zero or more characters including "/", the whole path
 * must match, and a trailing "/" in the template is required in the path. Envoy restricts both
 * globs to RFC 3986 pchar (no "=" or "*"); here they match any character but "/" (resp. any
 * character), so a DENY on `/admin/{**}` also catches `/admin/a=b`.
 */
export function pathTemplateRegExp(template: string): RegExp {
  const trailing = template.length > 1 && template.endsWith('/');
  const body = template.slice(1, trailing ? -1 : undefined);
  const parts = body.split('/').map((seg) => {
    if (seg === MATCH_ONE_TEMPLATE) return '[^/]+';
    if (seg === MATCH_ANY_TEMPLATE) return '.*';
    return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^/${parts.join('/')}${trailing ? '/' : ''}$`, 's');
}

/** `paths` values (validated): plain wildcards OR'd with templates. */
export function pathMatcher(values: readonly string[]): StringMatcher {
  const plain = values.filter((v) => !isPathTemplate(v)).map(parseWildcard);
  const templates = values.filter(isPathTemplate).map(pathTemplateRegExp);
  const plainMatch = plain.length > 0 ? stringMatcher(plain) : undefined;
  if (templates.length === 0) return plainMatch ?? (() => false);
  return (p) => {
    if (plainMatch?.(p)) return true;
    for (const re of templates) if (re.test(p)) return true;
    return false;
  };
}
