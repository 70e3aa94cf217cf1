import { strict as assert } from 'node:assert';
import { hostInterfaceOf } from '../../../../agent/cni/host-interface';
import type { CniInterface, CniPodIp } from '../../../../agent/cni/protocol';

const ip = (iface: string | undefined): CniPodIp => ({ family: 4, address: '10.22.0.5', prefixLength: 16, gateway: undefined, interface: iface });
const host = (name: string): CniInterface => ({ name, mac: undefined, sandbox: undefined });
const pod = (name: string): CniInterface => ({ name, mac: undefined, sandbox: '/var/run/netns/cni-1' });

describe('hostInterfaceOf', function () {
  const cases: Array<[string, CniInterface[], CniPodIp[], string | undefined]> = [
    ['bridge: bridge, host veth, pod interface', [host('cni0'), host('veth1a2b'), pod('eth0')], [ip('eth0')], 'veth1a2b'],
    ['ptp / Calico: host veth, pod interface', [host('cali12ab'), pod('eth0')], [ip('eth0')], 'cali12ab'],
    ['no interface named by the ips: CNI_IFNAME', [host('cni0'), host('veth9'), pod('eth0')], [ip(undefined)], 'veth9'],
    ['the pod interface listed first', [pod('eth0'), host('veth1')], [ip('eth0')], undefined],
    ['only the pod interface', [pod('eth0')], [ip('eth0')], undefined],
    ['no interfaces', [], [ip(undefined)], undefined],
    ['two pod interfaces in a row', [host('veth1'), pod('net1'), pod('eth0')], [ip('eth0')], undefined],
  ];
  for (const [what, interfaces, ips, want] of cases) {
    it(`${what} -> ${want ?? 'unknown'}`, function () {
      assert.equal(hostInterfaceOf({ interfaces, ips, ifName: 'eth0' }), want);
    });
  }
});
