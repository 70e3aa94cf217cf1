import { strict as assert } from 'node:assert';
import { agentPorts, isNodeLocalDestination, NodeAddresses } from '../../../../agent/proxy/node-local';

describe('node-local destinations', () => {
  describe('isNodeLocalDestination', () => {
    const node = { addresses: new Set(['172.31.0.1', '10.0.1.1', '172.31.0.2']), own: new Set(['172.31.0.1', '10.0.1.1']), ports: new Set([15001, 15008, 15020]) };
    const table: Array<[string, string, number, boolean]> = [
      ['the node address, metrics port', '172.31.0.1', 15020, true],
      ['the proxy address, outbound port', '10.0.1.1', 15001, true],
      ['another node (listed), HBONE port', '172.31.0.2', 15008, true],
      ['the node address, another port (kubelet\'s 10250: issue #14)', '172.31.0.1', 10250, true],
      ['the proxy address, another port', '10.0.1.1', 8080, true],
      ['another node, another port', '172.31.0.2', 10250, false],
      ['a pod on an agent port', '10.0.1.11', 15020, false],
      ['0.0.0.0 (the node\'s loopback, through the proxy), any port', '0.0.0.0', 10250, true],
      ['loopback, any port', '127.0.0.53', 53, true],
      ['IPv6 unspecified', '::', 80, true],
      ['IPv6 loopback', '::1', 80, true],
      ['IPv4-mapped loopback', '::ffff:127.0.0.1', 80, true],
      ['an outside host', '93.184.216.34', 15020, false],
    ];
    for (const [what, ip, port, want] of table) it(`${what} → ${want}`, () => assert.equal(isNodeLocalDestination({ ip, port }, node), want));
  });

  it('agentPorts: the agent\'s ports and the ones it was given', () => {
    assert.deepEqual([...agentPorts([16001, undefined, 9090])].sort(), [15000, 15001, 15008, 15020, 15053, 16001, 9090].sort());
  });

  describe('NodeAddresses', () => {
    it('reads the interfaces at most every 10 s and adds the peers given', () => {
      let t = 0;
      let reads = 0;
      let peers: ReadonlySet<string> = new Set(['172.31.0.2']);
      const ifs = (): ReturnType<typeof import('node:os').networkInterfaces> => {
        reads++;
        return { ul0: [{ address: reads === 1 ? '172.31.0.1' : '172.31.0.9', family: 'IPv4' } as never], lo: [{ address: 'fe80::1%lo', family: 'IPv6' } as never] };
      };
      const n = new NodeAddresses(new Set([15020]), () => peers, ifs, () => t);
      assert.deepEqual([...n.current().addresses].sort(), ['172.31.0.1', '172.31.0.2', 'fe80::1']);
      assert.deepEqual([...n.current().own].sort(), ['172.31.0.1', 'fe80::1'], 'its own addresses alone');
      t = 5_000;
      peers = new Set(['172.31.0.3']);
      assert.deepEqual([...n.current().addresses].sort(), ['172.31.0.1', '172.31.0.3', 'fe80::1']);
      assert.equal(reads, 1);
      t = 10_000;
      assert.ok(n.current().addresses.has('172.31.0.9'));
      assert.equal(reads, 2);
    });
  });
});
