import { strict as assert } from 'node:assert';
import { encodeFlow, writeFlowJson } from '../../../../agent/flows/wire';
import { encodeFlowChecked } from '../../../../agent/flows/wire-checked';
import type { FlowRecord } from '../../../../common/flow';
import { flowProblem } from '../../../../common/flow';
import { Rng } from '../../../harness/random';
import { httpFlow, tcpFlow } from './fixtures';

/** Values a field might hold, from the proxy or from a bug: each is tried in every field. */
const ODD: unknown[] = [
  undefined, null, 0, -0, -1, 1.5, 2.5, 0.4999, 65535, 65536, 999, 1000, 2 ** 53 - 1, 2 ** 53, 1e21, Number.NaN, Infinity, -Infinity,
  true, false, '', 'x', '0', 'a"b', 'a\\b', 'line\nbreak', 'tab\there', '\u0000', '\u001f', '\u007f', 'é', '日本', '😀', '\ud800', 'x\udc00', '\u2028',
  'r'.repeat(32), 'r'.repeat(33), 'r'.repeat(63), 'r'.repeat(64), 'r'.repeat(65), 'r'.repeat(128), 'r'.repeat(129), 'r'.repeat(512), 'r'.repeat(513),
  '2024-05-06T07:08:09.123Z', '2024-05-06T07:08:09Z', '2024-05-06', 'yesterday', '2024-13-45T99:99:99.999Z', '2024-05-06T07:08:60.000Z', '+012024-05-06T07:08:09.123Z',
  'inbound', 'outbound', 'egress', 'tcp', 'tls', 'http', 'allowed', 'denied', 'audit', 'error',
  [], ['x'], {}, { ip: '10.0.0.1' }, { ip: '10.0.0.1', port: 80, extra: 1 }, { method: 'GET', path: '/', status: 200 }, { method: 'GET', path: '/', status: 200, x: 1 },
  { policy: 'ns/p', rule: 0 }, { policy: 'ns/p', rule: -1 }, { policy: 'ns/p', rule: 0, x: 1 },
  '4bf92f3577b34da6a3ce929d0e0e4736', '4BF92F3577B34DA6A3CE929D0E0E4736', '00000000000000000000000000000000', '4bf92f3577b34da6a3ce929d0e0e473', '4bf92f3577b34da6a3ce929d0e0e47361',
];

const FIELDS = ['time', 'node', 'direction', 'source', 'destination', 'protocol', 'http', 'dns', 'verdict', 'reason', 'policy', 'rule', 'audit', 'mtls', 'bytesSent', 'bytesReceived', 'durationMs', 'count', 'traceId', 'traffic', 'extra'];
const ODD_ANSWERS: unknown[] = [[], ['192.0.2.7'], ['edge.example.net.', '192.0.2.7'], Array.from({ length: 16 }, (_, i) => `10.0.0.${i}`), Array.from({ length: 17 }, (_, i) => `10.0.0.${i}`), [1], ['a'.repeat(1025)], 'x', null];
const ENDPOINT_FIELDS = ['ip', 'port', 'workload', 'namespace', 'identity', 'host', 'podId'];

/** A record like the proxy's, then 0–3 fields (or endpoint, http or audit fields) set to odd values. */
function generated(rng: Rng): FlowRecord {
  const base = rng.chance(0.6) ? httpFlow(rng.int(100_000)) : tcpFlow(rng.int(100_000));
  const f = { ...base, time: new Date(rng.int(2 ** 31) * 1000 + rng.int(1000)).toISOString(), durationMs: rng.int(100_000) / (rng.chance(0.5) ? 1 : 7) } as Record<string, unknown>;
  if (rng.chance(0.2)) f.audit = { policy: 'default/audit-all', rule: rng.int(4) };
  if (rng.chance(0.15)) {
    f.protocol = 'dns';
    f.http = undefined;
    f.dns = { type: rng.pick(['A', 'AAAA', 'TXT']), rcode: rng.pick(['NOERROR', 'NXDOMAIN']), answers: rng.pick(ODD_ANSWERS.slice(0, 4)) };
  }
  if (rng.chance(0.1)) f.count = rng.int(3) * 1000 + (rng.chance(0.1) ? 0.5 : 0);
  if (rng.chance(0.2)) f.traffic = { route: 'default/web', rule: rng.int(4), backend: 'default/web-v2', attempts: 1 + rng.int(3) };
  if (rng.chance(0.2)) f.traceId = rng.text('0123456789abcdef', 32);
  if (rng.chance(0.1) && typeof f.http === 'object' && f.http !== null) f.http = { ...(f.http as object), grpcStatus: rng.int(17) };
  if (rng.chance(0.2)) (f.destination as Record<string, unknown>) = { ...(f.destination as object), host: rng.text('ab.-:_Z09"\\\u0001é', rng.int(12)) };
  const changes = rng.int(4);
  for (let i = 0; i < changes; i++) {
    const where = rng.int(6);
    const odd = rng.pick(ODD);
    if (where === 0) f[rng.pick(FIELDS)] = odd;
    else if (where === 1) {
      const side = rng.chance(0.5) ? 'source' : 'destination';
      if (typeof f[side] === 'object' && f[side] !== null) f[side] = { ...(f[side] as object), [rng.pick(ENDPOINT_FIELDS)]: odd };
    } else if (where === 2) f.http = { ...(typeof f.http === 'object' ? (f.http as object) : {}), [rng.pick(['method', 'path', 'status', 'grpcStatus'])]: odd };
    else if (where === 3) f.audit = { policy: 'p', rule: 0, [rng.pick(['policy', 'rule'])]: odd };
    else if (where === 5) f.traffic = { route: 'r', rule: 0, backend: 'b', attempts: 1, [rng.pick(['route', 'rule', 'backend', 'attempts', 'x'])]: odd };
    else f.dns = { type: 'A', rcode: 'NOERROR', answers: [], [rng.pick(['type', 'rcode', 'answers', 'answers', 'x'])]: rng.chance(0.5) ? rng.pick(ODD_ANSWERS) : odd };
  }
  return f as unknown as FlowRecord;
}

describe('encodeFlow', function () {
  describe('records the collector accepts', function () {
    const cases: Array<[string, FlowRecord]> = [
      ['an inbound HTTP request', httpFlow(1)],
      ['an outbound TCP connection', tcpFlow(1)],
      ['an egress TLS connection with a host', tcpFlow(1, { direction: 'egress', protocol: 'tls', destination: { ip: '93.184.216.34', port: 443, host: 'example.com' }, mtls: false })],
      ['a request refused before authz (empty method, path, host)', httpFlow(1, { http: { method: '', path: '', status: 400 }, verdict: 'denied', reason: 'bad-request' })],
      ['an audited request', httpFlow(1, { verdict: 'audit', audit: { policy: 'default/audit-all', rule: 2 } })],
      ['a kernel summary of dropped UDP packets', tcpFlow(1, { protocol: 'udp', verdict: 'denied', reason: 'udp-not-allowed', mtls: false, count: 40 })],
      ['a kernel summary of spoofed ARP', tcpFlow(1, { protocol: 'arp', verdict: 'denied', reason: 'spoofed-arp', mtls: false, count: 1 })],
      ['a DNS query', tcpFlow(1, { protocol: 'dns', destination: { ip: '10.96.0.10', port: 53, host: 'api.example.com' }, dns: { type: 'A', rcode: 'NOERROR', answers: ['edge.example.net.', '192.0.2.7'] }, mtls: false })],
      ['a DNS query refused by policy', tcpFlow(1, { protocol: 'dns', destination: { ip: '10.96.0.10', port: 53, host: 'evil.example' }, dns: { type: 'AAAA', rcode: 'NXDOMAIN', answers: [] }, verdict: 'denied', reason: 'host-not-allowed', policy: 'default/client-out' })],
      ['a gRPC call with its grpc-status', httpFlow(1, { http: { method: 'POST', path: '/shop.Cart/Add', status: 200, grpcStatus: 14 } })],
      ['a routed request (HTTPRoute, backend, attempts)', httpFlow(1, { direction: 'outbound', traffic: { route: 'default/web', rule: 1, backend: 'default/web-v2', attempts: 2 } })],
    ];
    for (const [name, flow] of cases) {
      it(`encodes ${name} as JSON the collector's flowProblem accepts`, function () {
        const e = encodeFlow(flow);
        assert.equal(e.problem, undefined);
        assert.equal(flowProblem(JSON.parse(e.json!)), undefined);
      });
    }

    it('keeps the count of a summary', function () {
      assert.equal((JSON.parse(encodeFlow(tcpFlow(1, { protocol: 'icmp', count: 7 })).json!) as FlowRecord).count, 7);
    });

    it('keeps a DNS query\'s type, rcode and answers', function () {
      const dns = { type: 'A', rcode: 'NOERROR', answers: ['192.0.2.7'] };
      assert.deepEqual((JSON.parse(encodeFlow(tcpFlow(1, { protocol: 'dns', dns })).json!) as FlowRecord).dns, dns);
    });

    it('rounds a fractional HTTP duration to whole milliseconds', function () {
      assert.equal((JSON.parse(encodeFlow(httpFlow(1, { durationMs: 12.5004 })).json!) as FlowRecord).durationMs, 13);
    });

    it('leaves out fields the collector does not know, and undefined ones', function () {
      const flow = { ...tcpFlow(1), extra: 'x', policy: undefined, source: { ...tcpFlow(1).source, workload: undefined, podId: 3 } } as unknown as FlowRecord;
      const wire = JSON.parse(encodeFlow(flow).json!) as Record<string, unknown>;
      assert.equal('extra' in wire, false);
      assert.deepEqual(Object.keys(wire.source as object), ['ip', 'port', 'namespace', 'identity']);
    });
  });

  describe('records the collector would refuse', function () {
    const cases: Array<[string, unknown]> = [
      ['a reason over 128 characters', httpFlow(1, { reason: 'r'.repeat(129) })],
      ['a negative byte count', tcpFlow(1, { bytesSent: -1 })],
      ['an unknown direction', tcpFlow(1, { direction: 'sideways' as never })],
      ['a count of zero', tcpFlow(1, { protocol: 'udp', count: 0 })],
      ['no source', { ...tcpFlow(1), source: undefined }],
      ['undefined', undefined],
      ['DNS answers past 16', tcpFlow(1, { protocol: 'dns', dns: { type: 'A', rcode: 'NOERROR', answers: Array<string>(17).fill('10.0.0.1') } })],
      ['a DNS record without its rcode', tcpFlow(1, { protocol: 'dns', dns: { type: 'A', answers: [] } as never })],
      ['an unknown protocol', tcpFlow(1, { protocol: 'quic' as never })],
      ['a grpc-status past 99', httpFlow(1, { http: { method: 'POST', path: '/a/b', status: 200, grpcStatus: 100 } })],
    ];
    for (const [name, flow] of cases) {
      it(`names the problem with ${name}`, function () {
        const e = encodeFlow(flow as FlowRecord);
        assert.equal(e.json, undefined);
        assert.equal(typeof e.problem, 'string');
      });
    }
  });

  describe('golden: the same bytes as the plain conversion (wire-checked.ts)', function () {
    it('writes 200,000 generated records — valid, borderline and broken — exactly as encodeFlowChecked does, naming the same problems', function () {
      this.timeout(60_000);
      const rng = new Rng(17);
      let accepted = 0;
      let fast = 0;
      for (let i = 0; i < 200_000; i++) {
        const f = generated(rng);
        const want = encodeFlowChecked(f);
        const got = encodeFlow(f);
        if (got.json !== want.json || got.problem !== want.problem) assert.deepEqual(got, want, `record ${i} (seed 17): ${JSON.stringify(f)}`);
        const written = writeFlowJson(f);
        if (want.json !== undefined) {
          accepted += 1;
          if (written !== undefined) fast += 1;
          assert.equal(flowProblem(JSON.parse(want.json)), undefined);
        } else assert.equal(written, undefined, `record ${i}: the fast writer vouched for a record the collector refuses`);
      }
      assert.ok(accepted > 50_000 && accepted < 190_000, `${accepted} of 200000 accepted: the set must hold both kinds`);
      // An accepted record leaves the fast path only for an odd value the plain conversion
      // repairs (an array where an endpoint belongs, a count it rounds into range).
      assert.ok(fast / accepted > 0.95, `${fast} of ${accepted} accepted records written on the fast path`);
    });

    it('writes every record like the proxy makes on the fast path', function () {
      for (let i = 0; i < 1000; i++) {
        for (const f of [httpFlow(i), tcpFlow(i), httpFlow(i, { audit: { policy: 'a/b', rule: 1 }, durationMs: i / 3 })]) {
          assert.equal(writeFlowJson(f), encodeFlowChecked(f).json);
        }
      }
    });
  });
});
