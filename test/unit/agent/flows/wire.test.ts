import { strict as assert } from 'node:assert';
import { encodeFlow } from '../../../../agent/flows/wire';
import type { FlowRecord } from '../../../../common/flow';
import { flowProblem } from '../../../../common/flow';
import { httpFlow, tcpFlow } from './fixtures';

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
      ['an unknown protocol', tcpFlow(1, { protocol: 'sctp' as never })],
      ['no source', { ...tcpFlow(1), source: undefined }],
      ['undefined', undefined],
    ];
    for (const [name, flow] of cases) {
      it(`names the problem with ${name}`, function () {
        const e = encodeFlow(flow as FlowRecord);
        assert.equal(e.json, undefined);
        assert.equal(typeof e.problem, 'string');
      });
    }
  });
});
