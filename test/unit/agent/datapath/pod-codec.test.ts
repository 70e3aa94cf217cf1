import { strict as assert } from 'node:assert';
import * as pc from '../../../../agent/datapath/pod-codec';
import { field, layout, parseDefine, parseEnum, POD_STRUCTS, source, structs } from './header-layout';

/** PALISADE_DROP_TCP_NOT_REDIRECTED -> the reason name the agent reports. */
const REASON_OF: Record<string, pc.DropReason> = {
  PALISADE_DROP_SPOOFED_MAC: 'spoofed-mac',
  PALISADE_DROP_SPOOFED_ARP: 'spoofed-arp',
  PALISADE_DROP_SPOOFED_IP: 'spoofed-source',
  PALISADE_DROP_IPV6: 'ipv6',
  PALISADE_DROP_NOT_IP: 'not-ip',
  PALISADE_DROP_MALFORMED: 'malformed',
  PALISADE_DROP_FRAGMENT: 'fragment',
  PALISADE_DROP_PROXY_PORT: 'proxy-port',
  PALISADE_DROP_TCP_NOT_REDIRECTED: 'tcp-not-redirected',
  PALISADE_DROP_TCP_NO_CONNECTION: 'tcp-no-connection',
  PALISADE_DROP_UDP_NOT_ALLOWED: 'udp-not-allowed',
  PALISADE_DROP_UDP_DENIED: 'udp-denied-by-policy',
  PALISADE_DROP_ICMP_NOT_ALLOWED: 'icmp-not-allowed',
  PALISADE_DROP_ICMP_DENIED: 'icmp-denied-by-policy',
  PALISADE_DROP_ICMP_UNRELATED: 'icmp-error-unrelated',
  PALISADE_DROP_PROTOCOL: 'protocol-not-allowed',
  PALISADE_DROP_STRICT_TCP: 'strict-not-from-agent',
  PALISADE_DROP_STRICT_UDP: 'strict-udp-not-allowed',
  PALISADE_DROP_STRICT_ICMP: 'strict-icmp',
  PALISADE_DROP_IPV6_LINK_LOCAL: 'ipv6-link-local',
};

describe('pod-codec', () => {
  describe('struct sizes', () => {
    const cases: [string, number][] = [
      ['palisade_iface', pc.IFACE_SIZE],
      ['palisade_drop_key', pc.DROP_KEY_SIZE],
      ['palisade_drop', pc.DROP_SIZE],
      ['palisade_drop6', pc.DROP6_SIZE],
      ['palisade_flow_key', pc.FLOW_KEY_SIZE],
      ['palisade_dgram', pc.DGRAM_SIZE],
      ['palisade_frag_key', 12],
      ['palisade_rule_key', pc.RULE_KEY_SIZE],
      ['palisade_rule', pc.RULE_SIZE],
      ['palisade_host', pc.HOST_SIZE],
      ['palisade_agent', pc.AGENT_SIZE],
    ];
    for (const [struct, size] of cases) {
      it(`${struct} is ${size} bytes in the header and in the codec`, () => assert.equal(layout(struct).size, size));
    }

    it('covers every per-pod struct', () => {
      assert.deepEqual(cases.map(([s]) => s).sort(), [...POD_STRUCTS].sort());
      for (const s of POD_STRUCTS) assert.ok(structs[s], `${s} is declared in bpf/palisade.h`);
    });
  });

  describe('constants', () => {
    it('DROP_REASONS follow enum palisade_drop_reason in order, from 1', () => {
      const enumerators = parseEnum(source, 'palisade_drop_reason').filter((e) => e !== 'PALISADE_DROP_MAX');
      assert.deepEqual([...pc.DROP_REASONS], enumerators.map((e) => REASON_OF[e]));
      assert.match(source, /PALISADE_DROP_SPOOFED_MAC = 1,/);
    });

    const defines: [string, number][] = [
      ['PALISADE_DIR_FROM_POD', pc.DIR_FROM_POD],
      ['PALISADE_DIR_TO_POD', pc.DIR_TO_POD],
      ['PALISADE_RULE_ALLOW', pc.RULE_ALLOW],
      ['PALISADE_RULE_DENY', pc.RULE_DENY],
      ['PALISADE_RULE_PREFIX_BITS', pc.RULE_PREFIX_BITS],
    ];
    for (const [define, value] of defines) {
      it(`${define} matches the header`, () => assert.equal(value, parseDefine(source, define)));
    }

    it('RULE_PREFIX_BITS covers palisade_rule_key from gen to the address', () => {
      assert.equal(pc.RULE_PREFIX_BITS, (field('palisade_rule_key', 'addr').offset - field('palisade_rule_key', 'gen').offset) * 8);
    });
  });

  describe('encodeIface / decodeIface', () => {
    it('puts every field at the header offset and round-trips', () => {
      const e = { podId: 0x01020304, flags: 2, ip: '10.0.1.11', mac: Buffer.from([2, 0, 0, 0xaa, 0xbb, 0xcc]) };
      const b = pc.encodeIface(e);
      assert.equal(b.length, pc.IFACE_SIZE);
      assert.equal(b.readUInt32LE(field('palisade_iface', 'pod_id').offset), 0x01020304);
      assert.equal(b.readUInt32LE(field('palisade_iface', 'flags').offset), 2);
      assert.deepEqual([...b.subarray(field('palisade_iface', 'ip4').offset, field('palisade_iface', 'ip4').offset + 4)], [10, 0, 1, 11]);
      const mac = field('palisade_iface', 'mac');
      assert.deepEqual([...b.subarray(mac.offset, mac.offset + mac.size)], [2, 0, 0, 0xaa, 0xbb, 0xcc]);
      assert.deepEqual(pc.decodeIface(b), e);
    });

    it('throws TypeError for a MAC that is not 6 bytes', () => {
      assert.throws(() => pc.encodeIface({ podId: 1, flags: 0, ip: '10.0.0.1', mac: Buffer.alloc(5) }), TypeError);
    });
  });

  describe('IPv6 drop samples', () => {
    it('names both addresses as people write them, from the header offsets', () => {
      const b = Buffer.alloc(pc.DROP6_SIZE);
      b.writeBigUInt64LE(77n, field('palisade_drop6', 'last_ns').offset);
      Buffer.from('20010db8000000000000000000000001', 'hex').copy(b, field('palisade_drop6', 'saddr').offset);
      Buffer.from('fd000000000000000000000000000abc', 'hex').copy(b, field('palisade_drop6', 'daddr').offset);
      assert.deepEqual(pc.decodeDrop6(b), { lastNs: 77n, source: '2001:db8::1', destination: 'fd00::abc' });
    });

    it('counts link-local chatter without a flow record, and nothing else', () => {
      assert.deepEqual([...pc.COUNTED_ONLY], ['ipv6-link-local']);
    });
  });

  describe('drop keys and counters', () => {
    it('round-trips a key at the header offsets', () => {
      const k: pc.DropKey = { podId: 9, reason: 'udp-not-allowed', direction: 'to-pod' };
      const b = pc.encodeDropKey(k);
      assert.equal(b[field('palisade_drop_key', 'reason').offset], 11);
      assert.equal(b[field('palisade_drop_key', 'dir').offset], pc.DIR_TO_POD);
      assert.deepEqual(pc.decodeDropKey(b), k);
    });

    it('reads a reason or direction it does not know as undefined', () => {
      assert.equal(pc.decodeDropKey(Buffer.from([1, 0, 0, 0, 200, 1, 0, 0])), undefined);
      assert.equal(pc.decodeDropKey(Buffer.from([1, 0, 0, 0, 1, 7, 0, 0])), undefined);
      assert.equal(pc.decodeDropKey(Buffer.from([1, 0, 0, 0, 0, 1, 0, 0])), undefined);
    });

    it('sums packets over CPUs and keeps the sample of the CPU that saw the newest', () => {
      const cpu = (packets: number, ns: number, src: number[], dst: number[], sport: number, dport: number, proto: number): Buffer => {
        const b = Buffer.alloc(pc.DROP_SIZE);
        b.writeBigUInt64LE(BigInt(packets), field('palisade_drop', 'packets').offset);
        b.writeBigUInt64LE(BigInt(ns), field('palisade_drop', 'last_ns').offset);
        Buffer.from(src).copy(b, field('palisade_drop', 'saddr').offset);
        Buffer.from(dst).copy(b, field('palisade_drop', 'daddr').offset);
        b.writeUInt16LE(sport, field('palisade_drop', 'sport').offset);
        b.writeUInt16LE(dport, field('palisade_drop', 'dport').offset);
        b[field('palisade_drop', 'proto').offset] = proto;
        b.writeUInt16LE(0x0800, field('palisade_drop', 'eth_proto').offset);
        return b;
      };
      const all = Buffer.concat([cpu(3, 100, [10, 0, 1, 10], [1, 1, 1, 1], 1000, 53, 17), cpu(4, 200, [10, 0, 1, 10], [172, 31, 0, 100], 40000, 9999, 17), cpu(0, 0, [0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0)]);
      assert.deepEqual(pc.decodeDrops(all), {
        packets: 7n,
        sample: { source: '10.0.1.10', destination: '172.31.0.100', sourcePort: 40000, destinationPort: 9999, protocol: 17, ethProto: 0x0800 },
      });
    });

    it('has no sample before the first drop', () => {
      assert.deepEqual(pc.decodeDrops(Buffer.alloc(pc.DROP_SIZE * 2)), { packets: 0n, sample: undefined });
    });
  });

  describe('flow keys', () => {
    it('keeps addresses and ports in network order', () => {
      const k = { podIp: '10.0.1.10', peerIp: '172.31.0.100', podPort: 0x1234, peerPort: 53, protocol: pc.IPPROTO_UDP };
      const b = pc.encodeFlowKey(k);
      assert.equal(b.length, pc.FLOW_KEY_SIZE);
      assert.deepEqual([...b.subarray(field('palisade_flow_key', 'pod_port').offset, field('palisade_flow_key', 'pod_port').offset + 2)], [0x12, 0x34]);
      assert.equal(b[field('palisade_flow_key', 'proto').offset], 17);
      assert.deepEqual(pc.decodeFlowKey(b), k);
    });
  });

  describe('decodeDgram', () => {
    it('reads every field from the header offset', () => {
      const b = Buffer.alloc(pc.DGRAM_SIZE);
      b.writeUInt32LE(5, field('palisade_dgram', 'pod_id').offset);
      b[field('palisade_dgram', 'dir').offset] = pc.DIR_FROM_POD;
      b.writeUInt32LE(77, field('palisade_dgram', 'rule').offset);
      b.writeBigUInt64LE(2n, field('palisade_dgram', 'packets_out').offset);
      b.writeBigUInt64LE(100n, field('palisade_dgram', 'bytes_out').offset);
      b.writeBigUInt64LE(1n, field('palisade_dgram', 'packets_in').offset);
      b.writeBigUInt64LE(60n, field('palisade_dgram', 'bytes_in').offset);
      assert.deepEqual(pc.decodeDgram(b), { podId: 5, direction: 'from-pod', rule: 77, packetsOut: 2n, bytesOut: 100n, packetsIn: 1n, bytesIn: 60n });
    });
  });

  describe('encodeRuleKey', () => {
    it('sets the prefix over the fixed part, the mapped prefix and the CIDR', () => {
      const b = pc.encodeRuleKey({ gen: 1, direction: 'from-pod', protocol: pc.IPPROTO_UDP, podId: 3, port: 53, cidr: '10.9.0.0/16' });
      assert.equal(b.length, pc.RULE_KEY_SIZE);
      assert.equal(b.readUInt32LE(0), 96 + 96 + 16);
      assert.equal(b[field('palisade_rule_key', 'gen').offset], 1);
      assert.equal(b[field('palisade_rule_key', 'dir').offset], pc.DIR_FROM_POD);
      assert.equal(b[field('palisade_rule_key', 'proto').offset], 17);
      assert.equal(b.readUInt32LE(field('palisade_rule_key', 'pod_id').offset), 3);
      assert.equal(b.readUInt16LE(field('palisade_rule_key', 'port').offset), 53);
      const addr = field('palisade_rule_key', 'addr');
      assert.deepEqual([...b.subarray(addr.offset, addr.offset + 16)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 0, 0]);
      assert.equal(pc.describeRuleKey(b), 'gen 1 dir 1 proto 17 pod 3 port 53 10.9.0.0/16');
    });

    for (const cidr of ['10.0.0.0', '10.0.0.0/33', '::/0', 'x/8']) {
      it(`throws TypeError for ${cidr}`, () => {
        assert.throws(() => pc.encodeRuleKey({ gen: 0, direction: 'to-pod', protocol: pc.IPPROTO_ICMP, podId: 1, port: 0, cidr }), TypeError);
      });
    }

    it('encodes the verdict and ref', () => {
      const b = pc.encodeRule({ verdict: 'deny', ref: 42 });
      assert.equal(b.readUInt32LE(field('palisade_rule', 'verdict').offset), pc.RULE_DENY);
      assert.equal(b.readUInt32LE(field('palisade_rule', 'ref').offset), 42);
    });
  });

  describe('agents', () => {
    it('round-trips pid and registration time', () => {
      assert.deepEqual(pc.decodeAgent(pc.encodeAgent(1234, 1_700_000_000)), { pid: 1234, since: 1_700_000_000 });
    });
  });
});
