import { strict as assert } from 'node:assert';
import { isIP } from 'node:net';
import { cidrContains, formatIp, IpAddr, isMetadataAddress, parseCidr, parseIpInto, type Cidr } from '../../../../common/policy/ip';

function parsed(text: string): IpAddr {
  const ip = new IpAddr();
  assert.ok(parseIpInto(text, ip, true), `${text} should parse`);
  return ip;
}

function cidr(text: string): Cidr {
  const r = parseCidr(text);
  assert.ok('cidr' in r, `${text}: ${'problem' in r ? r.problem : ''}`);
  return r.cidr;
}

describe('policy IP addresses', () => {
  describe('parseIpInto', () => {
    const corpus = [
      '0.0.0.0', '10.1.2.3', '255.255.255.255', '256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '1..2.3', '1.2.3.4 ', ' 1.2.3.4', '',
      '::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', ':::', '1:::2',
      '1::2::3', '12345::', 'fe80::1:2', 'FE80::ABCD', '::ffff:1.2.3.4', '::ffff:1.2.3', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4',
      '::1.2.3.4', '1.2.3.4::', ':1::', '1::2:', 'g::1', '2001:db8::', '2001:0db8:0000:0000:0000:0000:0000:0001', '::ffff:0:0',
    ];
    for (const text of corpus) {
      const valid = isIP(text) !== 0;
      it(`${valid ? 'accepts' : 'rejects'} ${JSON.stringify(text)} like node:net`, () => {
        assert.equal(parseIpInto(text, new IpAddr()), valid);
      });
    }

    const forms: [string, string][] = [
      ['::ffff:10.1.2.3', '10.1.2.3'],
      ['::FFFF:0a01:0203', '10.1.2.3'],
      ['2001:0DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['fd00:ec2:0::254', 'fd00:ec2::254'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ];
    for (const [text, canonical] of forms) {
      it(`reads ${text} as ${canonical} (IPv4-mapped as IPv4, RFC 5952 text)`, () => assert.equal(formatIp(parsed(text)), canonical));
    }

    it('ignores a %zone only when asked', () => {
      assert.equal(parseIpInto('fe80::1%eth0', new IpAddr()), false);
      assert.equal(formatIp(parsed('fe80::1%eth0')), 'fe80::1');
    });
  });

  describe('parseCidr', () => {
    const ok: [string, string][] = [
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['10.1.2.3', '10.1.2.3/32'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['2001:DB8::/32', '2001:db8::/32'],
      ['2001:db8::1', '2001:db8::1/128'],
      ['::/0', '::/0'],
      ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
      ['::ffff:10.1.2.3', '10.1.2.3/32'],
      ['::ffff:0.0.0.0/96', '0.0.0.0/0'],
    ];
    for (const [text, canonical] of ok) it(`reads ${text} as ${canonical}`, () => assert.equal(cidr(text).text, canonical));

    const bad: [string, string][] = [
      ['10.0.0.1/8', 'has host bits set (did you mean 10.0.0.0/8?)'],
      ['10.255.255.255/9', 'has host bits set (did you mean 10.128.0.0/9?)'],
      ['2001:db8::1/64', 'has host bits set (did you mean 2001:db8::/64?)'],
      ['::ffff:0.0.0.0/80', 'has host bits set (did you mean ::/80?)'],
      ['10.0.0.0/33', 'has an invalid prefix length "/33" (use /0 to /32)'],
      ['::/129', 'has an invalid prefix length "/129" (use /0 to /128)'],
      ['10.0.0.0/08', 'has an invalid prefix length "/08"'],
      ['10.0.0.0/', 'has an invalid prefix length "/"'],
      ['10.0.0.0/8/8', 'has an invalid prefix length "/8/8"'],
      ['example.com', 'is not an IP address or CIDR'],
    ];
    for (const [text, problem] of bad) {
      it(`rejects ${text}`, () => {
        const r = parseCidr(text);
        assert.ok('problem' in r && r.problem.startsWith(problem), JSON.stringify(r));
      });
    }
  });

  describe('cidrContains', () => {
    const rows: [string, string, boolean][] = [
      ['0.0.0.0/0', '255.255.255.255', true],
      ['128.0.0.0/1', '127.255.255.255', false],
      ['128.0.0.0/1', '128.0.0.0', true],
      ['10.0.0.0/31', '10.0.0.1', true],
      ['10.0.0.0/31', '10.0.0.2', false],
      ['10.0.0.7/32', '10.0.0.7', true],
      ['192.168.0.0/16', '::ffff:192.168.9.9', true],
      ['2001:db8::/64', '2001:db8::ffff:ffff:ffff:ffff', true],
      ['2001:db8::/64', '2001:db8:0:1::', false],
      ['2001:db8::/127', '2001:db8::1', true],
      ['2001:db8::/127', '2001:db8::2', false],
      ['2001:db8::5/128', '2001:db8::5', true],
      ['::/0', '10.0.0.1', false],
      ['0.0.0.0/0', '2001:db8::1', false],
    ];
    for (const [block, ip, expected] of rows) {
      it(`${expected ? 'puts' : 'does not put'} ${ip} in ${block}`, () => assert.equal(cidrContains(cidr(block), parsed(ip)), expected));
    }
  });

  describe('isMetadataAddress', () => {
    for (const [ip, expected] of [
      ['169.254.169.254', true],
      ['::ffff:169.254.169.254', true],
      ['169.254.170.2', true],
      ['100.100.100.200', true],
      ['fd00:ec2::254', true],
      ['FD00:EC2:0:0:0:0:0:254', true],
      ['169.254.169.253', false],
      ['fd00:ec2::253', false],
    ] as const) {
      it(`${expected ? 'flags' : 'does not flag'} ${ip}`, () => assert.equal(isMetadataAddress(parsed(ip)), expected));
    }
  });
});
