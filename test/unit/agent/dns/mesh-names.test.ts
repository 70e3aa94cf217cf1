import { strict as assert } from 'node:assert';
import { MeshNames, workloadNameSources } from '../../../../agent/dns/mesh-names';

describe('MeshNames', () => {
  const local = { version: 1, all: () => [{ name: 'web-1', namespace: 'default', ip: '10.0.1.11' }, { name: 'db', namespace: 'shop', ip: '10.0.1.12' }] };
  let registry: { version: number; all: () => Array<{ name: string; namespace: string; ip: string }> } | undefined;
  beforeEach(() => (registry = undefined));
  const names = (): MeshNames => new MeshNames('cluster.local', workloadNameSources(local, () => registry));

  const cases: Array<[string, string, string, string[] | undefined]> = [
    ['the full name', 'web-1.default.svc.cluster.local', 'shop', ['10.0.1.11']],
    ['one label: the asking pod\'s namespace', 'db', 'shop', ['10.0.1.12']],
    ['one label from another namespace: not ours', 'db', 'default', undefined],
    ['name.namespace', 'web-1.default', 'shop', ['10.0.1.11']],
    ['name.namespace.svc', 'db.shop.svc', 'default', ['10.0.1.12']],
    ['an unknown name in the cluster domain: not ours (upstream may know it)', 'api.default.svc.cluster.local', 'default', undefined],
    ['a name outside the cluster domain', 'web-1.default.svc.other.local', 'default', undefined],
    ['an external name', 'api.github.com', 'default', undefined],
  ];
  for (const [what, name, ns, want] of cases) it(what, () => assert.deepEqual(names().lookup(name, ns), want));

  it('follows the registry as its version moves', () => {
    const n = names();
    assert.equal(n.lookup('web-2.default.svc.cluster.local', 'default'), undefined);
    registry = { version: 3, all: () => [{ name: 'web-2', namespace: 'default', ip: '10.0.2.10' }] };
    assert.deepEqual(n.lookup('web-2.default.svc.cluster.local', 'default'), ['10.0.2.10']);
    registry = { version: 4, all: () => [] };
    assert.equal(n.lookup('web-2.default.svc.cluster.local', 'default'), undefined);
  });
});
