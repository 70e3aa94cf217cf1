/** Builders shared by the policy tests: policies from YAML, requests with defaults. */
import { strict as assert } from 'node:assert';
import {
  authorize,
  compilePolicyFiles,
  parsePolicies,
  PolicyIndex,
  type AuthzAction,
  type AuthzRequest,
  type AuthzStage,
  type AuthzVerdict,
  type PolicyWorkload,
} from '../../../../common/policy';

/** The workload most tests authorize requests to: httpbin v1 in namespace foo. */
export const HTTPBIN: PolicyWorkload = { namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } };

export const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';

export interface RequestSpec {
  /** Full SPIFFE ID; null for a plaintext (no mTLS) peer. Default: SLEEP. */
  principal?: string | null;
  /** Default: the namespace in the principal. */
  namespace?: string;
  sourceIp?: string;
  destinationIp?: string;
  port?: number;
  workload?: PolicyWorkload;
  sni?: string;
  /** false: no HTTP part. */
  http?: boolean;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string[]>;
}

export function request(s: RequestSpec = {}): AuthzRequest {
  const principal = s.principal === null ? undefined : (s.principal ?? SLEEP);
  const namespace = s.namespace ?? (principal ? /\/ns\/([^/]+)\//.exec(principal)?.[1] : undefined);
  const req: AuthzRequest = {
    source: { ip: s.sourceIp ?? '10.1.0.5' },
    destination: { ip: s.destinationIp ?? '10.2.0.7', port: s.port ?? 8000, workload: s.workload ?? HTTPBIN },
  };
  if (principal !== undefined) req.source.principal = principal;
  if (namespace !== undefined) req.source.namespace = namespace;
  if (s.sni !== undefined) req.sni = s.sni;
  if (s.http !== false) {
    req.http = { method: s.method ?? 'GET', path: s.path ?? '/', host: s.host ?? 'httpbin.foo:8000', headers: s.headers ?? {} };
  }
  return req;
}

/** An index over the policies in `yaml` (which must be valid). */
export function indexOf(yaml: string, opts: { rootNamespace?: string } = {}): PolicyIndex {
  return new PolicyIndex(compilePolicyFiles([{ source: 'test.yaml', text: yaml }], opts), opts);
}

/** One AuthorizationPolicy document, `foo/<name>`, selecting every workload of foo unless `selector`. */
export function authzPolicy(opts: { name?: string; namespace?: string; action?: AuthzAction; rules?: string[]; selector?: string }): string {
  const lines = [
    'apiVersion: security.istio.io/v1',
    'kind: AuthorizationPolicy',
    `metadata: {name: ${opts.name ?? 'p'}, namespace: ${opts.namespace ?? 'foo'}}`,
    'spec:',
    `  action: ${opts.action ?? 'ALLOW'}`,
  ];
  if (opts.selector) lines.push(`  selector: {matchLabels: ${opts.selector}}`);
  if (opts.rules) lines.push('  rules:', ...opts.rules.map((r) => `  - ${r}`));
  return `${lines.join('\n')}\n`;
}

/**
 * Whether a single rule (YAML flow style) matches the request: the rule is put in a policy of
 * `action` and the verdict read back (ALLOW: allowed; DENY: denied; AUDIT: audited).
 */
export function ruleMatches(rule: string, spec: RequestSpec, action: AuthzAction = 'ALLOW', stage: AuthzStage = 'request'): boolean {
  const v = authorize(request(spec), indexOf(authzPolicy({ action, rules: [rule] })), stage);
  if (action === 'ALLOW') return v.allowed;
  if (action === 'DENY') return !v.allowed;
  return v.audit !== undefined;
}

export function decide(yaml: string, spec: RequestSpec, stage: AuthzStage = 'request', opts: { rootNamespace?: string } = {}): AuthzVerdict {
  return authorize(request(spec), indexOf(yaml, opts), stage);
}

/** The problems `text` is rejected for (fails if it is accepted); each one line. */
export function problemsOf(text: string, source = 'p.yaml'): string[] {
  const r = parsePolicies(text, source);
  assert.notEqual(r.problems.length, 0, `expected problems for:\n${text}`);
  assert.deepEqual(r.policies, [], 'no policies when there are problems');
  for (const p of r.problems) assert.ok(!p.includes('\n'), `problem is not one line: ${JSON.stringify(p)}`);
  return r.problems;
}
