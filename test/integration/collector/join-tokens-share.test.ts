/**
 * Join tokens shared by two collector replicas in Kubernetes mode, through the API double (driven
 * by the real client-node): PalisadeJoinToken objects (collector/kubernetes/join-tokens-share.ts).
 * A token created in replica A's data directory (the offline `token create`) joins a node at
 * replica B; the object keeps only the secret's hash; a single-use token offered to both replicas
 * at once is accepted by exactly one; and with the API away a join is refused (fail closed). A
 * token B's watch has not delivered yet is read from the API once before B refuses it; such reads
 * are rate-limited, and an unknown token is still refused and audited.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { joinOnce } from '../../../agent/mesh/join';
import { parseCollectorUrl } from '../../../agent/mesh/transport';
import type { RunningCollector } from '../../../collector/collector';
import { JoinTokensShare, LOOKUP_BURST } from '../../../collector/kubernetes/join-tokens-share';
import { ANY_SCOPE } from '../../../collector/nodes/node-binding';
import { TokenStore } from '../../../collector/tokens';
import { KubeClient } from '../../../common/kube/client';
import { silentLogger } from '../../../common/log';
import { isPalisadeError } from '../../../common/errors';
import { REPLICAS_CA_SECRET, useReplicasApi } from './kube-collector';
import { collector, LogCapture, token, useCollectorSuite, waitFor } from './helpers';

const TOKENS = 'palisade.dev/v1/palisadejointokens';

describe('collector replicas share join tokens through the API (PalisadeJoinToken objects)', function () {
  this.timeout(60_000);
  const { dirs, stack } = useCollectorSuite();
  const k8s = useReplicasApi(dirs, stack);

  const replicas = async (): Promise<{ a: RunningCollector; b: RunningCollector; dataA: string }> => {
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const logs = new LogCapture();
    const start = (dataDir: string): Promise<RunningCollector> => collector(stack, { dataDir, log: logs.logger, kubernetes: { kubeconfig: k8s.kubeconfig, caSecret: REPLICAS_CA_SECRET } });
    const [a, b] = await Promise.all([start(dataA), start(dataB)]);
    return { a, b, dataA };
  };
  const published = (id: string): Promise<unknown> => waitFor(() => k8s.api.get(TOKENS, '', `plt-${id}`), 5_000, `token ${id} published`);
  /** `c` has the token through its watch (tens to hundreds of ms after the API has it on a loaded machine; before, it answers "unknown token"). */
  const heard = (c: RunningCollector, t: string): Promise<unknown> => waitFor(() => c.kubernetes!.tokens.check(t).ok, 5_000, 'the replica\'s watch delivering the token');
  const idOf = (t: string): string => /^plt_([0-9a-f]{8})\./.exec(t)![1]!;
  const tryJoin = (c: RunningCollector, node: string, t: string): Promise<string> =>
    joinOnce(parseCollectorUrl(c.url), c.ca.certPem, node, t).then(
      () => 'joined',
      (err: unknown) => (isPalisadeError(err) ? err.message : String(err)),
    );

  it('a token created at A joins a node at B; the object has the hash, never the secret; spent there, A refuses it', async function () {
    const { a, b, dataA } = await replicas();
    const t = token(dataA, 'node-t');
    const object = (await published(idOf(t))) as { spec: { secretSha256: string; node: string } };
    assert.equal(object.spec.node, 'node-t');
    assert.match(object.spec.secretSha256, /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(object).includes(t.split('.')[1]!), 'no secret in the object');
    await heard(b, t);
    assert.equal(await tryJoin(b, 'node-t', t), 'joined');
    const used = k8s.api.get(TOKENS, '', `plt-${idOf(t)}`) as unknown as { spec: { usedBy?: string } };
    assert.equal(used.spec.usedBy, 'node-t', 'spent in the API');
    // A learns it from the watch (and marks its tokens.json): the same token again at A is refused.
    await waitFor(() => (JSON.parse(fs.readFileSync(`${dataA}/tokens.json`, 'utf8')) as { tokens: Array<{ usedBy?: string }> }).tokens[0]?.usedBy === 'node-t', 5_000, 'A\'s tokens.json marks it used');
    assert.match(await tryJoin(a, 'node-t2', t), /token already used|token is for node/);
  });

  it('a single-use token offered to both replicas at once is accepted by exactly one', async function () {
    const { a, b, dataA } = await replicas();
    for (let round = 0; round < 3; round++) {
      const node = `node-race-${round}`;
      const t = token(dataA, node);
      await published(idOf(t));
      await heard(b, t);
      const results = await Promise.all([tryJoin(a, node, t), tryJoin(b, node, t)]);
      assert.equal(results.filter((r) => r === 'joined').length, 1, `round ${round}: ${results.join(' | ')}`);
      assert.match(results.find((r) => r !== 'joined')!, /token already used|has already joined/, `round ${round}: the other is refused (${results.join(' | ')})`);
    }
  });

  it('two replicas spending one token at the same moment: the API\'s resourceVersion lets one win, the other reads it again and finds it used', async function () {
    const dataA = dirs.make();
    const local = new TokenStore(dataA);
    const shares = await Promise.all(
      [0, 1].map(async () => {
        const share = new JoinTokensShare({ client: await KubeClient.connect({ kubeconfig: k8s.kubeconfig }), local, log: silentLogger() });
        share.start();
        stack.push(() => share.stop());
        await share.synced();
        return share;
      }),
    );
    for (let round = 0; round < 3; round++) {
      const t = local.create({ node: `node-${round}`, scopes: [ANY_SCOPE] }, 3_600_000).token;
      await published(idOf(t));
      await waitFor(() => shares.every((s) => s.check(t).ok), 5_000, 'both replicas have the object');
      const verdicts = await Promise.all(shares.map((s) => s.spend(t, `node-${round}`)));
      assert.equal(verdicts.filter((v) => v.ok).length, 1, `round ${round}: exactly one spends it`);
      assert.deepEqual(verdicts.filter((v) => !v.ok).map((v) => (v as { reason: string }).reason), ['token already used']);
    }
    // Both spends start from the same cached object: each round the loser's update is answered 409 (a retry after a stale read may add more).
    assert.ok(shares[0]!.conflicts + shares[1]!.conflicts >= 3, `each round, the loser's update was answered 409 (${shares[0]!.conflicts + shares[1]!.conflicts})`);
  });

  it('the API away: a join is refused, not accepted on a stale view', async function () {
    const { b, dataA } = await replicas();
    const t = token(dataA, 'node-o');
    await published(idOf(t));
    const heal = k8s.api.addFault({ method: 'PUT', path: /palisadejointokens/, status: 503 });
    const refused = await tryJoin(b, 'node-o', t);
    assert.notEqual(refused, 'joined');
    heal();
    assert.equal(await tryJoin(b, 'node-o', t), 'joined', 'the token was not spent by the failed attempt');
  });

  /** Hold every join-token watch from now on (reconnections hang): a replica learns no token through its watch. */
  const holdTokenWatches = (): (() => void) => {
    const heal = k8s.api.addFault({ path: /palisadejointokens/, watch: true, hang: true });
    k8s.api.dropWatches('reset');
    return () => {
      heal();
      k8s.api.dropWatches('reset');
    };
  };

  it('a token published by A a moment ago joins at B before B\'s watch has delivered it (read from the API once)', async function () {
    const { b, dataA } = await replicas();
    const heal = holdTokenWatches();
    try {
      const t = token(dataA, 'node-l');
      await published(idOf(t));
      assert.equal(b.kubernetes!.tokens.check(t).ok, false, 'B has not heard of it through its watch');
      assert.equal(await tryJoin(b, 'node-l', t), 'joined');
      assert.equal((k8s.api.get(TOKENS, '', `plt-${idOf(t)}`) as unknown as { spec: { usedBy?: string } }).spec.usedBy, 'node-l', 'spent in the API');
      assert.equal(b.kubernetes!.tokens.lookUps.found, 1);
    } finally {
      heal();
    }
  });

  it('an unknown token is still refused and audited; reads of unknown tokens are rate-limited (a flood costs the API a burst, then a few a second)', async function () {
    const { b } = await replicas();
    const unknown = 'plt_0123abcd.' + 'x'.repeat(32);
    assert.match(await tryJoin(b, 'node-u', unknown), /unknown token/);
    await waitFor(() => b.audit.list({ kind: 'trust-refusal' }).some((r) => r.data.event === 'join' && r.data.reason === 'unknown token'), 5_000, 'the refusal audited');
    const reads = (): number => k8s.api.requests.filter((r) => r.method === 'GET' && /palisadejointokens\/plt-/.test(r.path)).length;
    assert.equal(reads(), 1, 'read once before the refusal');
    const share = b.kubernetes!.tokens;
    const before = { ...share.lookUps };
    await Promise.all(Array.from({ length: 50 }, (_, i) => share.lookUp(`plt_${(0x10000000 + i).toString(16)}.${'y'.repeat(32)}`)));
    const read = share.lookUps.read - before.read;
    assert.ok(read <= LOOKUP_BURST, `${read} reads for 50 unknown tokens at once`);
    assert.equal(read + share.lookUps.limited - before.limited, 50, 'each one either read or refused unread, counted');
    assert.equal(reads(), 1 + read, 'the API saw only those reads');
  });
});
