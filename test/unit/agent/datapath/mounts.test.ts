import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findCgroup2Root, parseMountinfo } from '../../../../agent/datapath/mounts';
import { PalisadeError } from '../../../../common/errors';

/** A hybrid (cgroup v1 + cgroup2 at /sys/fs/cgroup/unified) host, as on the test machines. */
const HYBRID = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '23 27 0:22 / /sys rw,relatime - sysfs sysfs rw',
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  '42 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw',
  '43 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw,discard,resv_strict',
].join('\n');

/** A pure cgroup v2 host (systemd, Kubernetes nodes), with optional fields and escapes. */
const UNIFIED = [
  '24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '25 24 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw',
  '26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot',
  '27 25 0:24 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:4 master:1 - bpf bpf rw,mode=700',
  '90 24 0:50 / /mnt/my\\040disk\\011tab rw,relatime shared:40 propagate_from:2 unbindable - tmpfs my\\040src rw',
  '91 24 0:51 / /run/back\\134slash rw,relatime - tmpfs tmpfs rw',
].join('\n');

function withMountinfo(text: string, fn: (file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-mounts-'));
  try {
    const file = path.join(dir, 'mountinfo');
    fs.writeFileSync(file, text);
    fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('mounts', () => {
  describe('parseMountinfo', () => {
    it('reads mount point and filesystem type of every line of a hybrid host', () => {
      assert.deepEqual(parseMountinfo(HYBRID), [
        { mountPoint: '/proc', fsType: 'proc' },
        { mountPoint: '/sys', fsType: 'sysfs' },
        { mountPoint: '/', fsType: 'ext4' },
        { mountPoint: '/sys/fs/cgroup', fsType: 'tmpfs' },
        { mountPoint: '/sys/fs/cgroup/cpu', fsType: 'cgroup' },
        { mountPoint: '/sys/fs/cgroup/memory', fsType: 'cgroup' },
        { mountPoint: '/sys/fs/cgroup/systemd', fsType: 'cgroup' },
        { mountPoint: '/sys/fs/cgroup/unified', fsType: 'cgroup2' },
        { mountPoint: '/sys/fs/bpf', fsType: 'bpf' },
        { mountPoint: '/run/netns', fsType: 'ext4' },
      ]);
    });

    const cases: [string, string, { mountPoint: string; fsType: string }][] = [
      ['optional fields before " - "', UNIFIED.split('\n')[3]!, { mountPoint: '/sys/fs/bpf', fsType: 'bpf' }],
      ['several optional fields and \\040 (space), \\011 (tab)', UNIFIED.split('\n')[4]!, { mountPoint: '/mnt/my disk\ttab', fsType: 'tmpfs' }],
      ['\\134 (backslash)', UNIFIED.split('\n')[5]!, { mountPoint: '/run/back\\slash', fsType: 'tmpfs' }],
      ['a root field that differs from the mount point', HYBRID.split('\n')[9]!, { mountPoint: '/run/netns', fsType: 'ext4' }],
    ];
    for (const [what, line, entry] of cases) {
      it(`handles ${what}`, () => assert.deepEqual(parseMountinfo(line), [entry]));
    }

    const skipped: [string, string][] = [
      ['empty text', ''],
      ['blank lines', '\n\n'],
      ['a line without the " - " separator', '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime cgroup2 cgroup2 rw'],
      ['a truncated line', '41 31 0:38 / - cgroup2'],
    ];
    for (const [what, text] of skipped) {
      it(`skips ${what}`, () => assert.deepEqual(parseMountinfo(text), []));
    }

    it('parses this machine\'s /proc/self/mountinfo without losing a line', () => {
      const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      const lines = text.split('\n').filter(Boolean);
      const entries = parseMountinfo(text);
      assert.equal(entries.length, lines.length);
      assert.ok(entries.some((e) => e.mountPoint === '/'), 'the root mount is listed');
    });
  });

  describe('findCgroup2Root', () => {
    const found: [string, string, string][] = [
      ['a hybrid host', HYBRID, '/sys/fs/cgroup/unified'],
      ['a pure cgroup v2 host', UNIFIED, '/sys/fs/cgroup'],
      ['several cgroup2 mounts (the first one)', `${UNIFIED}\n99 24 0:23 / /host/cgroup rw - cgroup2 cgroup2 rw`, '/sys/fs/cgroup'],
      ['an escaped mount point', '9 1 0:9 / /my\\040cgroup rw - cgroup2 none rw', '/my cgroup'],
    ];
    for (const [what, text, root] of found) {
      it(`finds ${root} on ${what}`, () => withMountinfo(text, (file) => assert.equal(findCgroup2Root(file), root)));
    }

    const missing: [string, string][] = [
      ['a cgroup v1 only host', HYBRID.split('\n').filter((l) => !l.includes('cgroup2')).join('\n')],
      ['an empty file', ''],
    ];
    for (const [what, text] of missing) {
      it(`fails with PALISADE_ERR_CGROUP and one line on ${what}`, () => {
        withMountinfo(text, (file) => {
          assert.throws(
            () => findCgroup2Root(file),
            (err: unknown) =>
              err instanceof PalisadeError &&
              err.code === 'PALISADE_ERR_CGROUP' &&
              !err.message.includes('\n') &&
              /cgroup v2/.test(err.message),
          );
        });
      });
    }
  });
});
