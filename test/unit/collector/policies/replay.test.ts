import { strict as assert } from 'node:assert';
import type { StoredFlow } from '../../../../common/flows-api';
import type { FlowEndpoint, FlowRecord } from '../../../../common/flow';
import { compilePolicyFiles, type PolicySet } from '../../../../common/policy';
import { replayFlows } from '../../../../collector/policies/replay';

const LABELS: Record<string, Record<string, string>> = {
  'shop/web': { app: 'web', 'palisade.dev/workload': 'web' },
  'shop/api': { app: 'api', 'palisade.dev/workload': 'api' },
  'default/sleep': { app: 'sleep', 'palisade.dev/workload': 'sleep' },
};
const workloadLabels = (namespace: string, name: string): Record<string, string> | undefined => LABELS[`${namespace}/${name}`];

const set = (...docs: string[]): PolicySet => compilePolicyFiles([{ source: 'p.yaml', text: docs.join('---\n') }]);

const authz = (name: string, body: string): string =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  selector: {matchLabels: {app: api}}\n${body}`;
const egress = (name: string, body: string): string =>
  `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  selector: {matchLabels: {palisade.dev/workload: web}}\n${body}`;

const WEB_SA = 'cluster.local/ns/shop/sa/web';
const SLEEP_SA = 'cluster.local/ns/default/sa/sleep';
const ALLOW_BOTH = authz('api-allow', `  rules:\n  - from: [{source: {principals: [${WEB_SA}, ${SLEEP_SA}]}}]\n`);
const ALLOW_WEB = authz('api-allow', `  rules:\n  - from: [{source: {principals: [${WEB_SA}]}}]\n`);

let nextId = 1;

function endpoint(ns: string, name: string, ip: string, port?: number): FlowEndpoint {
  return { ip, ...(port !== undefined ? { port } : {}), workload: name, namespace: ns, identity: `spiffe://cluster.local/ns/${ns}/sa/${name}` };
}
const WEB = endpoint('shop', 'web', '10.0.1.11');
const SLEEP = endpoint('default', 'sleep', '10.0.1.12');
const API = endpoint('shop', 'api', '10.0.2.10', 8080);

function flow(over: Partial<FlowRecord>): StoredFlow {
  return {
    id: nextId++,
    time: '2025-03-01T10:00:00.000Z',
    node: 'node-2',
    direction: 'inbound',
    source: WEB,
    destination: API,
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    mtls: true,
    bytesSent: 0,
    bytesReceived: 0,
    durationMs: 1,
    ...over,
  };
}
const http = (method: string, path: string, over: Partial<FlowRecord> = {}): StoredFlow =>
  flow({ protocol: 'http', http: { method, path, status: 200 }, destination: { ...API, host: 'api.shop:8080' }, ...over });

describe('replayFlows', () => {
  describe('inbound (AuthorizationPolicy)', () => {
    nextId = 1;
    const flows = [
      flow({}), // 1 web
      flow({ source: SLEEP }), // 2 sleep
      flow({ source: SLEEP }), // 3 sleep
      flow({}), // 4 web
      flow({ direction: 'outbound', source: SLEEP }), // 5 the source side's record: skipped
      flow({ source: SLEEP, verdict: 'error', reason: 'upstream-failed' }), // 6 skipped
      http('GET', '/x', { source: SLEEP, verdict: 'denied', reason: 'bad-request' }), // 7 not a policy's denial: skipped
      flow({ source: { ip: '10.9.9.9' }, mtls: false, verdict: 'denied', reason: 'no-allow-policy-matched', policy: 'shop/api-allow' }), // 8 plaintext
      http('GET', '/orders', { source: SLEEP }), // 9
      http('POST', '/admin', {}), // 10
    ];

    it('a stricter candidate lists exactly the flows it would deny', () => {
      const r = replayFlows({ flows, current: set(ALLOW_BOTH), candidate: set(ALLOW_WEB), workloadLabels });
      assert.deepEqual(r, {
        flows: 7,
        changed: [
          { source: 'default/sleep', destination: 'shop/api', from: 'allowed', to: 'denied', count: 2, reason: 'no-allow-policy-matched', policy: 'shop/api-allow', flowIds: [2, 3] },
          { source: 'default/sleep', destination: 'shop/api', detail: 'GET /orders', from: 'allowed', to: 'denied', count: 1, reason: 'no-allow-policy-matched', policy: 'shop/api-allow', flowIds: [9] },
        ],
        undetermined: {},
      });
    });

    it('a looser candidate lists the reverse', () => {
      const r = replayFlows({ flows, current: set(ALLOW_WEB), candidate: set(ALLOW_BOTH), workloadLabels });
      assert.deepEqual(
        r.changed.map((g) => [g.source, g.detail, g.from, g.to, g.count, g.reason, g.flowIds]),
        [
          ['default/sleep', undefined, 'denied', 'allowed', 2, 'allowed-by-policy', [2, 3]],
          ['default/sleep', 'GET /orders', 'denied', 'allowed', 1, 'allowed-by-policy', [9]],
        ],
      );
      const open = replayFlows({ flows, current: set(ALLOW_WEB), candidate: set(authz('api-allow', '  rules: [{}]\n')), workloadLabels });
      assert.deepEqual(
        open.changed.map((g) => [g.source, g.detail ?? '', g.count, g.flowIds]),
        [
          ['default/sleep', '', 2, [2, 3]],
          ['10.9.9.9', '', 1, [8]],
          ['default/sleep', 'GET /orders', 1, [9]],
        ],
      );
    });

    it('unchanged policies change nothing (compiled apart, same content)', () => {
      const r = replayFlows({ flows, current: set(ALLOW_BOTH), candidate: set(ALLOW_BOTH), workloadLabels });
      assert.deepEqual(r, { flows: 7, changed: [], undetermined: {} });
    });

    it('HTTP requests: method, path and Host as recorded', () => {
      const deny = authz('api-deny', '  action: DENY\n  rules:\n  - to: [{operation: {paths: ["/admin*"]}}]\n');
      const hosts = authz('api-hosts', '  rules:\n  - to: [{operation: {hosts: ["api.shop:*"]}}]\n');
      const r = replayFlows({ flows: flows.filter((f) => f.protocol === 'http'), current: set(), candidate: set(deny, hosts), workloadLabels });
      assert.deepEqual(r.changed, [
        { source: 'shop/web', destination: 'shop/api', detail: 'POST /admin', from: 'allowed', to: 'denied', count: 1, reason: 'denied-by-policy', policy: 'shop/api-deny', flowIds: [10] },
      ]);
      assert.equal(r.flows, 2);
    });

    it('counts what a record cannot decide as undetermined: headers, HTTP on a connection, unknown workloads', () => {
      const headerDeny = authz('api-debug', '  action: DENY\n  rules:\n  - when: [{key: "request.headers[x-debug]", values: ["1"]}]\n');
      const gone = flow({ destination: endpoint('shop', 'gone', '10.0.2.99', 80) });
      const r = replayFlows({ flows: [...flows, gone], current: set(ALLOW_BOTH), candidate: set(ALLOW_BOTH, headerDeny), workloadLabels });
      // tcp flows 1-4: denied under Istio's TCP rules, allowed if HTTP (the condition reads a header): unknown.
      // flow 8 (plaintext): denied either way. HTTP flows 9-10: the header decides.
      assert.deepEqual(r, { flows: 1, changed: [], undetermined: { 'needs-http': 4, 'needs-headers': 2, 'unknown-workload': 1 } });
    });

    it('a connection the candidate reads HTTP on, denied whatever its requests: determined', () => {
      const httpOnly = authz('api-allow', '  rules:\n  - from: [{source: {principals: [' + WEB_SA + ']}}]\n    to: [{operation: {methods: [GET]}}]\n');
      const r = replayFlows({ flows: flows.slice(0, 4), current: set(ALLOW_BOTH), candidate: set(httpOnly), workloadLabels });
      assert.deepEqual(r.undetermined, { 'needs-http': 2 });
      assert.deepEqual(r.changed.map((g) => [g.source, g.to, g.count, g.reason]), [['default/sleep', 'denied', 2, 'no-allow-policy-matched']]);
    });

    it('groups the largest first and keeps at most 10 flow ids', () => {
      const first = flow({ source: SLEEP, destination: { ...API, port: 9090 } });
      const many = Array.from({ length: 12 }, () => flow({ source: SLEEP }));
      const r = replayFlows({ flows: [flow({ source: WEB }), first, ...many, flow({ source: SLEEP, http: { method: 'GET', path: '/', status: 200 }, protocol: 'http' })], current: set(ALLOW_BOTH), candidate: set(ALLOW_WEB), workloadLabels });
      assert.deepEqual(r.changed.map((g) => [g.detail ?? '', g.count, g.flowIds.length]), [['', 13, 10], ['GET /', 1, 1]]);
      assert.deepEqual(r.changed[0]!.flowIds, [first.id, ...many.slice(0, 9).map((f) => f.id)]);
    });
  });

  describe('egress (EgressPolicy)', () => {
    const e = (ip: string, port: number, over: Partial<FlowRecord> & { host?: string } = {}): StoredFlow => {
      const { host, ...rest } = over;
      return flow({
        direction: 'egress',
        node: 'node-1',
        source: { ...WEB, port: 40000 },
        destination: { ip, port, ...(host ? { host } : {}) },
        protocol: host ? 'tls' : 'tcp',
        mtls: false,
        reason: 'allowed-by-host',
        ...rest,
      });
    };
    const ALLOWLIST = egress('web-egress', '  allow:\n  - hosts: [api.github.com]\n    ports: [443]\n  - cidrs: [10.0.0.0/8]\n');
    const MORE = egress('web-egress', '  allow:\n  - hosts: [api.github.com, "*.stripe.com"]\n    ports: [443]\n  - cidrs: [10.0.0.0/8]\n');
    const DENY = egress('web-deny', '  deny:\n  - hosts: ["*.github.com"]\n    ports: [443]\n  - cidrs: [10.66.0.0/16]\n    ports: [5432]\n');
    nextId = 100;
    const flows = [
      e('140.82.112.5', 443, { host: 'api.github.com' }), // 100
      e('140.82.112.5', 443, { host: 'api.github.com' }), // 101
      e('10.66.1.1', 5432, { reason: 'allowed-by-cidr' }), // 102
      e('10.1.1.1', 5432, { reason: 'allowed-by-cidr' }), // 103
      e('1.2.3.4', 443, { host: 'api.stripe.com', verdict: 'denied', reason: 'host-not-allowed' }), // 104
      e('6.6.6.6', 443, { host: 'api.stripe.com', verdict: 'denied', reason: 'host-address-mismatch' }), // 105: still not where the name resolves
      e('169.254.169.254', 80, { verdict: 'denied', reason: 'metadata-address' }), // 106
      e('10.1.1.1', 443, { reason: 'allowed-by-cidr' }), // 107: a name could now deny it, and none was read
      e('1.1.1.1', 53, { source: endpoint('shop', 'gone', '10.0.1.99'), reason: 'no-egress-policy' }), // 108
      e('1.1.1.1', 53, { source: endpoint('shop', 'api', '10.0.2.10'), reason: 'no-egress-policy' }), // 109: no policy selects api, in either set
      e('1.1.1.1', 443, { protocol: 'tls', verdict: 'denied', reason: 'no-rule-matched' }), // 110: TLS without SNI: no name to read
    ];

    it('deny entries and host rules: allowed → denied and denied → allowed, with the candidate reason and policy', () => {
      const r = replayFlows({ flows, current: set(ALLOWLIST), candidate: set(MORE, DENY), workloadLabels });
      assert.deepEqual(r, {
        flows: 9,
        changed: [
          { source: 'shop/web', destination: '140.82.112.5', detail: 'api.github.com', from: 'allowed', to: 'denied', count: 2, reason: 'denied-by-host', policy: 'shop/web-deny', flowIds: [100, 101] },
          { source: 'shop/web', destination: '1.2.3.4', detail: 'api.stripe.com', from: 'denied', to: 'allowed', count: 1, reason: 'allowed-by-host', policy: 'shop/web-egress', flowIds: [104] },
          { source: 'shop/web', destination: '10.66.1.1', from: 'allowed', to: 'denied', count: 1, reason: 'denied-by-cidr', policy: 'shop/web-deny', flowIds: [102] },
        ],
        undetermined: { 'needs-host': 1, 'unknown-workload': 1 },
      });
    });

    it('a deny-only policy for a workload without one: only what it names changes', () => {
      const r = replayFlows({ flows, current: set(), candidate: set(DENY), workloadLabels });
      assert.deepEqual(
        r.changed.map((g) => [g.destination, g.from, g.to, g.count, g.reason]),
        [
          ['140.82.112.5', 'allowed', 'denied', 2, 'denied-by-host'],
          ['10.66.1.1', 'allowed', 'denied', 1, 'denied-by-cidr'],
        ],
      );
      // 104-106 and 110 were denied under a policy no longer in force: without any, they are allowed.
      const none = replayFlows({ flows, current: set(ALLOWLIST), candidate: set(), workloadLabels });
      assert.deepEqual(none.changed.map((g) => [g.destination, g.to, g.reason]), [
        ['1.1.1.1', 'allowed', 'no-egress-policy'],
        ['1.2.3.4', 'allowed', 'no-egress-policy'],
        ['169.254.169.254', 'allowed', 'no-egress-policy'],
        ['6.6.6.6', 'allowed', 'no-egress-policy'],
      ]);
    });

    it('replays UDP and ICMP records in their protocol (bug: they were decided as TCP connections)', () => {
      const UDP_DNS = egress('web-egress', '  allow:\n  - cidrs: [1.1.1.1/32]\n    ports: [53]\n    protocol: UDP\n');
      const TCP_DNS = egress('web-egress', '  allow:\n  - cidrs: [1.1.1.1/32]\n    ports: [53]\n');
      nextId = 200;
      const dgram = [
        e('1.1.1.1', 53, { protocol: 'udp', reason: 'allowed-by-cidr' }), // 200
        { ...e('1.1.1.1', 0, { protocol: 'icmp', verdict: 'denied', reason: 'no-rule-matched' }), destination: { ip: '1.1.1.1' } }, // 201
        e('1.1.1.1', 53, { protocol: 'other', reason: 'allowed-by-cidr' }), // 202: no protocol an entry names
      ];
      const r = replayFlows({ flows: dgram, current: set(UDP_DNS), candidate: set(TCP_DNS), workloadLabels });
      assert.deepEqual(r, {
        flows: 2,
        changed: [{ source: 'shop/web', destination: '1.1.1.1', from: 'allowed', to: 'denied', count: 1, reason: 'no-rule-matched', flowIds: [200] }],
        undetermined: { 'other-protocol': 1 },
      });
    });

    it('unchanged egress policies change nothing', () => {
      const r = replayFlows({ flows, current: set(ALLOWLIST, DENY), candidate: set(DENY, ALLOWLIST), workloadLabels });
      assert.deepEqual(r, { flows: 10, changed: [], undetermined: { 'unknown-workload': 1 } });
    });
  });
});
