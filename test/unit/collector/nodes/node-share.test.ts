/**
 * Node records shared by collector replicas (collector/nodes/node-share.ts): how another
 * replica's share of a node merges into this replica's records — table-driven cases, and over
 * random shares, a merge that is order-free (commutative, associative, idempotent), so replicas
 * hearing each other's PalisadeNode objects in any order end with the same records.
 */
import { strict as assert } from 'node:assert';
import { checkShare, mergeInto, mergeShares, shareOf, type NodeShare } from '../../../../collector/nodes/node-share';
import { certRefusal, type NodeKey, type NodeRecord, type NodesFile, type RevokedCert } from '../../../../collector/nodes/node-trust';
import { canonicalJson } from '../../../../collector/audit/audit-log';
import { Rng } from '../../../harness/random';

const NOW = Date.parse('2026-12-07T12:00:00.000Z');
const key = (n: number, days = 30): NodeKey => ({
  serial: `0${n}`,
  spkiSha256: String(n % 10).repeat(64),
  issuedAt: new Date(NOW - (100 - n) * 60_000).toISOString(),
  notAfter: new Date(NOW + days * 86_400_000).toISOString(),
});
const record = (keys: number[], joinedAt = '2026-12-07T10:00:00.000Z', tokenId = 'tok-1'): NodeRecord => ({ node: 'node-a', scopes: [], joinedAt, tokenId, keys: keys.map((k) => key(k)) });
const revoked = (n: number): RevokedCert => ({ node: 'node-a', serial: key(n).serial, spkiSha256: key(n).spkiSha256, notAfter: key(n).notAfter, revokedAt: '2026-12-07T11:00:00.000Z' });
const file = (share: NodeShare): NodesFile => ({ version: 1, nodes: share.record ? [share.record] : [], revoked: share.revoked });
const presented = (n: number): { serial: string; spkiSha256: string } => ({ serial: key(n).serial, spkiSha256: key(n).spkiSha256 });

describe('node records shared by replicas: merging a share', () => {
  const cases: Array<{ name: string; ours: NodeShare; theirs: NodeShare; accepted: number[]; refused: number[]; changed: boolean }> = [
    { name: 'a node another replica let join: accepted here too', ours: { revoked: [] }, theirs: { record: record([1]), revoked: [] }, accepted: [1], refused: [], changed: true },
    { name: 'a renewal made at the other replica: both keys accepted', ours: { record: record([1]), revoked: [] }, theirs: { record: record([1, 2]), revoked: [] }, accepted: [1, 2], refused: [], changed: true },
    { name: 'an older share than ours: nothing changes', ours: { record: record([1, 2]), revoked: [] }, theirs: { record: record([1]), revoked: [] }, accepted: [1, 2], refused: [], changed: false },
    { name: 'revoked at the other replica: refused here, the record gone', ours: { record: record([1, 2]), revoked: [] }, theirs: { revoked: [revoked(1), revoked(2)] }, accepted: [], refused: [1, 2], changed: true },
    {
      name: 'joined again after a revocation: the new key only',
      ours: { revoked: [revoked(1)] },
      theirs: { record: record([3], '2026-12-07T11:30:00.000Z', 'tok-2'), revoked: [revoked(1)] },
      accepted: [3],
      refused: [1],
      changed: true,
    },
    {
      name: 'a revocation we have not heard of does not come back with an old share',
      ours: { revoked: [revoked(1)] },
      theirs: { record: record([1]), revoked: [] },
      accepted: [],
      refused: [1],
      changed: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = file(structuredClone(c.ours));
      assert.equal(mergeInto(f, 'node-a', structuredClone(c.theirs)), c.changed);
      for (const k of c.accepted) assert.equal(certRefusal(f, 'node-a', presented(k), NOW), undefined, `key ${k} accepted`);
      for (const k of c.refused) assert.ok(certRefusal(f, 'node-a', presented(k), NOW), `key ${k} refused`);
    });
  }

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', 'x', /spec: must be an object/],
    ["another node's record", { record: { ...record([1]), node: 'node-b' } }, /record of node node-a/],
    ['keys not a list', { record: { ...record([1]), keys: 'all' } }, /keys: must be a list/],
    ['a record without keys', { record: record([]) }, /keys: must be a list of 1/],
    ['a key without its hash', { record: { ...record([1]), keys: [{ ...key(1), spkiSha256: 'zz' }] } }, /keys\[0\]: not a certificate/],
    ['scopes not a list', { record: { ...record([1]), scopes: '*/*' } }, /scopes/],
    ["a revocation of another node", { revoked: [{ ...revoked(1), node: 'node-b' }] }, /revoked\[0\]/],
    ['a revocation without its time', { revoked: [{ ...revoked(1), revokedAt: 'yesterday' }] }, /revoked\[0\]/],
  ];
  for (const [name, spec, why] of bad) {
    it(`a PalisadeNode spec with ${name} is refused in one line`, () => {
      const got = checkShare('node-a', spec);
      assert.equal(typeof got, 'string');
      assert.match(got as string, why);
    });
  }

  it('a share as a replica writes it passes the check unchanged', () => {
    const share: NodeShare = { record: record([1, 2]), revoked: [revoked(3)] };
    assert.deepEqual(checkShare('node-a', structuredClone(share)), share);
    assert.deepEqual(checkShare('node-a', { revoked: [] }), { revoked: [] });
  });

  it('the latest join gives the binding and token id; keys stay oldest first (takeovers compare their order)', () => {
    const merged = mergeShares('node-a', { record: record([2]), revoked: [] }, { record: { ...record([1], '2026-12-07T11:00:00.000Z', 'tok-2'), nodeCidr: '10.1.0.0/24' }, revoked: [] });
    assert.equal(merged.record?.tokenId, 'tok-2');
    assert.equal(merged.record?.nodeCidr, '10.1.0.0/24');
    assert.deepEqual(merged.record?.keys.map((k) => k.serial), ['01', '02']);
  });

  it('over random shares, merging is commutative, associative and idempotent', () => {
    const rng = new Rng(20);
    const randomShare = (): NodeShare => {
      const keys = [1, 2, 3, 4, 5].filter(() => rng.chance(0.4));
      return {
        ...(keys.length > 0 && rng.chance(0.8) ? { record: record(keys, `2026-12-07T1${rng.int(2)}:00:00.000Z`, `tok-${rng.int(3)}`) } : {}),
        revoked: [1, 2, 3, 4, 5].filter(() => rng.chance(0.2)).map(revoked),
      };
    };
    // As a file holds them: the fixed point of merging with nothing.
    const norm = (s: NodeShare): string => canonicalJson(shareOf(file(mergeShares('node-a', s, { revoked: [] })), 'node-a'));
    const sameRecords = (a: NodeShare, b: NodeShare): string => canonicalJson({ keys: a.record?.keys.map((k) => k.serial) ?? [], revoked: a.revoked.map((r) => r.serial).sort() }) + ' vs ' + canonicalJson({ keys: b.record?.keys.map((k) => k.serial) ?? [], revoked: b.revoked.map((r) => r.serial).sort() });
    for (let i = 0; i < 500; i++) {
      const [a, b, c] = [randomShare(), randomShare(), randomShare()];
      const ab = mergeShares('node-a', a, b);
      const ba = mergeShares('node-a', b, a);
      const [x, y] = sameRecords(ab, ba).split(' vs ');
      assert.equal(x, y, `commutative (case ${i})`);
      assert.equal(norm(mergeShares('node-a', ab, ab)), norm(ab), `idempotent (case ${i})`);
      const left = mergeShares('node-a', ab, c);
      const right = mergeShares('node-a', a, mergeShares('node-a', b, c));
      const [l, r] = sameRecords(left, right).split(' vs ');
      assert.equal(l, r, `associative (case ${i})`);
    }
  });
});
