/**
 * Figures for policy evaluation (not a test): ns per authorize() / authorizeEgress() call over a
 * realistic set of 50 policies, for a few request shapes, after warm-up.
 * Run: node dist/test/bench/policy-eval.js [iterations, default 1000000]
 */
import {
  authorize,
  authorizeEgress,
  compilePolicyFiles,
  PolicyIndex,
  type AuthzRequest,
  type AuthzStage,
  type EgressRequest,
  type PolicyWorkload,
} from '../../common/policy';

const WEB: PolicyWorkload = { namespace: 'shop', labels: { app: 'web', version: 'v1', tier: 'frontend' } };

function authzDoc(name: string, namespace: string, body: string): string {
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${body}`;
}

/** 50 policies: 8 select shop/web (DENY, ALLOW, AUDIT, one mesh-wide, one egress), the rest other workloads. */
function policies(): string {
  const docs: string[] = [
    authzDoc('deny-admin', 'shop', `  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {notPrincipals: ["cluster.local/ns/ops/sa/admin"]}}]
    to: [{operation: {paths: ["/admin*", "/internal/{**}"]}}]
  - to: [{operation: {methods: [TRACE, CONNECT]}}]
`),
    authzDoc('deny-debug-header', 'shop', `  selector: {matchLabels: {app: web, tier: frontend}}
  action: DENY
  rules:
  - when:
    - key: request.headers[x-debug]
      values: ["*"]
    - key: source.namespace
      notValues: [shop, ops]
`),
    authzDoc('allow-frontend-read', 'shop', `  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/shop/sa/gateway", "cluster.local/ns/shop/sa/frontend", "cluster.local/ns/shop/sa/mobile-*"]}
    to:
    - operation: {methods: [GET, HEAD], paths: ["/api/*", "/static/*", "/healthz"]}
`),
    authzDoc('allow-checkout', 'shop', `  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {namespaces: [checkout, payments]}}]
    to: [{operation: {methods: [POST, PUT], paths: ["/api/orders/{*}", "/api/cart"]}}]
    when: [{key: "request.headers[content-type]", values: ["application/json*"]}]
`),
    authzDoc('allow-ops', 'shop', `  selector: {matchLabels: {version: v1}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/ops/*"], ipBlocks: ["10.0.0.0/8"]}}]
`),
    authzDoc('audit-writes', 'shop', `  selector: {matchLabels: {app: web}}
  action: AUDIT
  rules:
  - to: [{operation: {methods: [POST, PUT, DELETE, PATCH]}}]
`),
    authzDoc('mesh-deny-blocked-nets', 'istio-system', `  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:bad::/48"]}}]
`),
    `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: web-egress, namespace: shop}\nspec:
  selector: {matchLabels: {app: web}}
  allow:
  - hosts: [api.stripe.com, "*.googleapis.com", api.github.com]
    ports: [443]
  - cidrs: [10.20.0.0/16]
    ports: [5432, 6379]
`,
  ];
  for (let i = 0; docs.length < 50; i++) {
    const ns = `team-${i % 10}`;
    const action = i % 3 === 0 ? 'DENY' : 'ALLOW';
    docs.push(
      authzDoc(`svc-${i}`, ns, `  selector: {matchLabels: {app: svc-${i}}}
  action: ${action}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/${ns}/sa/client-${i}"], namespaces: [${ns}]}}]
    to: [{operation: {methods: [GET, POST], paths: ["/v${i}/*"], ports: ["8080"]}}]
    when: [{key: "request.headers[x-tenant]", values: ["t-${i}", "t-${i + 1}"]}]
`),
    );
  }
  return docs.join('---\n');
}

function httpRequest(principal: string | undefined, method: string, path: string, headers: Record<string, string[]> = {}): AuthzRequest {
  const namespace = principal ? /\/ns\/([^/]+)\//.exec(principal)?.[1] : undefined;
  return {
    source: { ...(principal ? { principal } : {}), ...(namespace ? { namespace } : {}), ip: '10.1.4.20' },
    destination: { ip: '10.1.7.3', port: 8080, workload: WEB },
    http: { method, path, host: 'web.shop.svc.cluster.local:8080', headers: { 'user-agent': ['bench/1.0'], accept: ['*/*'], ...headers } },
  };
}

interface Case {
  name: string;
  run: () => boolean;
}

function measure(c: Case, iterations: number): void {
  const warm = Math.min(200_000, iterations);
  let sink = 0;
  for (let i = 0; i < warm; i++) if (c.run()) sink++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) if (c.run()) sink++;
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  const ops = Math.round(1e9 / ns);
  process.stdout.write(`${c.name.padEnd(62)} ${ns.toFixed(0).padStart(6)} ns/op  ${ops.toLocaleString('en-US').padStart(12)} ops/s  (${sink > 0 ? 'allowed' : 'denied'})\n`);
}

function main(): void {
  const iterations = Number(process.argv[2] ?? 1_000_000);
  const set = compilePolicyFiles([{ source: 'bench.yaml', text: policies() }]);
  const index = new PolicyIndex(set);
  const wp = index.policies(WEB);
  process.stdout.write(
    `${set.authorization.length + set.egress.length} policies; shop/web is selected by ${wp.deny.length} DENY, ${wp.allow.length} ALLOW, ${wp.audit.length} AUDIT, ${wp.egress.length} egress; ${iterations.toLocaleString('en-US')} iterations each, node ${process.version}\n`,
  );

  const frontend = 'spiffe://cluster.local/ns/shop/sa/frontend';
  const checkout = 'spiffe://cluster.local/ns/checkout/sa/api';
  const authz = (req: AuthzRequest, stage: AuthzStage = 'request') => (): boolean => authorize(req, index, stage).allowed;
  const allowedGet = httpRequest(frontend, 'GET', '/api/items');
  const perRequestWorkload = (): boolean =>
    // destination-authz.ts rebuilds {namespace, labels} per request: the index still hits its cache (keyed by the labels object).
    authorize({ ...allowedGet, destination: { ...allowedGet.destination, workload: { namespace: WEB.namespace, labels: WEB.labels } } }, index, 'request').allowed;
  const egress = (req: EgressRequest) => (): boolean => authorizeEgress(req, index).allowed;

  const cases: Case[] = [
    { name: 'request: GET /api/items from frontend (2nd ALLOW policy allows)', run: authz(allowedGet) },
    { name: 'request: same, workload object rebuilt per call', run: perRequestWorkload },
    { name: 'request: POST /api/orders/42 json from checkout (allowed + audit)', run: authz(httpRequest(checkout, 'POST', '/api/orders/42', { 'content-type': ['application/json; charset=utf-8'] })) },
    { name: 'request: GET /admin/users from frontend (DENY rule 0)', run: authz(httpRequest(frontend, 'GET', '/admin/users')) },
    { name: 'request: DELETE /api/x from plaintext (no ALLOW matches)', run: authz(httpRequest(undefined, 'DELETE', '/api/x')) },
    { name: 'tcp: frontend, no HTTP (ALLOW rules with HTTP fields dropped)', run: authz({ ...allowedGet, http: undefined } as AuthzRequest, 'tcp') },
    { name: 'connection: frontend, HTTP not yet read', run: authz({ ...allowedGet, http: undefined } as AuthzRequest, 'connection') },
    { name: 'egress: api.stripe.com:443 resolving to the destination', run: egress({ source: WEB, destination: { ip: '203.0.113.5', port: 443 }, host: 'api.stripe.com', resolved: ['203.0.113.5'] }) },
    { name: 'egress: 10.20.1.1:5432 (CIDR)', run: egress({ source: WEB, destination: { ip: '10.20.1.1', port: 5432 } }) },
  ];
  for (const c of cases) measure(c, iterations);
}

main();
