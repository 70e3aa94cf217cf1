import { strict as assert } from 'node:assert';
import { demoPodLabels, podAddRequest, type PodAddFlags } from '../../../cli/demo/pod-request';

describe('palisade demo pod add: the request', () => {
  const demo = { nodes: ['node-1', 'node-2'], names: ['client', 'web-1', 'web-2', 'ext'] };
  const flags = (over: Partial<PodAddFlags> = {}): PodAddFlags => ({ name: 'web-3', node: 'node-2', labels: [], serviceAccount: 'default', ...over });

  it('a plain pod: app is its name, access-logged, not strict, no app run in it', () => {
    assert.deepEqual(podAddRequest(flags(), demo, demoPodLabels), {
      name: 'web-3',
      node: 'node-2',
      serviceAccount: 'default',
      strict: false,
      labels: { app: 'web-3', 'palisade.dev/access-log': 'on' },
    });
  });

  it('labels over the defaults, --strict, --web, a service account', () => {
    const r = podAddRequest(flags({ labels: ['app=web', 'version=v3', 'palisade.dev/access-log=off', 'empty='], serviceAccount: 'web', strict: true, web: true }), demo, demoPodLabels);
    assert.deepEqual(r, {
      name: 'web-3',
      node: 'node-2',
      serviceAccount: 'web',
      strict: true,
      app: 'web',
      labels: { app: 'web', version: 'v3', 'palisade.dev/access-log': 'off', empty: '' },
    });
  });

  const bad: Array<[string, Partial<PodAddFlags>, RegExp]> = [
    ['an upper-case name', { name: 'Web3' }, /^pod name "Web3": lowercase letters/],
    ['a name past 32', { name: 'a'.repeat(33) }, /at most 32$/],
    ['a name with a dot', { name: 'web.3' }, /^pod name "web\.3"/],
    ['a taken name', { name: 'web-1' }, /^the demo already has a pod or host named web-1$/],
    ['the ext host\'s name', { name: 'ext' }, /already has a pod or host named ext/],
    ['an unknown node', { node: 'node-3' }, /^--node "node-3": the demo's nodes are node-1, node-2$/],
    ['a bad service account', { serviceAccount: 'Web_SA' }, /^--service-account "Web_SA": a DNS-1123 label/],
    ['a label without =', { labels: ['app'] }, /^--label "app": want KEY=VALUE$/],
    ['a label with an empty key', { labels: ['=web'] }, /^--label "=web": want KEY=VALUE$/],
    ['a bad label key', { labels: ['-app=web'] }, /^--label "-app=web": the key is not a label key/],
    ['a bad label value', { labels: ['app=we b'] }, /^--label "app=we b": the value is not a label value/],
    ['the mesh\'s own label', { labels: ['palisade.dev/workload=x'] }, /palisade\.dev\/workload is the mesh's own/],
    ['a label twice, two values', { labels: ['app=a', 'app=b'] }, /^--label app is given twice with different values$/],
  ];
  for (const [what, over, want] of bad) {
    it(`refuses ${what} in one line`, () => {
      assert.throws(
        () => podAddRequest(flags(over), demo, demoPodLabels),
        (err: Error) => err.name === 'PalisadeError' && want.test(err.message) && !err.message.includes('\n'),
      );
    });
  }
});
