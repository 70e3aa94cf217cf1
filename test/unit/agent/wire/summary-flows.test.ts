import { strict as assert } from 'node:assert';
import { dgramDelta, dgramFlow, dropFlow, protocolOf, type SummaryContext } from '../../../../agent/wire/summary-flows';
import { flowProblem } from '../../../../common/flow';

const CLIENT = { workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client', ip: '10.0.1.10' };
const WEB2 = { workload: 'web-2', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/web', mesh: true };

const ctx: SummaryContext = {
  node: 'node-1',
  intervalMs: 10_000,
  pod: (id) => (id === 1 ? CLIENT : undefined),
  peer: (ip) => (ip === '10.0.2.10' ? WEB2 : undefined),
  rule: (ref) => (ref === 3 ? { policy: 'default/client-out', rule: 1, reason: 'allowed-by-cidr' } : undefined),
};

describe('summary flows', () => {
  describe('protocolOf', () => {
    const cases: Array<[number, number, string]> = [
      [0x0800, 6, 'tcp'],
      [0x0800, 17, 'udp'],
      [0x0800, 1, 'icmp'],
      [0x0800, 47, 'other'],
      [0x0806, 0, 'arp'],
      [0x86dd, 0, 'other'],
      [0x86dd, 6, 'tcp'],
      [0x86dd, 17, 'udp'],
      [0x86dd, 58, 'icmp'],
      [0x86dd, 1, 'other'],
    ];
    for (const [eth, ip, name] of cases) it(`${eth.toString(16)}/${ip} is ${name}`, () => assert.equal(protocolOf(eth, ip), name));
  });

  describe('dropFlow', () => {
    it('names the pod as the source of what it sent, at the address it claimed, and the peer from the sample', () => {
      const f = dropFlow(
        { podId: 1, reason: 'spoofed-source', direction: 'from-pod' },
        { source: '10.0.1.77', destination: '172.31.0.100', sourcePort: 40000, destinationPort: 80, protocol: 6, ethProto: 0x0800 },
        3,
        ctx,
      );
      assert.deepEqual(
        [f.direction, f.source, f.destination, f.protocol, f.verdict, f.reason, f.count, f.mtls, f.bytesSent, f.durationMs],
        [
          'egress',
          { ip: '10.0.1.77', port: 40000, workload: 'client', namespace: 'default', identity: CLIENT.identity },
          { ip: '172.31.0.100', port: 80 },
          'tcp',
          'denied',
          'spoofed-source',
          3,
          false,
          0,
          10_000,
        ],
      );
      assert.equal(flowProblem(JSON.parse(JSON.stringify(f))), undefined, 'the collector accepts it');
    });

    it('is outbound towards a mesh workload, and leaves ports out of ARP and ICMP', () => {
      const f = dropFlow(
        { podId: 1, reason: 'icmp-not-allowed', direction: 'from-pod' },
        { source: CLIENT.ip, destination: '10.0.2.10', sourcePort: 8, destinationPort: 0, protocol: 1, ethProto: 0x0800 },
        1,
        ctx,
      );
      assert.deepEqual([f.direction, f.protocol, f.destination], ['outbound', 'icmp', { ip: '10.0.2.10', workload: 'web-2', namespace: 'default', identity: WEB2.identity }]);
    });

    it('names the pod as the destination of what it was sent', () => {
      const f = dropFlow(
        { podId: 1, reason: 'strict-udp-not-allowed', direction: 'to-pod' },
        { source: '10.0.1.12', destination: CLIENT.ip, sourcePort: 40001, destinationPort: 5140, protocol: 17, ethProto: 0x0800 },
        4,
        ctx,
      );
      assert.deepEqual([f.direction, f.source, f.destination.workload, f.destination.port], ['inbound', { ip: '10.0.1.12', port: 40001 }, 'client', 5140]);
    });

    it('still reports a counter of a pod it no longer knows, or without a sample', () => {
      const f = dropFlow({ podId: 9, reason: 'ipv6', direction: 'from-pod' }, undefined, 2, ctx);
      assert.deepEqual([f.protocol, f.source.ip, f.destination.ip, f.count], ['other', '0.0.0.0', '0.0.0.0', 2]);
      assert.equal(flowProblem(JSON.parse(JSON.stringify(f))), undefined);
    });
  });

  describe('dgramFlow', () => {
    const key = { podId: 1, podIp: CLIENT.ip, peerIp: '172.31.0.100', podPort: 40000, peerPort: 5140, protocol: 17 };

    it('an allowed UDP flow from the pod: its rule, bytes each way, packets as count', () => {
      const f = dgramFlow({ ...key, direction: 'from-pod', rule: 3 }, { packetsOut: 2, bytesOut: 100, packetsIn: 1, bytesIn: 60 }, ctx);
      assert.deepEqual(
        [f.direction, f.source.workload, f.destination, f.protocol, f.verdict, f.reason, f.policy, f.rule, f.bytesSent, f.bytesReceived, f.count, f.mtls],
        ['egress', 'client', { ip: '172.31.0.100', port: 5140 }, 'udp', 'allowed', 'allowed-by-cidr', 'default/client-out', 1, 100, 60, 3, false],
      );
    });

    it('a flow to the pod turns the directions round', () => {
      const f = dgramFlow({ ...key, peerIp: '10.0.2.10', direction: 'to-pod', rule: 0 }, { packetsOut: 1, bytesOut: 10, packetsIn: 5, bytesIn: 500 }, ctx);
      assert.deepEqual([f.direction, f.source.workload, f.destination.workload, f.bytesSent, f.bytesReceived, f.reason, f.policy], ['inbound', 'web-2', 'client', 500, 10, 'not-strict', undefined]);
    });

    it('an exclusion from the pod, and ICMP without ports', () => {
      const f = dgramFlow({ ...key, protocol: 1, podPort: 0x5150, peerPort: 0, direction: 'from-pod', rule: 0 }, { packetsOut: 1, bytesOut: 64, packetsIn: 1, bytesIn: 64 }, ctx);
      assert.deepEqual([f.protocol, f.reason, f.source.port, f.destination.port], ['icmp', 'excluded', undefined, undefined]);
    });

    it('still reports the last interval of a pod no longer enrolled, named by its address', () => {
      const f = dgramFlow({ ...key, podId: 9, direction: 'from-pod', rule: 3 }, { packetsOut: 4, bytesOut: 400, packetsIn: 1, bytesIn: 50 }, ctx);
      assert.deepEqual(
        [f.source, f.destination, f.verdict, f.reason, f.bytesSent, f.bytesReceived, f.count],
        [{ ip: CLIENT.ip, port: 40000 }, { ip: '172.31.0.100', port: 5140 }, 'allowed', 'allowed-by-cidr', 400, 50, 5],
      );
      assert.equal(flowProblem(JSON.parse(JSON.stringify(f))), undefined, 'the collector accepts it');
    });
  });

  describe('dgramDelta', () => {
    const c = (packetsOut: number, bytesOut: number, packetsIn: number, bytesIn: number) => ({
      packetsOut: BigInt(packetsOut),
      bytesOut: BigInt(bytesOut),
      packetsIn: BigInt(packetsIn),
      bytesIn: BigInt(bytesIn),
    });
    const cases: Array<[string, ReturnType<typeof c> | undefined, ReturnType<typeof c>, [number, number, number, number]]> = [
      ['first seen: all of it', undefined, c(3, 300, 2, 200), [3, 300, 2, 200]],
      ['the difference', c(3, 300, 2, 200), c(5, 420, 2, 200), [2, 120, 0, 0]],
      ['nothing new', c(3, 300, 2, 200), c(3, 300, 2, 200), [0, 0, 0, 0]],
      ['a new flow under the key (fewer packets out): all it counted', c(30, 3000, 20, 2000), c(2, 200, 25, 2500), [2, 200, 25, 2500]],
      ['a new flow under the key (fewer packets in)', c(30, 3000, 20, 2000), c(31, 3100, 1, 100), [31, 3100, 1, 100]],
      ['a new flow under the key (fewer bytes only)', c(3, 3000, 2, 2000), c(4, 100, 2, 2000), [4, 100, 2, 2000]],
    ];
    for (const [name, before, now, want] of cases) {
      it(name, () => {
        const d = dgramDelta(before, now);
        assert.deepEqual([d.packetsOut, d.bytesOut, d.packetsIn, d.bytesIn], want);
      });
    }
  });
});
