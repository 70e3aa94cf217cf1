import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as codec from '../../../../agent/datapath/codec';
import { field, layout, parseDefine, parseEnum, POD_STRUCTS, source, statName, structs } from './header-layout';

function mapped(a: number, b: number, c: number, d: number): Buffer {
  return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]);
}

describe('codec', () => {
  describe('struct sizes', () => {
    const cases: [string, number, number][] = [
      ['palisade_config', codec.CONFIG_SIZE, 8],
      ['palisade_pod', codec.POD_SIZE, 16],
      ['palisade_orig', codec.ORIG_SIZE, 32],
      ['palisade_tuple', codec.TUPLE_SIZE, 24],
      ['palisade_lpm_key', codec.LPM_KEY_SIZE, 20],
    ];
    for (const [struct, codecSize, documented] of cases) {
      it(`${struct} is ${documented} bytes in the header and in the codec`, () => {
        assert.equal(layout(struct).size, documented, `bpf/palisade.h: sizeof(struct ${struct})`);
        assert.equal(codecSize, layout(struct).size, `codec size of ${struct}`);
      });
    }

    it('covers every struct the header declares', () => {
      assert.deepEqual(Object.keys(structs).filter((s) => !POD_STRUCTS.includes(s)).sort(), cases.map(([s]) => s).sort());
    });
  });

  describe('constants', () => {
    it('STAT_NAMES follow enum palisade_stat in order', () => {
      const enumerators = parseEnum(source, 'palisade_stat').filter((e) => e !== 'PALISADE_STAT_MAX');
      assert.deepEqual([...codec.STAT_NAMES], enumerators.map(statName));
    });

    it('DNS_STAT_NAMES follow enum palisade_dns_stat of bpf/dns.bpf.c in order', () => {
      const dns = readFileSync(path.resolve(__dirname, '../../../../../bpf/dns.bpf.c'), 'utf8');
      const enumerators = parseEnum(dns, 'palisade_dns_stat').filter((e) => e !== 'PALISADE_DNS_STAT_MAX');
      assert.deepEqual([...codec.DNS_STAT_NAMES], enumerators.map((e) => statName(e.replace(/^PALISADE_DNS_STAT_/, 'PALISADE_STAT_'))));
    });

    const flags: [string, number][] = [
      ['PALISADE_POD_REDIRECT', codec.POD_FLAG_REDIRECT],
      ['PALISADE_POD_STRICT', codec.POD_FLAG_STRICT],
    ];
    for (const [define, value] of flags) {
      it(`${define} matches the header`, () => assert.equal(value, parseDefine(source, define)));
    }
  });

  describe('byte order', () => {
    it('assumes a little-endian host (ports are host order in the kernel)', () => {
      assert.equal(os.endianness(), 'LE', 'the codec writes host-order fields little-endian');
    });

    it('encodeConfig writes the proxy IP in network order and the ports in host order', () => {
      const b = codec.encodeConfig('10.1.2.3', 15001, 15053);
      const ip = field('palisade_config', 'proxy_ip4');
      const port = field('palisade_config', 'proxy_port');
      const dns = field('palisade_config', 'dns_port');
      assert.deepEqual([...b.subarray(ip.offset, ip.offset + ip.size)], [10, 1, 2, 3]);
      assert.deepEqual([...b.subarray(port.offset, port.offset + port.size)], [15001 & 0xff, 15001 >> 8]);
      assert.deepEqual([...b.subarray(dns.offset, dns.offset + dns.size)], [15053 & 0xff, 15053 >> 8]);
    });

    it('encodePort writes host order (little-endian)', () => {
      assert.deepEqual([...codec.encodePort(0x1f49)], [0x49, 0x1f]);
    });

    it('encodeNetnsCookie writes a host-order u64', () => {
      assert.deepEqual([...codec.encodeNetnsCookie(0x0102030405060708n)], [8, 7, 6, 5, 4, 3, 2, 1]);
    });
  });

  describe('ipv4Bytes', () => {
    const good: [string, number[]][] = [
      ['10.0.0.1', [10, 0, 0, 1]],
      ['0.0.0.0', [0, 0, 0, 0]],
      ['255.255.255.255', [255, 255, 255, 255]],
      ['192.168.1.200', [192, 168, 1, 200]],
    ];
    for (const [ip, bytes] of good) {
      it(`${ip} -> ${bytes.join(' ')} (network order)`, () => assert.deepEqual([...codec.ipv4Bytes(ip)], bytes));
    }

    const bad = ['10.0.0', '10.0.0.256', '::1', '', 'a.b.c.d', '010.0.0.1', '10.0.0.1 ', '10.0.0.0/8'];
    for (const ip of bad) {
      it(`throws TypeError for ${JSON.stringify(ip)}`, () => assert.throws(() => codec.ipv4Bytes(ip), TypeError));
    }
  });

  describe('mappedBytes', () => {
    const cases: [string, Buffer][] = [
      ['10.1.2.3', mapped(10, 1, 2, 3)],
      ['::ffff:10.1.2.3', mapped(10, 1, 2, 3)],
      ['0.0.0.0', mapped(0, 0, 0, 0)],
    ];
    for (const [ip, bytes] of cases) {
      it(`maps ${ip} to ::ffff:a.b.c.d`, () => assert.deepEqual(codec.mappedBytes(ip), bytes));
    }

    for (const ip of ['::1', '::ffff:10.0.0', 'fe80::1']) {
      it(`throws TypeError for ${ip}`, () => assert.throws(() => codec.mappedBytes(ip), TypeError));
    }
  });

  describe('addressFromBytes', () => {
    const cases: [string, Buffer, string][] = [
      ['an IPv4-mapped address as a dotted quad', mapped(10, 1, 2, 3), '10.1.2.3'],
      ['::1 as uncompressed groups', Buffer.from([...Array(15).fill(0), 1]), '0:0:0:0:0:0:0:1'],
      ['an address with ffff in the wrong place as IPv6', Buffer.from([...Array(8).fill(0), 0xff, 0xff, 0, 0, 10, 0, 0, 1]), '0:0:0:0:ffff:0:a00:1'],
    ];
    for (const [what, bytes, text] of cases) {
      it(`reads ${what}`, () => assert.equal(codec.addressFromBytes(bytes), text));
    }
  });

  describe('encodeNetnsCookie / decodeNetnsCookie', () => {
    for (const cookie of [0n, 1n, 4026531840n, 2n ** 63n, 2n ** 64n - 1n]) {
      it(`round-trips ${cookie}`, () => {
        const b = codec.encodeNetnsCookie(cookie);
        assert.equal(b.length, 8);
        assert.equal(codec.decodeNetnsCookie(b), cookie);
      });
    }

    for (const cookie of [-1n, 2n ** 64n]) {
      it(`throws RangeError for ${cookie}`, () => assert.throws(() => codec.encodeNetnsCookie(cookie), RangeError));
    }
  });

  describe('encodePod / decodePod', () => {
    const pods: codec.PodEntry[] = [
      { podId: 1, flags: codec.POD_FLAG_REDIRECT, ip: '10.0.1.11', ifindex: 7 },
      { podId: 4096, flags: codec.POD_FLAG_REDIRECT | codec.POD_FLAG_STRICT, ip: '192.168.255.254', ifindex: 0 },
      { podId: 0xffffffff, flags: 0, ip: undefined, ifindex: 0x7fffffff },
    ];
    for (const pod of pods) {
      it(`round-trips ${JSON.stringify(pod)}`, () => {
        const b = codec.encodePod(pod);
        assert.equal(b.length, layout('palisade_pod').size);
        assert.deepEqual(codec.decodePod(b), pod);
      });
    }

    it('puts every field at the header offset', () => {
      const b = codec.encodePod({ podId: 0x01020304, flags: codec.POD_FLAG_STRICT, ip: '10.9.8.7', ifindex: 0x0a0b0c0d });
      assert.equal(b.readUInt32LE(field('palisade_pod', 'pod_id').offset), 0x01020304);
      assert.equal(b.readUInt32LE(field('palisade_pod', 'flags').offset), codec.POD_FLAG_STRICT);
      const ip = field('palisade_pod', 'ip4');
      assert.deepEqual([...b.subarray(ip.offset, ip.offset + 4)], [10, 9, 8, 7]);
      assert.equal(b.readUInt32LE(field('palisade_pod', 'ifindex').offset), 0x0a0b0c0d);
    });

    it('reads an address of 0 as unknown', () => {
      assert.equal(codec.decodePod(codec.encodePod({ podId: 1, flags: 0, ip: '0.0.0.0', ifindex: 0 })).ip, undefined);
    });

    it('throws TypeError for a bad pod address', () => {
      assert.throws(() => codec.encodePod({ podId: 1, flags: 0, ip: '10.0.1', ifindex: 0 }), TypeError);
    });
  });

  describe('decodeOrig', () => {
    it('reads every field from the header offset', () => {
      const b = Buffer.alloc(layout('palisade_orig').size);
      mapped(10, 96, 0, 10).copy(b, field('palisade_orig', 'dst').offset);
      b.writeUInt16LE(8080, field('palisade_orig', 'dst_port').offset);
      b.writeUInt32LE(42, field('palisade_orig', 'pod_id').offset);
      b.writeBigUInt64LE(4026532000n, field('palisade_orig', 'netns_cookie').offset);
      assert.deepEqual(codec.decodeOrig(b), { dst: { ip: '10.96.0.10', port: 8080 }, podId: 42, netnsCookie: 4026532000n });
    });
  });

  describe('encodeTuple', () => {
    const cases: [string, number][] = [
      ['10.0.1.11', 40000],
      ['::ffff:10.0.1.11', 1],
      ['192.168.0.1', 65535],
    ];
    for (const [ip, port] of cases) {
      it(`puts ${ip}:${port} at the header offsets (IPv4-mapped, host-order port)`, () => {
        const b = codec.encodeTuple(ip, port);
        assert.equal(b.length, layout('palisade_tuple').size);
        const ipField = field('palisade_tuple', 'ip');
        assert.equal(codec.addressFromBytes(b.subarray(ipField.offset, ipField.offset + ipField.size)), ip.replace('::ffff:', ''));
        assert.equal(b.readUInt16LE(field('palisade_tuple', 'port').offset), port);
        assert.equal(b.readUInt16LE(field('palisade_tuple', 'reserved').offset), 0);
        assert.equal(b.readUInt32LE(field('palisade_tuple', 'reserved2').offset), 0);
      });
    }

    it('throws TypeError for a bad address', () => assert.throws(() => codec.encodeTuple('10.0.1', 80), TypeError));
  });

  describe('encodeLpmKey / decodeLpmKey', () => {
    const roundTrips: [string, string, number][] = [
      ['10.0.0.0/8', '10.0.0.0/8', 104],
      ['0.0.0.0/0', '0.0.0.0/0', 96],
      ['10.96.0.0/12', '10.96.0.0/12', 108],
      ['192.168.1.1/32', '192.168.1.1/32', 128],
      ['169.254.169.254', '169.254.169.254/32', 128],
    ];
    for (const [cidr, back, prefixlen] of roundTrips) {
      it(`${cidr} -> prefixlen ${prefixlen} over the IPv4-mapped address -> ${back}`, () => {
        const b = codec.encodeLpmKey(cidr);
        assert.equal(b.length, layout('palisade_lpm_key').size);
        assert.equal(b.readUInt32LE(field('palisade_lpm_key', 'prefixlen').offset), prefixlen);
        const addr = field('palisade_lpm_key', 'addr');
        assert.deepEqual(b.subarray(addr.offset, addr.offset + addr.size), codec.mappedBytes(cidr.split('/')[0]!));
        assert.equal(codec.decodeLpmKey(b), back);
      });
    }

    const bad = ['10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/8.5', '10.0.0.0/x', '10.0.0/8', '::1/128', '/8', 'x/8', ''];
    for (const cidr of bad) {
      it(`throws TypeError for ${JSON.stringify(cidr)}`, () => assert.throws(() => codec.encodeLpmKey(cidr), TypeError));
    }

    // Regression: Number('') is 0, so an empty prefix used to become /0 and exclude every
    // destination from redirection.
    for (const cidr of ['10.0.0.0/', '10.0.0.0/1e1', '10.0.0.0/ 8', '10.0.0.0/0x10', '10.0.0.0/8/9']) {
      it(`throws TypeError for ${JSON.stringify(cidr)} (bug: empty or odd prefixes were accepted)`, () =>
        assert.throws(() => codec.encodeLpmKey(cidr), TypeError));
    }
  });

  describe('encodePort / decodePort', () => {
    for (const port of [1, 80, 443, 15001, 65535]) {
      it(`round-trips ${port}`, () => assert.equal(codec.decodePort(codec.encodePort(port)), port));
    }

    for (const port of [-1, 65536]) {
      it(`throws RangeError for ${port}`, () => assert.throws(() => codec.encodePort(port), RangeError));
    }
  });

  describe('sumPerCpu', () => {
    function perCpu(...values: bigint[]): Buffer {
      const b = Buffer.alloc(values.length * 8);
      values.forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
      return b;
    }

    const cases: [string, Buffer, bigint][] = [
      ['no CPUs', Buffer.alloc(0), 0n],
      ['one CPU', perCpu(7n), 7n],
      ['four CPUs', perCpu(1n, 2n, 3n, 4n), 10n],
      ['slots past 2^53 without losing precision', perCpu(2n ** 60n, 2n ** 60n, 1n), 2n ** 61n + 1n],
      ['slots whose sum passes 2^64', perCpu(2n ** 64n - 1n, 1n), 2n ** 64n],
      ['a trailing partial slot ignored', Buffer.concat([perCpu(5n), Buffer.from([1, 2, 3])]), 5n],
    ];
    for (const [what, b, sum] of cases) {
      it(`sums ${what}`, () => assert.equal(codec.sumPerCpu(b), sum));
    }
  });
});
