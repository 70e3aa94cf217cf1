import { strict as assert } from 'node:assert';
import { isNodeLocalDestination, NodeAddresses } from '../../../../agent/proxy/node-local';

describe('isNodeLocalDestination', () => {
  const node = { has: (ip: string): boolean => ['10.0.1.1', '172.31.0.1'].includes(ip) };
  const cases: Array<[string, boolean]> = [
    ['172.31.0.1', true], // the node's address: kubelet, the agent's metrics
    ['10.0.1.1', true], // the proxy address
    ['127.0.0.1', true],
    ['0.0.0.0', true],
    ['172.31.0.2', false], // another node
    ['10.0.1.11', false], // a pod
    ['203.0.113.9', false],
  ];
  for (const [ip, local] of cases) it(`${ip}: ${local ? 'the node' : 'elsewhere'}`, () => assert.equal(isNodeLocalDestination(ip, node), local));
});

describe('NodeAddresses', () => {
  it('reads the interfaces again once its time is up', () => {
    let listed = ['10.0.0.1'];
    let reads = 0;
    const a = new NodeAddresses(1000, () => {
      reads++;
      return listed;
    });
    assert.equal(a.has('10.0.0.1', 0), true);
    listed = ['10.0.0.2'];
    assert.equal(a.has('10.0.0.2', 500), false, 'cached');
    assert.equal(a.has('10.0.0.2', 1500), true);
    assert.equal(reads, 2);
  });
});
