import { strict as assert } from 'node:assert';
import { parseCaSecretRef } from '../../../../collector/kubernetes/ca-secret';

describe('parseCaSecretRef (--ca-secret)', () => {
  it('NAMESPACE/NAME: its parts', () => {
    assert.deepEqual(parseCaSecretRef('palisade-system/palisade-ca'), { namespace: 'palisade-system', name: 'palisade-ca' });
    assert.deepEqual(parseCaSecretRef('palisade-system/mesh.ca'), { namespace: 'palisade-system', name: 'mesh.ca' });
  });

  for (const bad of ['palisade-ca', 'palisade-system/', '/palisade-ca', 'a/b/c', 'Palisade/ca', 'palisade.system/ca', `ns/${'a'.repeat(254)}`]) {
    it(`${JSON.stringify(bad.slice(0, 30))}: one line naming the flag and the expected shape`, () => {
      assert.throws(() => parseCaSecretRef(bad), (err: Error) => /^invalid --ca-secret .*: expected NAMESPACE\/NAME of a Secret/.test(err.message) && !err.message.includes('\n'));
    });
  }
});
