import { strict as assert } from 'node:assert';
import { parseWorkloads } from '../../../agent/workloads';
import { workloadsYaml } from '../../harness/agent';
import { demoServices, serviceStatus, servicesYaml } from '../../../cli/demo/services';
import { parseRate, Tally, trafficUrl } from '../../../cli/demo/traffic';

describe('palisade demo: Services and traffic', () => {
  const services = demoServices(8080);

  it('web, web-v1 and web-v2, each with its own virtual IP, port 80 to the web app', () => {
    assert.deepEqual(
      services.map((s) => [s.name, s.ips, s.ports.map((p) => `${p.port}->${p.targetPort}`), s.selector]),
      [
        ['web', ['10.96.0.10'], ['80->8080'], { app: 'web' }],
        ['web-v1', ['10.96.0.11'], ['80->8080'], { app: 'web', version: 'v1' }],
        ['web-v2', ['10.96.0.12'], ['80->8080'], { app: 'web', version: 'v2' }],
      ],
    );
  });

  it('the agents\' workloads file (no workloads: they come from Kubernetes) declares exactly them', () => {
    const got = parseWorkloads(workloadsYaml([]) + servicesYaml(services), 'node-1-workloads.yaml');
    assert.deepEqual(got.workloads, []);
    assert.deepEqual(
      got.services,
      services.map((s) => ({ namespace: s.namespace, name: s.name, vips: s.ips, ports: s.ports, selector: s.selector })),
    );
  });

  it('status: each service with the pods its selector picks, by address', () => {
    const pods: Parameters<typeof serviceStatus>[1] = [
      { name: 'web-2', node: 'node-2', ip: '10.0.2.10', namespace: 'default', labels: { app: 'web', version: 'v2' } },
      { name: 'client', node: 'node-1', ip: '10.0.1.10', namespace: 'default', labels: { app: 'client' } },
      { name: 'web-1', node: 'node-1', ip: '10.0.1.11', namespace: 'default', labels: { app: 'web', version: 'v1' } },
      { name: 'web-3', node: 'node-2', ip: '10.0.2.11', namespace: 'default', labels: { app: 'web', version: 'v2' } },
      { name: 'other', node: 'node-2', ip: '10.0.2.9', namespace: 'shop', labels: { app: 'web', version: 'v2' } },
    ];
    assert.deepEqual(
      serviceStatus(services, pods).map((s) => [s.name, s.endpoints.map((e) => `${e.pod}@${e.node}=${e.ip}`)]),
      [
        ['web', ['web-1@node-1=10.0.1.11', 'web-2@node-2=10.0.2.10', 'web-3@node-2=10.0.2.11']],
        ['web-v1', ['web-1@node-1=10.0.1.11']],
        ['web-v2', ['web-2@node-2=10.0.2.10', 'web-3@node-2=10.0.2.11']],
      ],
    );
  });

  describe('traffic', () => {
    const urls: Array<[string, string, string]> = [
      ['web', '/', 'http://10.96.0.10:80/'],
      ['web-v2', '/public', 'http://10.96.0.12:80/public'],
      ['http://10.0.2.10:8080/echo', '/', 'http://10.0.2.10:8080/echo'],
    ];
    for (const [to, p, want] of urls) it(`--to ${to} --path ${p} → ${want}`, () => assert.equal(trafficUrl(to, p, services), want));
    const badUrls: Array<[string, string, RegExp]> = [
      ['nope', '/', /^PalisadeError: --to "nope": a demo Service \(web, web-v1, web-v2\) or an http:\/\/ URL$/],
      ['https://x/', '/', /^PalisadeError: --to "https:\/\/x\/"/],
      ['http://', '/', /^PalisadeError: --to "http:\/\/"/],
      ['web', 'public', /^PalisadeError: --path "public": must start with \/$/],
    ];
    for (const [to, p, want] of badUrls) it(`refuses --to ${to} --path ${p} in one line`, () => assert.throws(() => trafficUrl(to, p, services), want));

    for (const ok of ['1', '10', '0.5', '500']) it(`--rate ${ok}`, () => assert.equal(parseRate(ok), Number(ok)));
    for (const bad of ['0', '-1', '501', 'x', '1e3', ''])
      it(`refuses --rate ${JSON.stringify(bad)}`, () => assert.throws(() => parseRate(bad), /^PalisadeError: --rate .*: requests per second, more than 0 and at most 500$/));

    it('tallies answers per backend, errors and non-2xx apart, a window per second', () => {
      const t = new Tally();
      for (const l of [
        { backend: 'web-1', status: 200 },
        { backend: 'web-2', status: 200 },
        { backend: 'web-1', status: 200 },
      ])
        t.add(l);
      assert.equal(t.takeWindow(), 'web-1 2  web-2 1');
      assert.equal(t.takeWindow(), '-');
      t.add({ error: 'ECONNREFUSED' });
      t.add({ backend: null, status: 403 });
      t.add({ event: 'done', sent: 6, skipped: 2 });
      assert.equal(t.takeWindow(), 'HTTP 403 1  error ECONNREFUSED 1');
      assert.equal(t.answers, 5);
      assert.equal(t.skipped, 2);
      assert.equal(t.summary(), 'HTTP 403 1 (20%)  error ECONNREFUSED 1 (20%)  web-1 2 (40%)  web-2 1 (20%)');
    });
  });
});
