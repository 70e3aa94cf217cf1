/**
 * Validating the string values of AuthorizationPolicy fields (wildcards, CIDRs, ports, service
 * accounts, trust domains); each reports its problems on the value's line and returns undefined
 * if any value was bad.
 */
import { parseCidr, type Cidr } from './ip';
import { parseWildcard, wildcardProblem, type Wildcard } from './string-match';
import type { Item, NodeReader } from '../yaml-reader';

/** Principals may be written with `spiffe://`; compiled without it. */
export function stripSpiffe(v: Item<string>): Item<string> {
  return v.value.startsWith('spiffe://') ? { value: v.value.slice('spiffe://'.length), line: v.line } : v;
}

export function wildcards(r: NodeReader, values: Item<string>[], path: string): Wildcard[] | undefined {
  let ok = true;
  for (const v of values) {
    const problem = wildcardProblem(v.value);
    if (problem) {
      r.fail(v.line, path, problem);
      ok = false;
    }
  }
  return ok ? values.map((v) => parseWildcard(v.value)) : undefined;
}

export function cidrs(r: NodeReader, values: Item<string>[], path: string): Cidr[] | undefined {
  const out: Cidr[] = [];
  for (const v of values) {
    const parsed = parseCidr(v.value);
    if ('problem' in parsed) r.fail(v.line, path, `${JSON.stringify(v.value)} ${parsed.problem}`);
    else out.push(parsed.cidr);
  }
  return out.length === values.length ? out : undefined;
}

export function ports(r: NodeReader, values: Item<string>[], path: string): number[] | undefined {
  const out: number[] = [];
  for (const v of values) {
    const n = Number(v.value);
    if (/^[0-9]{1,5}$/.test(v.value) && n >= 1 && n <= 65535) out.push(n);
    else r.fail(v.line, path, `${JSON.stringify(v.value)} is not a port (a number from 1 to 65535${v.value.includes('*') ? '; ports take no wildcards' : ''})`);
  }
  return out.length === values.length ? out : undefined;
}

/** Istio's CheckServiceAccount: `sa` or `ns/sa`, no wildcard, at most 16 values of at most 320 characters. */
export function serviceAccounts(r: NodeReader, values: Item<string>[], path: string): string[] | undefined {
  let ok = true;
  if (values.length > 16) {
    r.fail(values[16]!.line, path, 'at most 16 service accounts (Istio\'s limit; use namespaces or principals for more)');
    ok = false;
  }
  for (const v of values) {
    const parts = v.value.split('/');
    const bad =
      v.value.includes('*') ? 'takes no wildcards (use principals or namespaces for patterns)'
      : parts.length > 2 || parts.some((p) => p === '') ? 'must be "serviceaccount" or "namespace/serviceaccount"'
      : v.value.length > 320 ? 'is longer than 320 characters'
      : undefined;
    if (bad) {
      r.fail(v.line, path, `${JSON.stringify(v.value)} ${bad}`);
      ok = false;
    }
  }
  return ok ? values.map((v) => v.value) : undefined;
}

/** Istio's CheckTrustDomainValues: wildcard rules and no "/". */
export function trustDomains(r: NodeReader, values: Item<string>[], path: string): Wildcard[] | undefined {
  let ok = true;
  for (const v of values) {
    if (v.value.includes('/')) {
      r.fail(v.line, path, `trust domain ${JSON.stringify(v.value)} must not contain "/" (give the trust domain alone, like cluster.local)`);
      ok = false;
    }
  }
  const w = wildcards(r, values, path);
  return ok ? w : undefined;
}
