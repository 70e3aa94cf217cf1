/**
 * The kernel feature probe at agent start, on a real kernel: the running kernel offers what the
 * eBPF objects need, and a kernel below the minimum (the real one with a feature taken away,
 * through the probe's seam) is refused in one line naming that feature with nothing left behind.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startAgent } from '../../../agent/agent';
import { Datapath, OBJECT_FILES, defaultBpfDir } from '../../../agent/datapath/datapath';
import { checkKernel, readObjectNeeds, runningKernel, type KernelFeatures } from '../../../agent/datapath/kernel-probe';
import { PalisadeError } from '../../../common/errors';
import { silentLogger } from '../../../common/log';
import { cgroup2Root, registerExitCleanup, requirePrivileges, tempDir } from '../../harness';
import { makeCgroup, removeCgroupTree, removeCgroupTreeSync } from '../../harness/cgroup';

// Numbers as in linux/bpf.h.
const CGROUP_SOCK_ADDR = 18;
const INET4_GETPEERNAME = 29;
const NETNS_COOKIE = 122;
const LPM_TRIE = 11;

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function cgroupProgIds(cgroup: string): number[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as Array<{ id: number }>).map((p) => p.id) : [];
}

describe('kernel probe (real kernel)', function () {
  this.timeout(60_000);

  it('the running kernel offers everything the eBPF objects need', function () {
    requirePrivileges();
    checkKernel(readObjectNeeds(defaultBpfDir(), OBJECT_FILES));
  });

  describe('palisade agent on a kernel below the minimum', function () {
    // An empty cgroup of our own: an agent that wrongly started would attach there and touch nothing.
    const node = `pl${process.pid}-probe`;
    let cgroup: string;
    let dir: string;
    let unregister: () => void = () => undefined;

    before(function () {
      requirePrivileges();
      cgroup = path.join(cgroup2Root(), `palisade-test-${process.pid}-probe`);
      makeCgroup(cgroup);
      unregister = registerExitCleanup(() => removeCgroupTreeSync(cgroup));
      dir = tempDir('probe');
    });

    after(async function () {
      // Only an agent that wrongly started installed anything.
      Datapath.uninstall(node);
      if (cgroup) await removeCgroupTree(cgroup);
      unregister();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const real = runningKernel();
    const cases: Array<{ lacks: string; kernel: Partial<KernelFeatures>; line: RegExp }> = [
      { lacks: 'cgroup v2', kernel: { cgroup2: () => false }, line: /lacks cgroup v2 \(no cgroup2 mount/ },
      { lacks: 'SO_NETNS_COOKIE (before 5.14)', kernel: { netnsCookie: () => false }, line: /lacks the SO_NETNS_COOKIE socket option/ },
      {
        lacks: 'bpf_get_netns_cookie in cgroup_sock_addr programs (before 5.7)',
        kernel: { helper: (t, h) => !(t === CGROUP_SOCK_ADDR && h === NETNS_COOKIE) && real.helper(t, h) },
        line: /lacks helper bpf_get_netns_cookie in cgroup_sock_addr programs \(palisade_connect4 in redirect\.bpf\.o\)/,
      },
      {
        lacks: 'the getpeername4 hook (before 5.8)',
        kernel: { attachType: (t, a) => !(t === CGROUP_SOCK_ADDR && a === INET4_GETPEERNAME) && real.attachType(t, a) },
        line: /lacks attach type cgroup_inet4_getpeername for cgroup_sock_addr programs \(palisade_getpeername4 in redirect\.bpf\.o\)/,
      },
      {
        lacks: 'LPM trie maps',
        kernel: { mapType: (t) => t !== LPM_TRIE && real.mapType(t) },
        line: /lacks map type lpm_trie \(palisade_excl_cidr in redirect\.bpf\.o\)/,
      },
    ];

    for (const c of cases) {
      it(`without ${c.lacks}: refuses in one line naming it, and leaves no pins, maps, lock file or listeners`, async function () {
        const runDir = path.join(dir, `run-${cases.indexOf(c)}`);
        const outboundPort = await freePort();
        const metricsPort = await freePort();

        let err: unknown;
        try {
          const running = await startAgent({
            node,
            proxyIp: '127.0.0.1',
            outboundPort,
            cgroup,
            runDir,
            metricsAddress: { host: '127.0.0.1', port: metricsPort },
            kernel: { ...real, ...c.kernel },
            log: silentLogger(),
          });
          await running.close();
        } catch (e) {
          err = e;
        }

        assert.ok(err instanceof PalisadeError, `the agent started: ${String(err)}`);
        assert.equal(err.code, 'PALISADE_ERR_KERNEL_UNSUPPORTED', err.message);
        assert.match(err.message, c.line);
        assert.match(err.message, /^this kernel \(Linux \S+\) lacks .*; Palisade needs Linux 6\.1 or later/);
        assert.ok(!err.message.includes('\n'), 'one line');
        assert.equal(fs.existsSync(`/sys/fs/bpf/palisade/${node}`), false, 'no pins (and so no maps outlive the probe)');
        assert.equal(fs.existsSync(runDir), false, 'no run directory, no lock file');
        assert.deepEqual(cgroupProgIds(cgroup), [], 'no program attached');
        assert.ok(await refused(outboundPort), 'no outbound listener');
        assert.ok(await refused(metricsPort), 'no metrics listener');
      });
    }
  });
});
