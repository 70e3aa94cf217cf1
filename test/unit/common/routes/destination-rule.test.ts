import { strict as assert } from 'node:assert';
import { compilePolicyFiles, parsePolicies, PolicyIndex } from '../../../../common/policy';
import { DEFAULT_CONNECTION_POOL, DEFAULT_OUTLIER_DETECTION, describeTrafficPolicy, DestinationTable, NO_LIMIT, type CompiledDestinationRule } from '../../../../common/routes';

/** Lines 1-6; the spec's own lines start at 7. */
const HEAD = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: web\n  namespace: shop\nspec:\n';

const FULL = `${HEAD}  host: web
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: X-User}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 2, http2MaxRequests: 4, maxRequestsPerConnection: 100, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 8080}
      loadBalancer: {simple: ROUND_ROBIN}
`;

function compile(text: string): CompiledDestinationRule {
  const set = compilePolicyFiles([{ source: 'dr.yaml', text }]);
  assert.equal(set.destinationRules?.length, 1);
  return set.destinationRules![0]!;
}

describe('DestinationRule (common/routes)', () => {
  it('compiles trafficPolicy: consistent hash, pool limits, outlier detection with Istio defaults for what is left out, port settings over the rule', () => {
    const r = compile(FULL);
    assert.equal(r.id, 'shop/web');
    assert.deepEqual(r.host, { namespace: 'shop', name: 'web' });
    assert.deepEqual(r.policy.loadBalancer, { kind: 'HASH', by: 'header', name: 'x-user' });
    assert.deepEqual(r.policy.connectionPool, { maxConnections: 10, connectTimeoutMs: 250, maxPendingRequests: 2, maxRequests: 4, maxRequestsPerConnection: 100, maxRetries: 3, idleTimeoutMs: 30_000 });
    assert.deepEqual(r.policy.outlierDetection, { consecutive5xx: 3, consecutiveGateway: 0, intervalMs: 1000, baseEjectionMs: 2000, maxEjectionPercent: 50, minHealthPercent: 0 });
    const port = r.ports.get(8080)!;
    assert.deepEqual(port.loadBalancer, { kind: 'ROUND_ROBIN' });
    assert.equal(port.connectionPool, r.policy.connectionPool, 'a port without its own connectionPool keeps the rule\'s');
    assert.equal(port.outlierDetection, r.policy.outlierDetection);
    assert.equal(r.exportTo, undefined);
  });

  it('takes Istio\'s defaults for an empty connectionPool and outlierDetection', () => {
    const r = compile(`${HEAD}  host: web\n  trafficPolicy: {connectionPool: {}, outlierDetection: {}}\n`);
    assert.deepEqual(r.policy.connectionPool, DEFAULT_CONNECTION_POOL);
    assert.deepEqual(r.policy.outlierDetection, DEFAULT_OUTLIER_DETECTION);
    assert.deepEqual(DEFAULT_OUTLIER_DETECTION, { consecutive5xx: 5, consecutiveGateway: 0, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0 });
    assert.equal(DEFAULT_CONNECTION_POOL.maxConnections, NO_LIMIT);
  });

  const hosts: [string, string][] = [
    ['web', 'shop/web'],
    ['web.other', 'other/web'],
    ['web.other.svc', 'other/web'],
    ['web.other.svc.cluster.local', 'other/web'],
  ];
  for (const [host, want] of hosts) {
    it(`host ${host} names Service ${want}`, () => {
      const r = compile(`${HEAD}  host: ${host}\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n`);
      assert.equal(`${r.host.namespace}/${r.host.name}`, want);
    });
  }

  const balancers: [string, unknown][] = [
    ['{simple: ROUND_ROBIN}', { kind: 'ROUND_ROBIN' }],
    ['{simple: LEAST_REQUEST}', { kind: 'LEAST_REQUEST' }],
    ['{simple: LEAST_CONN}', { kind: 'LEAST_REQUEST' }],
    ['{simple: RANDOM}', { kind: 'RANDOM' }],
    ['{simple: UNSPECIFIED}', undefined],
    ['{consistentHash: {useSourceIp: true}}', { kind: 'HASH', by: 'source-ip', name: '' }],
    ['{consistentHash: {httpQueryParameterName: user}}', { kind: 'HASH', by: 'query', name: 'user' }],
    ['{consistentHash: {httpCookie: {name: sticky, ttl: 60s, path: /}}}', { kind: 'HASH', by: 'cookie', name: 'sticky', cookieTtlMs: 60_000, cookiePath: '/' }],
    ['{consistentHash: {httpCookie: {name: sticky}}}', { kind: 'HASH', by: 'cookie', name: 'sticky' }],
  ];
  for (const [yaml, want] of balancers) {
    it(`loadBalancer ${yaml}`, () => {
      assert.deepEqual(compile(`${HEAD}  host: web\n  trafficPolicy:\n    loadBalancer: ${yaml}\n`).policy.loadBalancer, want);
    });
  }

  // Every refused field: one line, at its own line, saying why; nothing compiled.
  const refused: [string, string, string][] = [
    ['  host: web\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n', 'dr.yaml:10: DestinationRule shop/web: spec.subsets: subsets are not supported: use one Service per version (Istio ambient\'s own advice)', 'subsets'],
    ['  host: web\n  trafficPolicy:\n    loadBalancer: {simple: PASSTHROUGH}\n', 'dr.yaml:9: DestinationRule shop/web: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not supported', 'PASSTHROUGH'],
    ['  host: web\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  workloadSelector: {matchLabels: {app: a}}\n', 'dr.yaml:9: DestinationRule shop/web: spec.workloadSelector: workloadSelector is not supported', 'workloadSelector'],
    ['  host: web\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n', 'dr.yaml:9: DestinationRule shop/web: spec.trafficPolicy.tls: tls is not supported', 'tls'],
    ['  host: web\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {maglev: {tableSize: 7}}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.loadBalancer.consistentHash.maglev: maglev is not supported', 'maglev'],
    ['  host: web\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting: {enabled: true}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.loadBalancer.localityLbSetting: localityLbSetting is not supported', 'locality'],
    ['  host: web\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: a, useSourceIp: true}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.loadBalancer.consistentHash: needs exactly one of', 'two hashes'],
    ['  host: web\n  trafficPolicy:\n    connectionPool:\n      tcp: {tcpKeepalive: {time: 1s}}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive: tcpKeepalive is not supported', 'tcpKeepalive'],
    ['  host: web\n  trafficPolicy:\n    connectionPool:\n      http: {h2UpgradePolicy: UPGRADE}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: h2UpgradePolicy is not supported', 'h2Upgrade'],
    ['  host: web\n  trafficPolicy:\n    connectionPool:\n      http: {http2MaxRequests: 0}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.connectionPool.http.http2MaxRequests: must be a whole number from 1 to 4294967295, got 0', 'zero requests'],
    ['  host: web\n  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: soon}\n', 'dr.yaml:10: DestinationRule shop/web: spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be a duration', 'bad duration'],
    ['  host: web\n  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 5}\n', 'dr.yaml:9: DestinationRule shop/web: spec.trafficPolicy.outlierDetection.consecutiveErrors: consecutiveErrors is Istio\'s removed field', 'consecutiveErrors'],
    ['  host: web\n  trafficPolicy:\n    outlierDetection: {maxEjectionPercent: 101}\n', 'dr.yaml:9: DestinationRule shop/web: spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be a whole number from 0 to 100', 'percent'],
    ['  host: web\n  trafficPolicy:\n    outlierDetection: {splitExternalLocalOriginErrors: true}\n', 'dr.yaml:9: DestinationRule shop/web: spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors: splitExternalLocalOriginErrors is not supported', 'split'],
    ['  host: "*.shop.svc.cluster.local"\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n', 'dr.yaml:7: DestinationRule shop/web: spec.host: must name a Service of the mesh', 'wildcard host'],
    ['  host: www.example.com\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n', 'dr.yaml:7: DestinationRule shop/web: spec.host: must name a Service of the mesh', 'external host'],
    ['  host: web\n', 'dr.yaml:7: DestinationRule shop/web: spec.trafficPolicy: is missing', 'no trafficPolicy'],
    ['  host: web\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: SIMPLE}\n', 'dr.yaml:11: DestinationRule shop/web: spec.trafficPolicy.portLevelSettings[0].tls: tls is not supported', 'port tls'],
    ['  host: web\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n    - port: {number: 80}\n', 'dr.yaml:11: DestinationRule shop/web: spec.trafficPolicy.portLevelSettings[1].port.number: port 80 has settings already', 'port twice'],
    ['  host: web\n  exportTo: ["a b"]\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n', 'dr.yaml:8: DestinationRule shop/web: spec.exportTo[0]: must be a namespace', 'exportTo'],
  ];
  for (const [spec, line, what] of refused) {
    it(`refuses ${what}, one line naming it, nothing compiled`, () => {
      const r = parsePolicies(`${HEAD}${spec}`, 'dr.yaml');
      assert.equal(r.policies.length, 0);
      assert.equal(r.problems.length, 1, r.problems.join('\n'));
      assert.ok(r.problems[0]!.startsWith(line), `${r.problems[0]}\n  wanted: ${line}`);
    });
  }

  it('the subsets line gives the hint whole', () => {
    const r = parsePolicies(`${HEAD}  host: web\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: []\n`, 'dr.yaml');
    assert.match(r.problems[0]!, /use one Service per version \(Istio ambient's own advice\)/);
  });

  it('accepts v1beta1 and v1alpha3 (the same schema); warns for LEAST_CONN and for an outlier detection that ejects on nothing', () => {
    for (const v of ['v1beta1', 'v1alpha3']) assert.equal(parsePolicies(`${HEAD.replace('/v1\n', `/${v}\n`)}  host: web\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n`, 'dr.yaml').policies.length, 1);
    const r = parsePolicies(`${HEAD}  host: web\n  trafficPolicy:\n    loadBalancer: {simple: LEAST_CONN}\n    outlierDetection: {consecutive5xxErrors: 0}\n`, 'dr.yaml');
    assert.equal(r.warnings.length, 2, r.warnings.join('\n'));
  });

  it('applies the cookie ttl, maxRequestsPerConnection and idleTimeout: compiled, no warning, shown in the summary', () => {
    const r = parsePolicies(FULL.replace('httpHeaderName: X-User', 'httpCookie: {name: sid, ttl: 1h}'), 'dr.yaml');
    assert.equal(r.policies.length, 1);
    assert.deepEqual(r.warnings, []);
    const rule = compile(FULL.replace('httpHeaderName: X-User', 'httpCookie: {name: sid, ttl: 1h}'));
    assert.deepEqual(rule.policy.loadBalancer, { kind: 'HASH', by: 'cookie', name: 'sid', cookieTtlMs: 3_600_000 });
    assert.equal(rule.policy.connectionPool?.maxRequestsPerConnection, 100);
    assert.equal(rule.policy.connectionPool?.idleTimeoutMs, 30_000);
    assert.match(describeTrafficPolicy(rule.policy), /per connection 100, idle 30s/);
    assert.equal(DEFAULT_CONNECTION_POOL.idleTimeoutMs, undefined, 'left out: the proxy\'s own idle time');
  });

  it('refuses an idleTimeout of 0 and a negative maxRequestsPerConnection in one line each', () => {
    const bad = (http: string): string[] => {
      try {
        compilePolicyFiles([{ source: 'dr.yaml', text: `${HEAD}  host: web\n  trafficPolicy:\n    connectionPool:\n      http: ${http}\n` }]);
      } catch (err) {
        return (err as { problems?: string[] }).problems ?? [(err as Error).message];
      }
      return [];
    };
    assert.match(bad('{idleTimeout: 0s}').join('\n'), /connectionPool\.http\.idleTimeout: must be at least 1ms/);
    assert.match(bad('{maxRequestsPerConnection: -1}').join('\n'), /connectionPool\.http\.maxRequestsPerConnection/);
  });

  describe('which rule a client gets (DestinationTable)', () => {
    const set = compilePolicyFiles([
      { source: 'a.yaml', text: `${HEAD}  host: web\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  exportTo: [".", "front"]\n` },
      { source: 'b.yaml', text: `${HEAD.replace('namespace: shop', 'namespace: front').replace('name: web', 'name: web-front')}  host: web.shop.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n  exportTo: ["."]\n` },
      { source: 'c.yaml', text: `${HEAD.replace('name: web', 'name: ports')}  host: api\n  trafficPolicy:\n    loadBalancer: {simple: RANDOM}\n    portLevelSettings:\n    - port: {number: 9090}\n      loadBalancer: {simple: LEAST_REQUEST}\n` },
    ]);
    const table = new PolicyIndex(set).destinations;
    const cases: [string, string, number, string, string | undefined, string | undefined][] = [
      ['the Service namespace\'s rule, exported to "."', 'shop/web', 80, 'shop', 'shop/web', 'RANDOM'],
      ['a client namespace\'s own rule first', 'shop/web', 80, 'front', 'front/web-front', 'ROUND_ROBIN'],
      ['no rule exported to this namespace', 'shop/web', 80, 'other', undefined, undefined],
      ['a port\'s settings', 'shop/api', 9090, 'x', 'shop/ports', 'LEAST_REQUEST'],
      ['another port: the rule\'s', 'shop/api', 80, 'x', 'shop/ports', 'RANDOM'],
      ['a Service without a rule', 'shop/db', 5432, 'shop', undefined, undefined],
    ];
    for (const [what, svc, port, client, rule, lb] of cases) {
      it(what, () => {
        const [ns, name] = svc.split('/') as [string, string];
        const got = table.lookup(ns, name, port, client);
        assert.equal(got?.rule, rule);
        assert.equal(got?.policy.loadBalancer?.kind, lb);
      });
    }
    it('is empty without rules', () => assert.equal(new DestinationTable([]).lookup('a', 'b', 1, 'c'), undefined));
  });

  it('describes a policy in one line for palisade status', () => {
    assert.equal(describeTrafficPolicy(compile(FULL).policy), 'hash(header x-user) pool(connections 10, requests 4, pending 2, retries 3, per connection 100, idle 30s) outliers(5xx 3, gateway 0, eject 2s, max 50%)');
  });
});
