import { strict as assert } from 'node:assert';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DnsRuntime, type DnsOptions } from '../../../agent/dns/dns-runtime';
import { isPalisadeError } from '../../../common/errors';
import { silentLogger } from '../../../common/log';
import { PolicyIndex } from '../../../common/policy';
import { tempDir } from '../../harness/agent';

const NO_KERNEL = { lookupDnsPeer: () => undefined, lookupOriginal: () => undefined };

function options(over: Partial<DnsOptions> = {}): DnsOptions {
  return {
    node: 'node-1',
    proxyIp: '127.0.0.1',
    domain: 'cluster.local',
    upstreams: [],
    workloads: { byNetnsCookie: () => undefined, byIp: () => undefined },
    mesh: { version: () => '1', entries: () => [] },
    policies: { index: new PolicyIndex({ authorization: [], egress: [] }) },
    flows: { record: () => undefined },
    log: silentLogger(),
    ...over,
  };
}

describe('DnsRuntime', () => {
  it('refuses a port already taken with one line naming the address (PALISADE_ERR_LISTEN)', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', () => resolve()));
    const port = taken.address().port;
    const dns = new DnsRuntime(options());
    try {
      await assert.rejects(dns.listen(NO_KERNEL, port), (err: unknown) => isPalisadeError(err) && err.code === 'PALISADE_ERR_LISTEN' && err.message.startsWith(`cannot listen on 127.0.0.1:${port} for DNS:`));
    } finally {
      await dns.close();
      taken.close();
    }
  });

  it('keeps what pods resolved in its state file from one runtime to the next', async () => {
    const dir = tempDir('dns-state');
    const stateFile = path.join(dir, 'node-1.dns-names.json');
    try {
      const first = new DnsRuntime(options({ stateFile }));
      await first.listen(NO_KERNEL, 0);
      first.names.remember('default/client', ['api.example.com'], [{ ip: '192.0.2.1', ttl: 300 }]);
      await first.close();
      assert.equal((fs.statSync(stateFile).mode & 0o777).toString(8), '600');
      const second = new DnsRuntime(options({ stateFile }));
      await second.listen(NO_KERNEL, 0);
      assert.deepEqual(second.names.addressesFor('default/client', 'api.example.com'), ['192.0.2.1']);
      await second.close();
      fs.writeFileSync(stateFile, '{not json');
      const third = new DnsRuntime(options({ stateFile }));
      await third.listen(NO_KERNEL, 0);
      assert.equal(third.names.size, 0, 'an unreadable file: start empty');
      await third.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
