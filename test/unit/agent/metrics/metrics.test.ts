import { strict as assert } from 'node:assert';
import type { TrafficStats } from '../../../../agent/traffic/router';
import * as net from 'node:net';
import { createAgentRegistry, type AgentMetricsSources } from '../../../../agent/metrics/agent-metrics';
import { FlowMetrics, TRAFFIC_LABELS } from '../../../../agent/metrics/flow-metrics';
import { MetricsServer } from '../../../../agent/metrics/server';
import { FlowFanOut } from '../../../../agent/flows/fan-out';
import { FlowReporter } from '../../../../agent/flows/reporter';
import { ConnectionLimits, SniffBudget } from '../../../../agent/proxy/limits';
import { silentLogger } from '../../../../common/log';
import { httpFlow, tcpFlow } from '../flows/fixtures';
import { parsePromText, sample, type Family } from './prom-text';

const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const DB = 'spiffe://cluster.local/ns/data/sa/db';

describe('agent metrics on /metrics', function () {
  this.timeout(20_000);
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  /** A real listener on loopback serving a registry built from these sources. */
  async function serve(
    src: Partial<AgentMetricsSources> = {},
    ready: () => boolean = () => true,
  ): Promise<{ flows: FlowMetrics; url: string; scrape: () => Promise<Map<string, Family>> }> {
    const flows = src.flows ?? new FlowMetrics();
    const server = new MetricsServer({ registry: createAgentRegistry({ ...src, flows }), ready, log: silentLogger() });
    servers.push(server);
    const a = await server.listen('127.0.0.1', 0);
    const url = `http://127.0.0.1:${a.port}`;
    return {
      flows,
      url,
      scrape: async () => {
        const res = await fetch(`${url}/metrics`);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        return parsePromText(await res.text());
      },
    };
  }

  describe('istio_* from flow records', function () {
    it('counts an inbound HTTP request in istio_requests_total with Istio\'s labels, reporter="destination"', async function () {
      const { flows, scrape } = await serve();
      flows.record(httpFlow(100));
      const m = await scrape();
      assert.equal(m.get('istio_requests_total')?.type, 'counter');
      const s = sample(m, 'istio_requests_total');
      assert.deepEqual(s?.labels, {
        reporter: 'destination',
        source_workload: 'client',
        source_workload_namespace: 'default',
        source_principal: CLIENT,
        destination_workload: 'web',
        destination_workload_namespace: 'default',
        destination_principal: WEB,
        destination_service: 'web.default',
        destination_service_name: 'web',
        destination_service_namespace: 'default',
        request_protocol: 'http',
        response_flags: '-',
        connection_security_policy: 'mutual_tls',
        response_code: '200',
      });
      assert.equal(s?.value, 1);
    });

    it('observes duration and body sizes in histograms with the same labels', async function () {
      const { flows, scrape } = await serve();
      flows.record(httpFlow(100, { durationMs: 3.25 }));
      flows.record(httpFlow(20_000, { durationMs: 700 }));
      const m = await scrape();
      assert.equal(m.get('istio_request_duration_milliseconds')?.type, 'histogram');
      assert.equal(sample(m, 'istio_request_duration_milliseconds_count')?.value, 2);
      assert.equal(sample(m, 'istio_request_duration_milliseconds_sum')?.value, 703.25);
      assert.equal(sample(m, 'istio_request_duration_milliseconds_bucket', { le: '5' })?.value, 1);
      assert.equal(sample(m, 'istio_request_duration_milliseconds_bucket', { le: '1000' })?.value, 2);
      assert.equal(sample(m, 'istio_request_bytes_sum')?.value, 20_100);
      assert.equal(sample(m, 'istio_response_bytes_sum')?.value, 2468);
      const { le: _le, ...labels } = sample(m, 'istio_request_bytes_bucket', { le: '+Inf' })!.labels;
      assert.deepEqual(labels, sample(m, 'istio_requests_total')!.labels);
    });

    it('counts gRPC calls in istio_requests_total by grpc_response_status (only there, as Istio); the other requests of the series without it', async function () {
      const { flows, scrape } = await serve();
      const call = (grpcStatus: number): ReturnType<typeof httpFlow> => httpFlow(10, { http: { method: 'POST', path: '/shop.Cart/Add', status: 200, grpcStatus } });
      for (const f of [call(0), call(0), call(14), httpFlow(10)]) flows.record(f);
      const m = await scrape();
      const requests = m.get('istio_requests_total')!.samples;
      assert.deepEqual(requests.map((s) => [s.labels.grpc_response_status, s.value]).sort(), [[undefined, 1], ['0', 2], ['14', 1]]);
      const { grpc_response_status: _g, ...labels } = sample(m, 'istio_requests_total', { grpc_response_status: '14' })!.labels;
      assert.deepEqual(labels, sample(m, 'istio_requests_total', {})!.labels, 'the same series labels besides it');
      assert.equal(sample(m, 'istio_request_duration_milliseconds_count')?.value, 4, 'one duration series for all four');
      assert.equal(sample(m, 'istio_request_duration_milliseconds_count', { grpc_response_status: '0' }), undefined);
    });

    it('counts one opened and one closed connection per TCP record, bytes in Istio\'s directions, reporter="source"', async function () {
      const { flows, scrape } = await serve();
      flows.record(tcpFlow(300, { bytesReceived: 4096 }));
      flows.record(tcpFlow(200, { bytesReceived: 1000 }));
      const m = await scrape();
      const want = {
        reporter: 'source',
        source_workload: 'client',
        source_principal: CLIENT,
        destination_workload: 'db',
        destination_workload_namespace: 'data',
        destination_principal: DB,
        request_protocol: 'tcp',
        connection_security_policy: 'mutual_tls',
      };
      assert.equal(sample(m, 'istio_tcp_connections_opened_total', want)?.value, 2);
      assert.equal(sample(m, 'istio_tcp_connections_closed_total', want)?.value, 2);
      assert.equal(sample(m, 'istio_tcp_received_bytes_total', want)?.value, 500, 'request direction: what the client sent');
      assert.equal(sample(m, 'istio_tcp_sent_bytes_total', want)?.value, 5096, 'response direction: what the client got');
      assert.deepEqual(Object.keys(sample(m, 'istio_tcp_connections_opened_total')!.labels).sort(), [...TRAFFIC_LABELS].sort(), 'no response_code on TCP');
      assert.equal(sample(m, 'istio_requests_total'), undefined, 'a TCP connection is not a request');
    });

    it('counts the per-pod filters\' packet summaries as produced flows, not as proxy traffic', async function () {
      const { flows, scrape } = await serve();
      flows.record(tcpFlow(0, { protocol: 'udp', verdict: 'denied', reason: 'udp-not-allowed', mtls: false, count: 9 }));
      flows.record(tcpFlow(0, { protocol: 'arp', verdict: 'denied', reason: 'spoofed-arp', mtls: false, count: 1 }));
      const m = await scrape();
      assert.equal(sample(m, 'palisade_flows_produced_total')?.value, 2);
      assert.equal(sample(m, 'istio_tcp_connections_opened_total'), undefined);
    });

    it('does not count a mirrored copy (reason mirror) as a request of the client\'s: istio_requests_total counts the original only', async function () {
      const { flows, scrape } = await serve();
      flows.record(httpFlow(10, { direction: 'outbound', reason: 'routed' }));
      flows.record(httpFlow(10, { direction: 'outbound', reason: 'mirror' }));
      const m = await scrape();
      assert.equal(sample(m, 'palisade_flows_produced_total')?.value, 2);
      assert.equal(sample(m, 'istio_requests_total')?.value, 1);
    });

    it('does not count a DNS query as a TCP connection or a request', async function () {
      const { flows, scrape } = await serve();
      flows.record(tcpFlow(1, { protocol: 'dns', mtls: false, destination: { ip: '10.96.0.10', port: 53, host: 'api.example.com' }, dns: { type: 'A', rcode: 'NOERROR', answers: [] } }));
      const m = await scrape();
      assert.equal(sample(m, 'istio_tcp_connections_opened_total'), undefined);
      assert.equal(sample(m, 'istio_requests_total'), undefined);
    });

    it('marks refusals DENY and unreachable upstreams CONNECT, and unknown peers "unknown"', async function () {
      const { flows, scrape } = await serve();
      flows.record(tcpFlow(1, { direction: 'egress', protocol: 'tls', mtls: false, verdict: 'denied', reason: 'host-not-allowed', destination: { ip: '93.184.216.34', port: 443, host: 'blocked.example.test' } }));
      flows.record(tcpFlow(2, { direction: 'inbound', verdict: 'error', reason: 'upstream-failed' }));
      const m = await scrape();
      const denied = sample(m, 'istio_tcp_connections_opened_total', { response_flags: 'DENY' });
      assert.deepEqual(
        [denied?.labels.destination_workload, denied?.labels.destination_service, denied?.labels.connection_security_policy, denied?.labels.reporter],
        ['unknown', 'unknown', 'none', 'source'],
      );
      assert.equal(sample(m, 'istio_tcp_connections_opened_total', { response_flags: 'CONNECT', reporter: 'destination' })?.value, 1);
    });

    it('counts a refusal summary as the connections it stands for', async function () {
      const { flows, scrape } = await serve();
      flows.record(tcpFlow(1, { direction: 'inbound', verdict: 'denied', reason: 'denied-by-policy', policy: 'default/x' }));
      flows.record(tcpFlow(2, { direction: 'inbound', verdict: 'denied', reason: 'denied-by-policy', policy: 'default/x', count: 999 }));
      const m = await scrape();
      assert.equal(sample(m, 'istio_tcp_connections_opened_total', { response_flags: 'DENY' })?.value, 1000);
      assert.equal(sample(m, 'palisade_policy_verdicts_total', { verdict: 'denied', policy: 'default/x' })?.value, 1000);
    });
  });

  describe('palisade_policy_verdicts_total', function () {
    it('counts inbound and egress decisions by verdict, reason and policy name; outbound records are not decisions', async function () {
      const { flows, scrape } = await serve();
      flows.record(httpFlow(1, { verdict: 'denied', reason: 'denied-by-policy', policy: 'default/deny-admin', http: { method: 'GET', path: '/admin', status: 403 } }));
      flows.record(httpFlow(2, { verdict: 'denied', reason: 'denied-by-policy', policy: 'default/deny-admin', http: { method: 'GET', path: '/admin/x', status: 403 } }));
      flows.record(tcpFlow(3, { direction: 'egress', verdict: 'allowed', reason: 'allowed-by-policy', policy: 'default/egress-web', mtls: false }));
      flows.record(tcpFlow(4, { direction: 'inbound', verdict: 'error', reason: 'connect ECONNREFUSED 10.0.2.10:8080', policy: undefined }));
      flows.record(tcpFlow(5));
      const m = await scrape();
      const v = m.get('palisade_policy_verdicts_total')!;
      assert.equal(v.type, 'counter');
      assert.deepEqual(
        v.samples.map((s) => [s.labels.direction, s.labels.verdict, s.labels.reason, s.labels.policy, s.value]),
        [
          ['inbound', 'denied', 'denied-by-policy', 'default/deny-admin', 2],
          ['egress', 'allowed', 'allowed-by-policy', 'default/egress-web', 1],
          ['inbound', 'error', 'other', 'none', 1],
        ],
      );
      assert.equal(sample(m, 'istio_requests_total', { response_code: '403', response_flags: 'DENY' })?.value, 2);
    });
  });

  describe('cardinality', function () {
    it('never uses an IP, port, host or path as a label value', async function () {
      const { flows, scrape } = await serve();
      flows.record(httpFlow(1, { http: { method: 'GET', path: '/users/12345?token=abc', status: 404 } }));
      flows.record(tcpFlow(2, { direction: 'egress', protocol: 'tls', mtls: false, destination: { ip: '93.184.216.34', port: 443, host: 'api.example.com' } }));
      flows.record(tcpFlow(3, { direction: 'inbound', source: { ip: '192.168.7.7', port: 51515 }, verdict: 'denied', reason: 'denied-by-policy', policy: 'default/x' }));
      const m = await scrape();
      const forbidden = ['10.0.1.10', '10.0.2.10', '93.184.216.34', '192.168.7.7', '43210', '8080', '443', '51515', '5432', 'api.example.com', 'web:8080'];
      let checked = 0;
      for (const f of m.values()) {
        for (const s of f.samples) {
          for (const [k, v] of Object.entries(s.labels)) {
            checked++;
            assert.equal(/\d+\.\d+\.\d+\.\d+/.test(v), false, `${s.name} ${k}=${v} looks like an IP`);
            assert.equal(v.startsWith('/'), false, `${s.name} ${k}=${v} looks like a path`);
            assert.equal(forbidden.includes(v), false, `${s.name} ${k}=${v}`);
          }
        }
      }
      assert.ok(checked > 50);
    });

    it('adds label sets past maxSeries to one "overflow" series', async function () {
      const flows = new FlowMetrics({ maxSeries: 2 });
      const { scrape } = await serve({ flows });
      for (const w of ['a', 'b', 'c', 'd']) flows.record(tcpFlow(1, { source: { ip: '10.0.1.10', workload: w, namespace: 'default' } }));
      const m = await scrape();
      const opened = m.get('istio_tcp_connections_opened_total')!.samples;
      assert.deepEqual(
        opened.map((s) => [s.labels.source_workload, s.value]),
        [
          ['a', 1],
          ['b', 1],
          ['overflow', 2],
        ],
      );
    });
  });

  describe('palisade_* of the agent', function () {
    it('reports the flow reporter\'s counters', async function () {
      const reporter = new FlowReporter({ log: silentLogger(), bufferSize: 3 });
      const flows = new FlowMetrics();
      const fan = new FlowFanOut([flows, reporter], silentLogger());
      for (let i = 0; i < 5; i++) fan.record(tcpFlow(i));
      const { scrape } = await serve({ flows, reporter });
      const m = await scrape();
      const value = (n: string): number | undefined => sample(m, n)?.value;
      assert.deepEqual(
        ['palisade_flows_produced_total', 'palisade_flows_sent_total', 'palisade_flows_acknowledged_total', 'palisade_flows_lost_total', 'palisade_flows_buffered'].map(value),
        [5, 0, 0, 2, 3],
      );
      assert.equal(m.get('palisade_flows_buffered')?.type, 'gauge');
      reporter.close();
    });

    it('has no reporter counters without a reporter (no collector)', async function () {
      const { scrape } = await serve();
      const m = await scrape();
      assert.ok(m.has('palisade_flows_produced_total'));
      assert.equal(m.has('palisade_flows_lost_total'), false);
    });

    it('reports seconds to certificate expiry per identity, from the identity manager', async function () {
      const now = Date.now();
      const identities = () => ({
        identities: () => [
          { identity: WEB, notAfter: new Date(now + 3_600_000) },
          { identity: CLIENT, notAfter: undefined },
        ],
      });
      const { scrape } = await serve({ identities, now: () => now });
      const m = await scrape();
      assert.deepEqual(
        m.get('palisade_workload_certificate_expiry_seconds')?.samples.map((s) => [s.labels.identity, s.value]),
        [[WEB, 3600]],
      );
    });

    it('counts the routing state dropped to stay bounded (none before the proxy runs)', async function () {
      let router: { stats(): TrafficStats } | undefined;
      const { scrape } = await serve({ traffic: () => router });
      assert.equal(sample(await scrape(), 'palisade_traffic_state_dropped_total', { what: 'ejection' })?.value, 0);
      const mirrors = { answered: 10, failed: 1, 'dropped-in-flight-limit': 5, 'dropped-body-too-large': 2, 'dropped-no-endpoint': 0, 'dropped-incomplete': 0 };
      router = { stats: () => ({ ejectionsOverflowed: 4096, estimatesEvicted: 7, idleUpstreamsRefused: 3, mirrors }) };
      const m = await scrape();
      assert.equal(m.get('palisade_traffic_state_dropped_total')?.type, 'counter');
      assert.deepEqual(['ejection', 'latency-estimate', 'idle-upstream'].map((what) => sample(m, 'palisade_traffic_state_dropped_total', { what })?.value), [4096, 7, 3]);
      assert.equal(m.get('palisade_traffic_mirrors_total')?.type, 'counter');
      assert.deepEqual(Object.keys(mirrors).map((outcome) => sample(m, 'palisade_traffic_mirrors_total', { outcome })?.value), Object.values(mirrors), 'every mirrored copy counted by how it ended, drops by reason');
    });

    it('counts HBONE connections ended by an unanswered keepalive PING, by side (0 before the mesh runs)', async function () {
      let mesh: { source: number; destination: number } | undefined;
      const { scrape } = await serve({ hbone: () => mesh });
      const none = await scrape();
      assert.equal(none.get('palisade_hbone_keepalive_failures_total')?.type, 'counter');
      assert.deepEqual(['source', 'destination'].map((side) => sample(none, 'palisade_hbone_keepalive_failures_total', { side })?.value), [0, 0]);
      mesh = { source: 2, destination: 5 };
      const m = await scrape();
      assert.deepEqual(['source', 'destination'].map((side) => sample(m, 'palisade_hbone_keepalive_failures_total', { side })?.value), [2, 5]);
    });

    it('reports every eBPF map\'s entries and capacity, the kernel\'s counters and refused pods, and still answers when the data path cannot be read', async function () {
      let broken = false;
      const datapath = () => ({
        usage: () => {
          if (broken) throw new Error('closed');
          return [
            { map: 'palisade_pods', entries: 2, capacity: 2 },
            { map: 'palisade_conns', entries: 17, capacity: 1024 },
          ];
        },
        stats: () => ({ redirected: 40, origUpdateFail: 3, held: 5 }),
        dnsStats: () => ({ udp: 7 }),
      });
      const enrollment = () => ({ refusals: () => [{ reason: 'node-pods-full', count: 1 }] });
      const { scrape } = await serve({ datapath, enrollment });
      let m = await scrape();
      const pairs = (name: string, label: string): Array<[string | undefined, number]> => (m.get(name)?.samples ?? []).map((s) => [s.labels[label], s.value]);
      assert.deepEqual(pairs('palisade_bpf_map_entries', 'map'), [['palisade_pods', 2], ['palisade_conns', 17]]);
      assert.deepEqual(pairs('palisade_bpf_map_capacity', 'map'), [['palisade_pods', 2], ['palisade_conns', 1024]]);
      assert.deepEqual(pairs('palisade_datapath_events_total', 'event'), [['redirected', 40], ['orig_update_fail', 3], ['held', 5]]);
      assert.deepEqual(pairs('palisade_dns_capture_events_total', 'event'), [['udp', 7]]);
      assert.deepEqual(pairs('palisade_pods_refused_total', 'reason'), [['node-pods-full', 1]]);
      broken = true;
      await new Promise((r) => setTimeout(r, 1100)); // one walk of the maps serves a scrape's gauges for a second
      m = await scrape();
      assert.deepEqual(m.get('palisade_bpf_map_entries')?.samples ?? [], []);
      assert.deepEqual(m.get('palisade_bpf_map_capacity')?.samples ?? [], []);
    });
  });

  describe('palisade_* of the proxy\'s limits', function () {
    it('reports connections held and their caps, sniff bytes, and refusals by direction and reason', async function () {
      const connections = new ConnectionLimits({ outbound: 379, inbound: 253, perPod: 94 });
      connections.admit('outbound', '10.0.1.10');
      connections.admit('inbound', '10.0.2.10');
      connections.admit('inbound', '10.0.2.11');
      const sniff = new SniffBudget(16 * 1024 * 1024);
      sniff.hold('10.0.1.10').take(1500);
      const refusals = { counts: () => [{ direction: 'outbound' as const, reason: 'pod-connection-limit', count: 606 }] };
      const { scrape } = await serve({ limits: { connections, sniff, refusals } });
      const m = await scrape();
      const v = (name: string, labels: Record<string, string>): number | undefined => sample(m, name, labels)?.value;
      assert.deepEqual(
        [v('palisade_proxy_connections', { side: 'outbound' }), v('palisade_proxy_connections', { side: 'inbound' }), v('palisade_proxy_connection_limit', { side: 'per-pod' })],
        [1, 2, 94],
      );
      assert.deepEqual([v('palisade_sniff_bytes', { state: 'held' }), v('palisade_sniff_bytes', { state: 'budget' }), v('palisade_sniff_bytes', { state: 'per_pod_budget' })], [1500, 16_777_216, 4_194_304]);
      assert.equal(v('palisade_connections_refused_total', { direction: 'outbound', reason: 'pod-connection-limit' }), 606);
      assert.equal(m.get('palisade_connections_refused_total')?.type, 'counter');
    });
  });

  describe('the listener', function () {
    it('answers /healthz 503 until the agent is ready, then 200', async function () {
      let ready = false;
      const { url } = await serve({}, () => ready);
      assert.equal((await fetch(`${url}/healthz`)).status, 503);
      ready = true;
      const res = await fetch(`${url}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ok\n');
    });

    it('serves nothing else', async function () {
      const { url } = await serve();
      assert.equal((await fetch(`${url}/`)).status, 404);
      assert.equal((await fetch(`${url}/metrics/x`)).status, 404);
      assert.equal((await fetch(`${url}/metrics`, { method: 'POST', body: 'x' })).status, 405);
    });

    it('closes a connection from a refused peer (a pod\'s address) unanswered, and counts it', async function () {
      const refused = new MetricsServer({ registry: createAgentRegistry({ flows: new FlowMetrics() }), ready: () => true, refusePeer: (ip) => ip === '127.0.0.1', log: silentLogger() });
      servers.push(refused);
      const a = await refused.listen('127.0.0.1', 0);
      await assert.rejects(fetch(`http://127.0.0.1:${a.port}/metrics`));
      assert.equal(refused.refusedPeers, 1);
      const allowed = new MetricsServer({ registry: createAgentRegistry({ flows: new FlowMetrics() }), ready: () => true, refusePeer: (ip) => ip === '10.0.1.10', log: silentLogger() });
      servers.push(allowed);
      const b = await allowed.listen('127.0.0.1', 0);
      assert.equal((await fetch(`http://127.0.0.1:${b.port}/metrics`)).status, 200);
    });

    it('refuses an address it cannot use with PALISADE_ERR_LISTEN', async function () {
      // Held by something else (not another agent's metrics listener, which shares the port:
      // SO_REUSEPORT, for handovers).
      const holder = net.createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      const port = (holder.address() as net.AddressInfo).port;
      const other = new MetricsServer({ registry: createAgentRegistry({ flows: new FlowMetrics() }), ready: () => true, log: silentLogger() });
      try {
        await assert.rejects(other.listen('127.0.0.1', port), (e: Error & { code?: string }) => e.code === 'PALISADE_ERR_LISTEN' && /EADDRINUSE/.test(e.message));
      } finally {
        holder.close();
      }
    });

    it('shares its port with a successor agent\'s metrics listener (SO_REUSEPORT)', async function () {
      const { url } = await serve();
      const port = Number(new URL(url).port);
      const successor = new MetricsServer({ registry: createAgentRegistry({ flows: new FlowMetrics() }), ready: () => true, log: silentLogger() });
      try {
        assert.equal((await successor.listen('127.0.0.1', port)).port, port);
      } finally {
        await successor.close();
      }
    });
  });
});
