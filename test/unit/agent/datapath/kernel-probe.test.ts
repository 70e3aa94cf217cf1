import { strict as assert } from 'node:assert';
import { OBJECT_FILES, defaultBpfDir } from '../../../../agent/datapath/datapath';
import {
  checkKernel,
  missingFeature,
  readObjectNeeds,
  type KernelFeatures,
  type ObjectFile,
} from '../../../../agent/datapath/kernel-probe';
import { PalisadeError } from '../../../../common/errors';
import type { ObjectNeeds } from '../../../../native';

// Numbers as in linux/bpf.h.
const CGROUP_SKB = 8;
const SOCK_OPS = 13;
const CGROUP_SOCK_ADDR = 18;
const INET_INGRESS = 0;
const SOCK_OPS_ATTACH = 3;
const INET4_CONNECT = 10;
const INET4_GETPEERNAME = 29;
const NETNS_COOKIE = 122;
const SOCKET_COOKIE = 46;
const MAP_LOOKUP = 1;
const HASH = 1;
const LPM_TRIE = 11;

const program = (name: string, progType: number, progTypeName: string, attachType: number, attachTypeName: string, helpers: number[]) => ({
  name,
  section: name,
  progType,
  progTypeName,
  attachType,
  attachTypeName,
  helpers: helpers.map((id) => ({ id, name: id === NETNS_COOKIE ? 'bpf_get_netns_cookie' : id === SOCKET_COOKIE ? 'bpf_get_socket_cookie' : undefined })),
});

/** Shaped like our objects: sock_addr + sockops in one, a cgroup_skb program in the other. */
const REDIRECT: ObjectNeeds = {
  programs: [
    program('palisade_connect4', CGROUP_SOCK_ADDR, 'cgroup_sock_addr', INET4_CONNECT, 'cgroup_inet4_connect', [NETNS_COOKIE, MAP_LOOKUP]),
    program('palisade_getpeername4', CGROUP_SOCK_ADDR, 'cgroup_sock_addr', INET4_GETPEERNAME, 'cgroup_inet4_getpeername', [SOCKET_COOKIE]),
    program('palisade_sockops', SOCK_OPS, 'sock_ops', SOCK_OPS_ATTACH, 'cgroup_sock_ops', [SOCKET_COOKIE, 999]),
  ],
  maps: [
    { name: 'palisade_pods', type: HASH, typeName: 'hash' },
    { name: 'palisade_excl_cidr', type: LPM_TRIE, typeName: 'lpm_trie' },
  ],
  coreRelocations: false,
};
const INGRESS: ObjectNeeds = {
  programs: [program('palisade_ingress', CGROUP_SKB, 'cgroup_skb', INET_INGRESS, 'cgroup_inet_ingress', [NETNS_COOKIE])],
  maps: [{ name: 'palisade_pods', type: HASH, typeName: 'hash' }],
  coreRelocations: false,
};
const OBJECTS: ObjectFile[] = [
  { file: '/x/redirect.bpf.o', needs: REDIRECT },
  { file: '/x/ingress.bpf.o', needs: INGRESS },
];

/** A kernel that has everything, except what `lacks` names; counts what it was asked. */
function kernel(lacks: Partial<Record<keyof KernelFeatures, unknown>> = {}, asked: string[] = []): KernelFeatures {
  const no = (k: keyof KernelFeatures, ...args: number[]): boolean => {
    asked.push([k, ...args].join(':'));
    const l = lacks[k];
    if (l === undefined) return true;
    if (l === true) return false;
    return !(l as number[][]).some((want) => want.every((v, i) => v === args[i]));
  };
  return {
    release: () => '6.0.0-test',
    cgroup2: () => no('cgroup2'),
    bpffs: () => no('bpffs'),
    netnsCookie: () => no('netnsCookie'),
    btf: () => no('btf'),
    mapType: (t) => no('mapType', t),
    progType: (t) => no('progType', t),
    attachType: (t, a) => no('attachType', t, a),
    helper: (t, h) => no('helper', t, h),
  };
}

describe('kernel probe', () => {
  describe('missingFeature', () => {
    const cases: Array<{ what: string; lacks: Partial<Record<keyof KernelFeatures, unknown>>; objects?: ObjectFile[]; want: string | undefined }> = [
      { what: 'a kernel with everything', lacks: {}, want: undefined },
      { what: 'no cgroup v2', lacks: { cgroup2: true }, want: 'cgroup v2 (no cgroup2 mount in /proc/self/mountinfo)' },
      { what: 'no bpffs', lacks: { bpffs: true }, want: 'the bpf filesystem (bpffs)' },
      {
        what: 'no SO_NETNS_COOKIE (before 5.14)',
        lacks: { netnsCookie: true },
        want: 'the SO_NETNS_COOKIE socket option (network-namespace cookies of pods)',
      },
      { what: 'no LPM trie maps', lacks: { mapType: [[LPM_TRIE]] }, want: 'map type lpm_trie (palisade_excl_cidr in redirect.bpf.o)' },
      { what: 'no sock_ops programs', lacks: { progType: [[SOCK_OPS]] }, want: 'program type sock_ops (palisade_sockops in redirect.bpf.o)' },
      {
        what: 'no getpeername hooks (before 5.8)',
        lacks: { attachType: [[CGROUP_SOCK_ADDR, INET4_GETPEERNAME]] },
        want: 'attach type cgroup_inet4_getpeername for cgroup_sock_addr programs (palisade_getpeername4 in redirect.bpf.o)',
      },
      {
        what: 'no netns cookie in cgroup_skb (6.1: the strict-ingress program)',
        lacks: { helper: [[CGROUP_SKB, NETNS_COOKIE]] },
        want: 'helper bpf_get_netns_cookie in cgroup_skb programs (palisade_ingress in ingress.bpf.o)',
      },
      {
        what: 'a helper the headers have no name for',
        lacks: { helper: [[SOCK_OPS, 999]] },
        want: 'helper #999 in sock_ops programs (palisade_sockops in redirect.bpf.o)',
      },
      { what: 'no kernel BTF, objects without CO-RE', lacks: { btf: true }, want: undefined },
      {
        what: 'no kernel BTF, an object with CO-RE relocations',
        lacks: { btf: true },
        objects: [{ file: '/x/tc.bpf.o', needs: { ...INGRESS, coreRelocations: true } }],
        want: 'BTF of the running kernel (/sys/kernel/btf/vmlinux), which the CO-RE relocations of tc.bpf.o need',
      },
      {
        what: 'the first missing feature wins (redirect before ingress)',
        lacks: { helper: [[CGROUP_SKB, NETNS_COOKIE], [CGROUP_SOCK_ADDR, NETNS_COOKIE]] },
        want: 'helper bpf_get_netns_cookie in cgroup_sock_addr programs (palisade_connect4 in redirect.bpf.o)',
      },
    ];
    for (const c of cases) {
      it(c.what, () => {
        assert.equal(missingFeature(c.objects ?? OBJECTS, kernel(c.lacks)), c.want);
      });
    }

    it('asks the kernel about each distinct feature once', () => {
      const asked: string[] = [];
      missingFeature(OBJECTS, kernel({}, asked));
      assert.deepEqual(asked.length, new Set(asked).size, `asked twice: ${asked.join(' ')}`);
      assert.ok(asked.includes(`helper:${CGROUP_SKB}:${NETNS_COOKIE}`) && asked.includes(`helper:${CGROUP_SOCK_ADDR}:${NETNS_COOKIE}`));
    });
  });

  describe('checkKernel', () => {
    it('refuses in one line naming the kernel and the missing feature, with a permanent code', () => {
      const err = (() => {
        try {
          checkKernel(OBJECTS, kernel({ helper: [[CGROUP_SKB, NETNS_COOKIE]] }));
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      assert.ok(err instanceof PalisadeError);
      assert.equal(err.code, 'PALISADE_ERR_KERNEL_UNSUPPORTED');
      assert.equal(err.exitCode, 1);
      assert.equal(
        err.message,
        'this kernel (Linux 6.0.0-test) lacks helper bpf_get_netns_cookie in cgroup_skb programs (palisade_ingress in ingress.bpf.o); Palisade needs Linux 6.1 or later with cgroup v2 and bpffs',
      );
      assert.ok(!err.message.includes('\n'));
    });

    it('passes a kernel that has everything', () => {
      checkKernel(OBJECTS, kernel());
    });

    it('reports a probe that cannot run (no privileges) as that, not as a missing feature', () => {
      const eperm = Object.assign(new Error('EPERM: Operation not permitted, bpf_prog_load'), { code: 'EPERM', errno: -1, syscall: 'bpf_prog_load' });
      const k = { ...kernel(), progType: (): boolean => { throw eperm; } };
      assert.throws(
        () => checkKernel(OBJECTS, k),
        (e: unknown) =>
          e instanceof PalisadeError &&
          e.code === 'PALISADE_ERR_BPF_LOAD' &&
          e.message === "cannot probe the kernel's eBPF features: EPERM from bpf_prog_load (the agent needs root, or CAP_BPF with CAP_NET_ADMIN)",
      );
    });
  });

  describe('readObjectNeeds (the built objects)', () => {
    const objects = readObjectNeeds(defaultBpfDir(), OBJECT_FILES);
    const programs = objects.flatMap((o) => o.needs.programs.map((p) => ({ ...p, object: o.file })));

    it('reads every program with its type, attach type and the helpers it calls', () => {
      const connect4 = programs.find((p) => p.name === 'palisade_connect4');
      assert.ok(connect4, `programs: ${programs.map((p) => p.name).join(', ')}`);
      assert.equal(connect4.progTypeName, 'cgroup_sock_addr');
      assert.equal(connect4.attachTypeName, 'cgroup_inet4_connect');
      assert.ok(connect4.helpers.some((h) => h.id === NETNS_COOKIE && h.name === 'bpf_get_netns_cookie'));
      const getpeername = programs.find((p) => p.name === 'palisade_getpeername4');
      assert.equal(getpeername?.attachTypeName, 'cgroup_inet4_getpeername');
      for (const p of programs) assert.ok(p.helpers.every((h) => Number.isInteger(h.id) && h.id > 0), p.name);
    });

    it('reads the map types', () => {
      const maps = objects.flatMap((o) => o.needs.maps);
      assert.ok(maps.some((m) => m.name === 'palisade_excl_cidr' && m.typeName === 'lpm_trie'));
      assert.ok(maps.some((m) => m.name === 'palisade_stats' && m.typeName === 'percpu_array'));
    });

    it('refuses a missing object in one line', () => {
      assert.throws(
        () => readObjectNeeds('/nonexistent', ['redirect.bpf.o']),
        (e: unknown) => e instanceof PalisadeError && e.code === 'PALISADE_ERR_BPF_LOAD' && /redirect\.bpf\.o not found/.test(e.message),
      );
    });
  });
});
