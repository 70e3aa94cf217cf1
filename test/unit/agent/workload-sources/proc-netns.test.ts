import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { localAddressesOfFibTrie, scanProcNetns } from '../../../../agent/workload-sources/kubernetes/proc-netns';
import { tempDir } from '../../../harness/agent';

const POD_FIB = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.22.0.0/16 2 0 2
        +-- 10.22.0.0/29 2 0 2
           |-- 10.22.0.0
              /16 link UNICAST
           |-- 10.22.0.5
              /32 host LOCAL
        |-- 10.22.255.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.22.0.5
        /32 host LOCAL
`;

describe('proc-netns', function () {
  describe('localAddressesOfFibTrie', function () {
    const cases: Array<[string, string, string[]]> = [
      ['a pod with one address (listed in Main and Local)', POD_FIB, ['10.22.0.5']],
      ['only loopback', '  |-- 127.0.0.1\n     /32 host LOCAL\n', []],
      ['two addresses', '  |-- 10.0.0.1\n     /32 host LOCAL\n  |-- 10.0.0.2\n     /8 link UNICAST\n     /32 host LOCAL\n', ['10.0.0.1', '10.0.0.2']],
      ['a broadcast address is not local', '  |-- 10.0.0.255\n     /32 link BROADCAST\n', []],
      ['nothing', '', []],
    ];
    for (const [what, text, want] of cases) {
      it(what, function () {
        assert.deepEqual(localAddressesOfFibTrie(text).sort(), want);
      });
    }
  });

  describe('scanProcNetns (a /proc made of files)', function () {
    let root: string;
    /** A fake /proc/<pid>: ns/net a file (its inode stands for the namespace), net/fib_trie. */
    function proc(pid: string, nsFrom: string | undefined, fib: string): void {
      fs.mkdirSync(path.join(root, pid, 'ns'), { recursive: true });
      fs.mkdirSync(path.join(root, pid, 'net'), { recursive: true });
      if (nsFrom) fs.linkSync(path.join(root, nsFrom, 'ns', 'net'), path.join(root, pid, 'ns', 'net'));
      else fs.writeFileSync(path.join(root, pid, 'ns', 'net'), pid);
      fs.writeFileSync(path.join(root, pid, 'net', 'fib_trie'), fib);
    }
    before(function () {
      root = tempDir('proc');
      proc('1', undefined, '  |-- 192.168.1.10\n     /32 host LOCAL\n'); // the host
      fs.symlinkSync('1', path.join(root, 'self'));
      proc('200', undefined, POD_FIB); // a pod
      proc('201', '200', POD_FIB); // another process of the same pod
      proc('300', undefined, '  |-- 10.30.0.7\n     /32 host LOCAL\n'); // two namespaces with one address
      proc('301', undefined, '  |-- 10.30.0.7\n     /32 host LOCAL\n');
      // Enough processes for several chunks: one namespace spread over all of them, one more in the middle.
      proc('400', undefined, '  |-- 10.40.0.4\n     /32 host LOCAL\n');
      for (let pid = 401; pid < 470; pid++) {
        if (pid === 450) proc('450', undefined, '  |-- 10.50.0.5\n     /32 host LOCAL\n');
        else proc(String(pid), '400', '  |-- 10.40.0.4\n     /32 host LOCAL\n');
      }
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    it('maps each address to the lowest pid of its namespace, leaves ours out, marks shared addresses ambiguous', async function () {
      const found = await scanProcNetns(root);
      assert.deepEqual(found.get('10.22.0.5'), { netns: path.join(root, '200', 'ns', 'net'), ambiguous: false });
      assert.equal(found.get('192.168.1.10'), undefined, 'the agent\'s own namespace');
      assert.equal(found.get('10.30.0.7')?.ambiguous, true);
    });

    it('reads in chunks without blocking, and a namespace seen in an earlier chunk is not counted again', async function () {
      const scan = scanProcNetns(root);
      assert.ok(scan instanceof Promise, 'async');
      const found = await scan;
      assert.deepEqual(found.get('10.40.0.4'), { netns: path.join(root, '400', 'ns', 'net'), ambiguous: false });
      assert.deepEqual(found.get('10.50.0.5'), { netns: path.join(root, '450', 'ns', 'net'), ambiguous: false });
    });
  });
});
