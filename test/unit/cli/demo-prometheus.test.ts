import { strict as assert } from 'node:assert';
import { parsePrometheusListen, prometheusConfig } from '../../../cli/demo/prometheus';
import { parseRelayEndpoint, type RelayEndpoint } from '../../../cli/demo/relay';

describe('palisade demo --with-prometheus', () => {
  describe('prometheusConfig', () => {
    it('scrapes each agent at its address, labelled with its node, every second', () => {
      const c = JSON.parse(prometheusConfig([{ node: 'node-1', address: '172.31.0.1:15020' }, { node: 'node-2', address: '172.31.0.2:15020' }])) as {
        global: Record<string, string>;
        scrape_configs: Array<{ job_name: string; metrics_path: string; static_configs: Array<{ targets: string[]; labels: Record<string, string> }> }>;
      };
      assert.deepEqual(c.global, { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' });
      assert.equal(c.scrape_configs.length, 1);
      assert.equal(c.scrape_configs[0]!.metrics_path, '/metrics');
      assert.deepEqual(c.scrape_configs[0]!.static_configs, [
        { targets: ['172.31.0.1:15020'], labels: { node: 'node-1' } },
        { targets: ['172.31.0.2:15020'], labels: { node: 'node-2' } },
      ]);
    });
  });

  describe('parsePrometheusListen', () => {
    for (const ok of ['127.0.0.1:9090', '127.0.0.2:1']) it(`takes ${ok}`, () => assert.equal(parsePrometheusListen(ok), ok));
    for (const bad of ['0.0.0.0:9090', '10.0.0.1:9090', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', 'localhost:9090', '[::1]:9090'])
      it(`refuses ${bad} in one line`, () => assert.throws(() => parsePrometheusListen(bad), /^PalisadeError: --prometheus-listen .*: want a loopback address and port, like 127\.0\.0\.1:9090$/));
  });

  describe('parseRelayEndpoint', () => {
    const cases: Array<[string, RelayEndpoint | undefined]> = [
      ['tcp:127.0.0.1:9090', { kind: 'tcp', host: '127.0.0.1', port: 9090 }],
      ['unix:/run/x/web.sock', { kind: 'unix', path: '/run/x/web.sock' }],
      ['unix:relative.sock', undefined],
      ['tcp:127.0.0.1:0', undefined],
      ['tcp:localhost:80', undefined],
      ['tcp:1.2.3.4', undefined],
      ['udp:1.2.3.4:5', undefined],
    ];
    for (const [s, want] of cases) it(`${s} → ${JSON.stringify(want)}`, () => assert.deepEqual(parseRelayEndpoint(s), want));
  });
});
