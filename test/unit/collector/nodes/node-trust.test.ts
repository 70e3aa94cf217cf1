import { strict as assert } from 'node:assert';
import { certRefusal, joinRefusal, nodeView, takeoverRefusal, type NodeRecord, type NodesFile, type PresentedKey } from '../../../../collector/nodes/node-trust';

const NOW = Date.parse('2024-05-01T12:00:00Z');
const LATER = '2024-05-31T12:00:00.000Z';
const PAST = '2024-04-30T12:00:00.000Z';
const k = (n: number, notAfter = LATER) => ({ serial: `0${n}`, spkiSha256: `k${n}`, issuedAt: PAST, notAfter });
const key = (n: number): PresentedKey => ({ serial: `0${n}`, spkiSha256: `k${n}` });
const record = (keys = [k(1)]): NodeRecord => ({ node: 'node-1', scopes: ['*/*'], joinedAt: PAST, tokenId: 'abcd0123', keys });
const file = (nodes: NodeRecord[], revoked: NodesFile['revoked'] = []): NodesFile => ({ version: 1, nodes, revoked });

describe('node trust', () => {
  describe('joinRefusal', () => {
    it('lets a new node join', () => assert.equal(joinRefusal(undefined, NOW), undefined));
    it('lets a node whose every certificate expired join again', () => assert.equal(joinRefusal(record([k(1, PAST)]), NOW), undefined));
    it('refuses a node with a valid certificate, naming the way out', () =>
      assert.equal(
        joinRefusal(record([k(1), k(2, '2024-06-30T00:00:00.000Z')]), NOW),
        'node node-1 has already joined (its certificate is valid until 2024-06-30T00:00:00.000Z): revoke it first (palisade collector node revoke node-1)',
      ));
  });

  describe('certRefusal', () => {
    const table: Array<[string, NodesFile, PresentedKey, string | undefined]> = [
      ['a certificate issued at the join', file([record()]), key(1), undefined],
      ['a renewal', file([record([k(1), k(2)])]), key(2), undefined],
      ['a certificate the records do not know', file([record()]), key(9), 'this certificate is not one the collector issued to node node-1 at its join or a renewal'],
      ['the right serial with another key', file([record()]), { serial: '01', spkiSha256: 'k9' }, 'this certificate is not one the collector issued to node node-1 at its join or a renewal'],
      ['an expired record key', file([record([k(1, PAST)])]), key(1), 'this certificate is not one the collector issued to node node-1 at its join or a renewal'],
      ['a node without a record', file([]), key(1), 'node node-1 has no join record: join it with a token created for it (palisade collector token create --node node-1)'],
      [
        'a revoked certificate (even after a new join)',
        file([record([k(3)])], [{ node: 'node-1', serial: '01', spkiSha256: 'k1', notAfter: LATER, revokedAt: '2024-05-01T11:00:00.000Z' }]),
        key(1),
        "node node-1's certificate was revoked at 2024-05-01T11:00:00.000Z",
      ],
    ];
    for (const [what, f, presented, want] of table) it(what, () => assert.equal(certRefusal(f, 'node-1', presented, NOW), want));
  });

  describe('takeoverRefusal', () => {
    const renewed = record([k(1), k(2)]);
    const table: Array<[string, NodeRecord | undefined, PresentedKey, PresentedKey, string | undefined]> = [
      ['the same key (a restart)', renewed, key(1), key(1), undefined],
      ['a newer key the node renewed to', renewed, key(1), key(2), undefined],
      ['an older key than the current session', renewed, key(2), key(1), 'the new session holds an older key of this node than the current one'],
      ['a key the node never had', renewed, key(1), key(9), 'the new session does not hold a key of this node'],
      ['no record (revoked meanwhile)', undefined, key(1), key(2), 'the new session does not hold a key of this node'],
      ['the current key was pruned (expired): a recorded key may take over', record([k(2)]), key(1), key(2), undefined],
    ];
    for (const [what, r, current, incoming, want] of table) it(what, () => assert.equal(takeoverRefusal(r, current, incoming), want));
  });

  it('nodeView shows the latest expiry and whether it passed', () => {
    assert.deepEqual(nodeView({ ...record([k(1, PAST), k(2)]), nodeCidr: '10.0.1.0/24' }, NOW), {
      node: 'node-1',
      nodeCidr: '10.0.1.0/24',
      scopes: ['*/*'],
      joinedAt: PAST,
      tokenId: 'abcd0123',
      certificateExpires: LATER,
      status: 'joined',
    });
    assert.equal(nodeView(record([k(1, PAST)]), NOW).status, 'expired');
  });
});
