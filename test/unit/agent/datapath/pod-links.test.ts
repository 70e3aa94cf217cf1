import { strict as assert } from 'node:assert';
import { choosePodLink } from '../../../../agent/datapath/pod-links';
import type { NetLink } from '../../../../native';

const mac = (n: number): Buffer => Buffer.from([2, 0, 0, 0, 0, n]);
const veth = (ifindex: number, name: string, link: number, m = ifindex): NetLink => ({ ifindex, name, mac: mac(m), link, netnsId: 0, kind: 'veth' });
const lo: NetLink = { ifindex: 1, name: 'lo', mac: Buffer.alloc(6), link: 0, netnsId: -1, kind: '' };
const bridge: NetLink = { ifindex: 3, name: 'cni0', mac: mac(3), link: 0, netnsId: -1, kind: 'bridge' };

// The agent's namespace: v0 (7) <-> pod eth0 (2), v1 (8) <-> another pod's eth0 (2, same number there).
const host = [lo, bridge, veth(7, 'v0', 2), veth(8, 'v1', 2), veth(9, 'v2', 5)];

describe('choosePodLink', () => {
  const cases: Array<{ name: string; pod: NetLink[]; hostName?: string; want: { host: string; pod: string } | RegExp }> = [
    { name: "derives the host side from the pod's only veth", pod: [lo, veth(2, 'eth0', 7, 42)], want: { host: 'v0', pod: 'eth0' } },
    { name: 'takes a given interface that pairs with the pod', pod: [lo, veth(2, 'eth0', 7, 42)], hostName: 'v0', want: { host: 'v0', pod: 'eth0' } },
    {
      name: "refuses a given interface that is another pod's (ifindex numbers repeat across namespaces)",
      pod: [lo, veth(2, 'eth0', 7, 42)],
      hostName: 'v1',
      want: /"v1" is not the peer of an interface in the pod's namespace/,
    },
    { name: 'refuses a given interface that does not exist', pod: [lo, veth(2, 'eth0', 7)], hostName: 'v9', want: /"v9" is not in the agent's network namespace/ },
    { name: 'refuses a given interface that is not a veth', pod: [lo, veth(2, 'eth0', 7)], hostName: 'cni0', want: /"cni0" is not a veth \(bridge\)/ },
    { name: 'refuses a pod whose veth peer is elsewhere', pod: [lo, veth(2, 'eth0', 77)], want: /no veth of the pod's namespace has its peer/ },
    { name: 'refuses a pod without a veth', pod: [lo], want: /no veth of the pod's namespace/ },
    { name: 'prefers eth0 of several', pod: [lo, veth(2, 'eth0', 7), veth(5, 'net1', 9)], want: { host: 'v0', pod: 'eth0' } },
    { name: 'refuses several without eth0', pod: [lo, veth(2, 'net0', 7), veth(5, 'net1', 9)], want: /several veths into the agent's namespace \(net0, net1\)/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = choosePodLink(c.pod, host, c.hostName);
      const want = c.want;
      if (want instanceof RegExp) {
        assert.ok('problem' in r, JSON.stringify(r));
        assert.match(r.problem, want);
      } else {
        assert.ok(!('problem' in r), JSON.stringify(r));
        assert.deepEqual([r.hostName, r.podName], [want.host, want.pod]);
        assert.equal(r.hostIfindex, host.find((h) => h.name === want.host)!.ifindex);
        assert.deepEqual(r.podMac, c.pod.find((p) => p.name === want.pod)!.mac);
      }
    });
  }
});
