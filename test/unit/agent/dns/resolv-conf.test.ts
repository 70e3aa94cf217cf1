import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseResolvConf, parseUpstream, upstreamServers, validateDnsDomain } from '../../../../agent/dns/resolv-conf';

describe('DNS upstream configuration', () => {
  it('parseUpstream: an IPv4 address with an optional port', () => {
    const cases: Array<[string, ReturnType<typeof parseUpstream>]> = [
      ['10.96.0.10', { ip: '10.96.0.10', port: 53 }],
      ['127.0.0.1:5353', { ip: '127.0.0.1', port: 5353 }],
      ['10.96.0.10:0', undefined],
      ['10.96.0.10:70000', undefined],
      ['2001:db8::53', undefined],
      ['dns.example', undefined],
      ['10.96.0.10:53:1', undefined],
    ];
    for (const [v, want] of cases) assert.deepEqual(parseUpstream(v), want, v);
  });

  it('parseResolvConf: the IPv4 nameservers in order, comments and IPv6 skipped, at most four', () => {
    const text = '# generated\nsearch default.svc.cluster.local\nnameserver 10.96.0.10\nnameserver 2001:db8::53\n; old\nnameserver 10.0.0.2 # second\noptions ndots:5\n' +
      'nameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver 10.0.0.5\n';
    assert.deepEqual(parseResolvConf(text).map((s) => s.ip), ['10.96.0.10', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
  });

  it('upstreamServers: the flag wins; else resolv.conf; a bad value or no server is one line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-resolv-'));
    try {
      const conf = path.join(dir, 'resolv.conf');
      fs.writeFileSync(conf, 'nameserver 10.0.0.2\n');
      assert.deepEqual(upstreamServers(['10.9.9.9:5353'], conf), [{ ip: '10.9.9.9', port: 5353 }]);
      assert.deepEqual(upstreamServers([], conf), [{ ip: '10.0.0.2', port: 53 }]);
      assert.throws(() => upstreamServers(['nope'], conf), /--dns-upstream "nope" is not an IPv4 address/);
      assert.throws(() => upstreamServers(['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4', '1.1.1.5'], conf), /at most 4/);
      fs.writeFileSync(conf, 'nameserver ::1\n');
      assert.throws(() => upstreamServers(undefined, conf), /names no IPv4 nameserver .*give --dns-upstream/);
      assert.throws(() => upstreamServers(undefined, path.join(dir, 'absent')), /cannot read .*absent/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('validateDnsDomain: a lowercase DNS name', () => {
    validateDnsDomain('cluster.local');
    for (const bad of ['Cluster.local', 'cluster..local', '-x.local', '', 'a b']) assert.throws(() => validateDnsDomain(bad), /--dns-domain/, bad);
  });
});
