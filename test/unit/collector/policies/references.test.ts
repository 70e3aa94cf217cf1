import { strict as assert } from 'node:assert';
import { historyKey, resolvePolicy, resolveWorkload } from '../../../../collector/policies/references';
import type { StoredPolicy } from '../../../../collector/policies/repository';
import { PalisadeError } from '../../../../common/errors';
import type { RegistryWorkload } from '../../../../common/mesh-protocol';

function stored(kind: StoredPolicy['kind'], namespace: string, name: string, id: number): StoredPolicy {
  return { kind, namespace, name, origin: 'api', manifest: {}, id, version: 1 };
}
const CURRENT = [
  stored('AuthorizationPolicy', 'shop', 'api-allow', 1),
  stored('EgressPolicy', 'shop', 'web-out', 2),
  stored('AuthorizationPolicy', 'bank', 'web-out', 3),
];

function workload(namespace: string, name: string, node = 'node-1'): RegistryWorkload {
  return { node, nodeAddress: '10.0.0.1', namespace, name, serviceAccount: name, identity: `spiffe://td/ns/${namespace}/sa/${name}`, ip: '10.0.1.1', labels: {} };
}
const WORKLOADS = [workload('shop', 'web'), workload('shop', 'web', 'node-2'), workload('shop', 'api'), workload('bank', 'api')];

/** One line, with this code and message. */
const refusedWith = (code: string, message: RegExp) => (err: unknown) =>
  err instanceof PalisadeError && err.code === code && message.test(err.message) && !err.message.includes('\n');

describe('references', () => {
  describe('resolvePolicy', () => {
    const found: [string, number][] = [
      ['api-allow', 1],
      ['shop/web-out', 2],
      ['bank/web-out', 3],
      ['EgressPolicy/shop/web-out', 2],
    ];
    for (const [ref, id] of found) it(`${ref} → policy ${id}`, () => assert.equal(resolvePolicy(CURRENT, ref).id, id));

    const refused: [string, string, RegExp][] = [
      ['web-out', 'PALISADE_ERR_INVALID_ARGUMENT', /^"web-out" names 2 policies \(EgressPolicy\/shop\/web-out, AuthorizationPolicy\/bank\/web-out\): name it as Kind\/namespace\/name$/],
      ['nope', 'PALISADE_ERR_NOT_FOUND', /^no policy "nope" \(palisade policy list shows them\)$/],
      ['Policy/shop/x', 'PALISADE_ERR_INVALID_ARGUMENT', /^invalid policy kind "Policy": use AuthorizationPolicy, EgressPolicy, HTTPRoute, GRPCRoute, FaultInjection or DestinationRule$/],
      ['a/b/c/d', 'PALISADE_ERR_INVALID_ARGUMENT', /^invalid policy name "a\/b\/c\/d": give \[Kind\/\]namespace\/name or a name$/],
      ['shop/', 'PALISADE_ERR_INVALID_ARGUMENT', /^invalid policy name "shop\/"/],
      ['', 'PALISADE_ERR_INVALID_ARGUMENT', /^invalid policy name: give/],
    ];
    for (const [ref, code, message] of refused) {
      it(`refuses ${JSON.stringify(ref)} in one line (${code})`, () => assert.throws(() => resolvePolicy(CURRENT, ref), refusedWith(code, message)));
    }
  });

  describe('historyKey', () => {
    const deleted = new Set(['EgressPolicy/shop/old']);
    const hasHistory = (key: string): boolean => deleted.has(key);
    it('is the key of a stored policy', () => assert.equal(historyKey(CURRENT, 'api-allow', hasHistory), 'AuthorizationPolicy/shop/api-allow'));
    it('is the full name of a deleted policy with history', () => assert.equal(historyKey(CURRENT, 'EgressPolicy/shop/old', hasHistory), 'EgressPolicy/shop/old'));
    it('refuses a deleted policy named without its kind', () => {
      assert.throws(() => historyKey(CURRENT, 'shop/old', hasHistory), refusedWith('PALISADE_ERR_NOT_FOUND', /a deleted one needs its full Kind\/namespace\/name/));
    });
  });

  describe('resolveWorkload', () => {
    it('finds a workload by namespace/name or a unique name (one per name, whatever its nodes)', () => {
      assert.deepEqual(resolveWorkload(WORKLOADS, 'shop/api'), { namespace: 'shop', name: 'api' });
      assert.deepEqual(resolveWorkload(WORKLOADS, 'web'), { namespace: 'shop', name: 'web' });
    });
    it('takes an unregistered namespace/name as it is only when asked to', () => {
      assert.deepEqual(resolveWorkload(WORKLOADS, 'gone/job', true), { namespace: 'gone', name: 'job' });
      assert.throws(() => resolveWorkload(WORKLOADS, 'gone/job'), refusedWith('PALISADE_ERR_NOT_FOUND', /^unknown workload "gone\/job" \(registered: bank\/api, shop\/api, shop\/web\)$/));
    });
    const refused: [string, string, RegExp][] = [
      ['api', 'PALISADE_ERR_INVALID_ARGUMENT', /^workload "api" is ambiguous \(shop\/api, bank\/api\): name it as namespace\/name$/],
      ['10.0.1.1', 'PALISADE_ERR_INVALID_ARGUMENT', /not an address or identity$/],
      ['spiffe://td/ns/shop/sa/web', 'PALISADE_ERR_INVALID_ARGUMENT', /not an address or identity$/],
      ['', 'PALISADE_ERR_INVALID_ARGUMENT', /^invalid workload: give namespace\/name or name$/],
    ];
    for (const [ref, code, message] of refused) {
      it(`refuses ${JSON.stringify(ref)} in one line`, () => assert.throws(() => resolveWorkload(WORKLOADS, ref), refusedWith(code, message)));
    }
  });
});
