import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../../../common/log';
import { CachingResolver, parseHosts } from '../../../../agent/policy/resolver';

describe('resolver', () => {
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

  describe('CachingResolver', () => {
    let dir: string;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-resolver-'))));
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('answers from the hosts file and sees the file change', async () => {
      const file = path.join(dir, 'hosts');
      fs.writeFileSync(file, '172.31.0.100 allowed.example.test\n');
      const r = new CachingResolver({ hostsFile: file, log: silentLogger() });
      assert.deepEqual(await r.resolve('ALLOWED.example.test.'), ['172.31.0.100']);
      fs.writeFileSync(file, '172.31.0.105 allowed.example.test\n');
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(file, later, later);
      await new Promise((res) => setTimeout(res, 1100));
      assert.deepEqual(await r.resolve('allowed.example.test'), ['172.31.0.105']);
    });

    it('resolves a name nobody knows to no addresses (the egress check then denies)', async () => {
      const file = path.join(dir, 'hosts');
      fs.writeFileSync(file, '172.31.0.100 allowed.example.test\n');
      const r = new CachingResolver({ hostsFile: file, log: silentLogger(), timeoutMs: 500 });
      assert.deepEqual(await r.resolve('nothing.invalid'), []);
    });
  });
});
