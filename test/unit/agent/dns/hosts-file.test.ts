import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../../../common/log';
import { HostsFile, parseHosts } from '../../../../agent/dns/hosts-file';
import { waitFor } from '../../../harness/wait';

describe('hosts file', () => {
  describe('parseHosts', () => {
    it('reads addresses and every name of a line, lowercased, comments and blanks skipped', () => {
      const { names, bad } = parseHosts('# demo\n172.31.0.100 Allowed.Example.TEST blocked.example.test.\n\n::1 six.example.test # v6\n172.31.0.101 allowed.example.test\n');
      assert.deepEqual(bad, []);
      assert.deepEqual(names.get('allowed.example.test'), ['172.31.0.100', '172.31.0.101']);
      assert.deepEqual(names.get('blocked.example.test'), ['172.31.0.100']);
      assert.deepEqual(names.get('six.example.test'), ['::1']);
    });

    it('reports the line numbers of lines that are not "IP name…"', () => {
      assert.deepEqual(parseHosts('not-an-ip host\n10.0.0.1\n10.0.0.2 ok\n').bad, [1, 2]);
    });
  });

  describe('HostsFile', () => {
    let dir: string;
    let hosts: HostsFile | undefined;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-hosts-'))));
    afterEach(() => {
      hosts?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('answers from the file and sees it change', async () => {
      const file = path.join(dir, 'hosts');
      fs.writeFileSync(file, '172.31.0.100 allowed.example.test\n');
      hosts = new HostsFile(file, silentLogger());
      hosts.start();
      assert.deepEqual(hosts.lookup('allowed.example.test'), ['172.31.0.100']);
      assert.equal(hosts.lookup('other.example.test'), undefined);
      fs.writeFileSync(file, '172.31.0.105 allowed.example.test\n');
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(file, later, later);
      await waitFor(() => hosts!.lookup('allowed.example.test')?.[0] === '172.31.0.105' || undefined, 4000, { what: 'the new address' });
    });

    it('a missing file answers nothing and does not throw', () => {
      hosts = new HostsFile(path.join(dir, 'absent'), silentLogger());
      hosts.start();
      assert.equal(hosts.lookup('allowed.example.test'), undefined);
    });
  });
});
