import { strict as assert } from 'node:assert';
import { admission, type Admission } from '../../../../agent/proxy/admission';
import { compilePolicyFiles, PolicyIndex, type AuthzRequest } from '../../../../common/policy';

const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const WEB = { namespace: 'default', labels: { app: 'web' } };

function policies(...docs: string[]): PolicyIndex {
  return new PolicyIndex(compilePolicyFiles([{ source: 'test.yaml', text: docs.join('---\n') }]));
}

function policy(name: string, action: 'ALLOW' | 'DENY', rule: string, selector = '{app: web}'): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
  selector: {matchLabels: ${selector}}
  action: ${action}
  rules:
  - ${rule}
`;
}

/** A connection to web:8080 from `principal` (null: a plaintext peer on the same node). */
function connection(principal: string | null = CLIENT): AuthzRequest {
  return {
    source: { ip: '10.0.1.10', ...(principal ? { principal, namespace: /\/ns\/([^/]+)\//.exec(principal)![1]! } : {}) },
    destination: { ip: '10.0.1.20', port: 8080, workload: WEB },
  };
}

const allowClient = policy('allow-client', 'ALLOW', `{from: [{source: {principals: ["${CLIENT.slice('spiffe://'.length)}"]}}]}`);
const denyDefault = policy('deny-default', 'DENY', '{from: [{source: {namespaces: [default]}}]}');
const allowGet = policy('allow-get', 'ALLOW', '{to: [{operation: {methods: [GET]}}]}');
const denyAdmin = policy('deny-admin', 'DENY', '{to: [{operation: {paths: ["/admin*"]}}]}');
const otherGet = policy('other-get', 'ALLOW', '{to: [{operation: {methods: [GET]}}]}', '{app: other}');

describe('admission', () => {
  const rows: Array<[string, PolicyIndex, AuthzRequest, Admission]> = [
    ['no policy selects the pod: tcp, allowed', policies(), connection(), { kind: 'tcp', verdict: { allowed: true, reason: 'no-policy' } }],
    ['an L4 ALLOW rule matches the peer: tcp, with policy and rule', policies(allowClient), connection(), { kind: 'tcp', verdict: { allowed: true, reason: 'allowed-by-policy', policy: 'default/allow-client', rule: 0 } }],
    ['an L4 ALLOW rule for another peer: deny', policies(allowClient), connection('spiffe://cluster.local/ns/default/sa/other'), { kind: 'deny', verdict: { allowed: false, reason: 'no-allow-policy-matched', policy: 'default/allow-client' } }],
    ['a plaintext peer against a principal rule: deny', policies(allowClient), connection(null), { kind: 'deny', verdict: { allowed: false, reason: 'no-allow-policy-matched', policy: 'default/allow-client' } }],
    ['an L4 DENY rule matches: deny, before any ALLOW', policies(allowClient, denyDefault), connection(), { kind: 'deny', verdict: { allowed: false, reason: 'denied-by-policy', policy: 'default/deny-default', rule: 0 } }],
    ['an ALLOW rule on HTTP methods: http, decided per request', policies(allowGet), connection(), { kind: 'http' }],
    ['a DENY rule on HTTP paths: http, even beside an L4 ALLOW', policies(allowClient, denyAdmin), connection(), { kind: 'http' }],
    ['an HTTP rule of a policy selecting another pod: tcp', policies(otherGet), connection(), { kind: 'tcp', verdict: { allowed: true, reason: 'no-policy' } }],
  ];
  for (const [name, index, request, expected] of rows) {
    it(name, () => assert.deepEqual(admission(request, index), expected));
  }
});
