import { strict as assert } from 'node:assert';
import type { PolicyChange } from '../../../../common/control-api';
import { manifestText } from '../../../../collector/policies/manifest-text';
import { changedOf, type DesiredPolicy } from '../../../../collector/policies/repository';
import { changesFromWire, changesToWire, fromWire, parsedFromWire, parsedToWire, toWire, toWireSliced } from '../../../../collector/policies/wire';

const manifest = (name: string): Record<string, unknown> => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { rules: [{ to: [{ operation: { paths: [`/a "q"\\ \u0000 nul, line\nbreak, ünï 😀`] } }] }] },
});

describe('wire: policies and changes crossing to the policy worker as one string', () => {
  const policies: DesiredPolicy[] = [
    { kind: 'AuthorizationPolicy', namespace: 'shop', name: 'a', origin: 'api', manifest: manifest('a') },
    { kind: 'AuthorizationPolicy', namespace: 'shop', name: 'b', origin: 'dir', file: '/etc/policies/odd\nname ünï.yaml', manifest: manifest('b') },
    { kind: 'EgressPolicy', namespace: 'default', name: 'c', origin: 'kubernetes', manifest: {} },
  ];

  it('policies come back as they went, each manifest remembered as its text; sliced or not, the same string', async () => {
    const wire = toWire(policies);
    assert.equal(await toWireSliced(policies, 0), wire);
    const back = fromWire(wire);
    assert.deepEqual(back, policies.map((p) => ({ ...p, id: 0, version: 0 })));
    for (const [i, p] of back.entries()) assert.equal(manifestText(p.manifest), JSON.stringify(policies[i]!.manifest));
    assert.deepEqual(fromWire(toWire([])), []);
  });

  it('policies read from files: a source may hold anything (NUL, line breaks)', async () => {
    const parsed = [
      { kind: 'AuthorizationPolicy' as const, namespace: 'shop', name: 'a', source: 'a\u0000b\nc.yaml', line: 3, manifest: JSON.stringify(manifest('a')) },
      { kind: 'EgressPolicy' as const, namespace: 'default', name: 'c', source: '', line: 1, manifest: '{}' },
    ];
    const back = await parsedFromWire(parsedToWire(parsed), 0);
    assert.deepEqual(back, parsed.map((p) => ({ ...p, manifest: JSON.parse(p.manifest) as unknown })));
    assert.deepEqual(await parsedFromWire(parsedToWire([]), 0), []);
  });

  it('changes come back as they went, diffs with line breaks included', async () => {
    const changes: PolicyChange[] = [
      { op: 'update', kind: 'AuthorizationPolicy', namespace: 'shop', name: 'a', diff: '-  a: 1\n+  a: 2\n' },
      { op: 'unchanged', kind: 'EgressPolicy', namespace: 'default', name: 'c', diff: '' },
    ];
    assert.deepEqual(await changesFromWire(changesToWire(changes), 0), changes);
    assert.deepEqual(await changesFromWire(changesToWire([]), 0), []);
    // the version row's text, as the repository makes it
    assert.equal(changesToWire(changes).changed, JSON.stringify(changedOf({ changes })));
    assert.equal(changesToWire([]).changed, '[]');
  });
});
