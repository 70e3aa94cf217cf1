/**
 * Compiled conditions of AuthorizationPolicy rules, one per field (`principals`, `notPaths`,
 * `when: request.headers[x]`, ...). Each is a closure over values validated and pre-processed
 * at compile time; testing one does no parsing, no regex construction and no allocation.
 *
 * Negative fields (`notX`, `notValues`) are "the value matches none of these", so an absent value
 * (no mTLS peer, no header, no JWT) satisfies them, as Envoy's `not_rule` over a failed match does.
 */
import type { EvalContext } from './eval-context';
import { cidrContains, type Cidr, type IpAddr } from './ip';
import {
  hostMatcher,
  pathMatcher,
  principalMatcher,
  serviceAccountMatcher,
  stringMatcher,
  trustDomainMatcher,
  type StringMatcher,
  type Wildcard,
} from './string-match';
import type { Condition } from './types';

type Getter = (ctx: EvalContext) => string | undefined;

function stringCondition(http: boolean, get: Getter, match: StringMatcher, negate: boolean): Condition {
  if (negate) {
    return {
      http,
      test: (ctx) => {
        const v = get(ctx);
        return v === undefined || !match(v);
      },
    };
  }
  return {
    http,
    test: (ctx) => {
      const v = get(ctx);
      return v !== undefined && match(v);
    },
  };
}

const getPrincipal: Getter = (ctx) => ctx.principal;
const getNamespace: Getter = (ctx) => ctx.namespace;
const getSni: Getter = (ctx) => (ctx.req.sni === '' ? undefined : ctx.req.sni);
const getHost: Getter = (ctx) => ctx.req.http?.host;
const getMethod: Getter = (ctx) => ctx.req.http?.method;
const getPath: Getter = (ctx) => ctx.req.http?.path;

/** `principals` / `source.principal`: values written without `spiffe://`. */
export function principalsCondition(values: readonly Wildcard[], negate: boolean): Condition {
  return stringCondition(false, getPrincipal, principalMatcher(values), negate);
}

/** `namespaces` / `source.namespace`: the peer's namespace, so mTLS only. */
export function namespacesCondition(values: readonly Wildcard[], negate: boolean): Condition {
  return stringCondition(false, getNamespace, stringMatcher(values), negate);
}

/** `serviceAccounts` / `source.serviceAccount`: `ns/sa`, or `sa` in the policy's namespace. */
export function serviceAccountsCondition(values: readonly string[], policyNamespace: string, negate: boolean): Condition {
  return stringCondition(false, getPrincipal, serviceAccountMatcher(values, policyNamespace), negate);
}

/** `trustDomains` / `source.trustDomain`. */
export function trustDomainsCondition(values: readonly Wildcard[], negate: boolean): Condition {
  return stringCondition(false, getPrincipal, trustDomainMatcher(values), negate);
}

/** `connection.sni` (case-sensitive, like Envoy's `requested_server_name`). */
export function sniCondition(values: readonly Wildcard[], negate: boolean): Condition {
  return stringCondition(false, getSni, stringMatcher(values), negate);
}

/** `hosts`: case-insensitive; port-agnostic only where that denies more (see `hostMatcher`). */
export function hostsCondition(values: readonly Wildcard[], negate: boolean, portAgnostic: boolean): Condition {
  return stringCondition(true, getHost, hostMatcher(values, portAgnostic), negate);
}

/** `methods` (case-sensitive, like Envoy's `:method` header match). */
export function methodsCondition(values: readonly Wildcard[], negate: boolean): Condition {
  return stringCondition(true, getMethod, stringMatcher(values), negate);
}

/** `paths`: the normalized path without query; wildcards or `{*}` / `{**}` templates. */
export function pathsCondition(values: readonly string[], negate: boolean): Condition {
  return stringCondition(true, getPath, pathMatcher(values), negate);
}

type IpGetter = (ctx: EvalContext) => IpAddr | undefined;

const getSourceIp: IpGetter = (ctx) => ctx.sourceIp();
const getDestinationIp: IpGetter = (ctx) => ctx.destinationIp();

function ipCondition(get: IpGetter, cidrs: readonly Cidr[], negate: boolean): Condition {
  const inAny = (ip: IpAddr): boolean => {
    for (const c of cidrs) if (cidrContains(c, ip)) return true;
    return false;
  };
  return {
    http: false,
    test: negate
      ? (ctx) => {
          const ip = get(ctx);
          return ip === undefined || !inAny(ip);
        }
      : (ctx) => {
          const ip = get(ctx);
          return ip !== undefined && inAny(ip);
        },
  };
}

/**
 * `ipBlocks`, `remoteIpBlocks`, `source.ip`, `remote.ip`: the connection's source address.
 * Palisade trusts no X-Forwarded-For or PROXY protocol, so the "remote" address is the source.
 */
export function sourceIpCondition(cidrs: readonly Cidr[], negate: boolean): Condition {
  return ipCondition(getSourceIp, cidrs, negate);
}

/** `destination.ip`. */
export function destinationIpCondition(cidrs: readonly Cidr[], negate: boolean): Condition {
  return ipCondition(getDestinationIp, cidrs, negate);
}

/** `ports` / `destination.port`. */
export function portsCondition(ports: readonly number[], negate: boolean): Condition {
  const set = new Set(ports);
  return {
    http: false,
    test: negate ? (ctx) => !set.has(ctx.req.destination.port) : (ctx) => set.has(ctx.req.destination.port),
  };
}

/**
 * `requestPrincipals`, `request.auth.principal|audiences|presenter|claims[...]`. Palisade has no
 * JWT authentication, so these are always absent (Istio without a RequestAuthentication): values
 * never match (not even `*`), notValues always match.
 */
export function requestAuthCondition(negate: boolean): Condition {
  return { http: true, test: negate ? () => true : () => false };
}

/** The `request.headers[...]` conditions (kept aside, so every condition keeps one object shape). */
const headerConditions = new WeakSet<Condition>();

/**
 * `request.headers[name]`. A header sent several times is a deliberate, fail-safe deviation from
 * Envoy (which matches the values joined with ","): in a DENY rule the condition holds if ANY
 * value satisfies it, in an ALLOW or AUDIT rule only if EVERY value does, so repeating a header
 * can neither dodge a DENY nor sneak past an ALLOW. A single value behaves exactly as in Istio.
 * `*` is presence (Envoy's `present_match`), so it matches a header sent with an empty value.
 */
export function headerCondition(name: string, values: readonly Wildcard[], negate: boolean, everyValue: boolean): Condition {
  const presence = values.some((v) => v.kind === 'any');
  const match = presence ? () => true : stringMatcher(values);
  const holds = negate ? (v: string) => !match(v) : match;
  const condition: Condition = {
    http: true,
    test: (ctx) => {
      const headers = ctx.req.http?.headers;
      const list = headers === undefined ? undefined : headers[name];
      if (!Array.isArray(list) || list.length === 0) return negate; // absent: only a negative condition holds
      if (everyValue) {
        for (const v of list) if (!holds(v)) return false;
        return true;
      }
      for (const v of list) if (holds(v)) return true;
      return false;
    },
  };
  headerConditions.add(condition);
  return condition;
}

/** Whether the condition reads request headers (flow records do not keep them: a replay cannot decide it). */
export function readsHeaders(c: Condition): boolean {
  return headerConditions.has(c);
}
