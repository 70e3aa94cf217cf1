import { strict as assert } from 'node:assert';
import { mergeFlowPages } from '../../../cli/flow-merge';
import type { StoredFlow } from '../../../common/flows-api';

/** A stored flow: `t` seconds past 12:00, row `id`, from `node`, with `origin` (omitted: none). */
function flow(id: number, t: number, origin?: string, node = 'node-1'): StoredFlow {
  return {
    id,
    ...(origin !== undefined ? { origin } : {}),
    time: new Date(Date.UTC(2026, 11, 7, 12, 0, t)).toISOString(),
    node,
    direction: 'outbound',
    source: { ip: '10.0.1.2' },
    destination: { ip: '10.0.2.2', port: 80 },
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'allowed',
    mtls: true,
    bytesSent: 1,
    bytesReceived: 1,
    durationMs: 1,
  } as StoredFlow;
}

const label = (f: StoredFlow): string => `${f.node}:${f.origin ?? '-'}@${new Date(f.time).getUTCSeconds()}#${f.id}`;

describe('observe over several collectors: mergeFlowPages', () => {
  const cases: Array<{ what: string; pages: StoredFlow[][]; limit: number; want: string[]; duplicates: number }> = [
    { what: 'one page passes through', pages: [[flow(2, 5, 's/1/1'), flow(1, 4, 's/1/0')]], limit: 10, want: ['node-1:s/1/1@5#2', 'node-1:s/1/0@4#1'], duplicates: 0 },
    {
      what: 'two replicas interleave by time, newest first',
      pages: [
        [flow(2, 9, 'a/2/0'), flow(1, 3, 'a/1/0')],
        [flow(7, 6, 'b/1/0', 'node-2'), flow(6, 1, 'b/0/0', 'node-2')],
      ],
      limit: 10,
      want: ['node-1:a/2/0@9#2', 'node-2:b/1/0@6#7', 'node-1:a/1/0@3#1', 'node-2:b/0/0@1#6'],
      duplicates: 0,
    },
    {
      what: 'a batch both replicas stored (resent after a failover) is shown once',
      pages: [[flow(3, 5, 's/4/1'), flow(2, 5, 's/4/0')], [flow(11, 6, 's/5/0'), flow(10, 5, 's/4/1'), flow(9, 5, 's/4/0')]],
      limit: 10,
      want: ['node-1:s/5/0@6#11', 'node-1:s/4/1@5#3', 'node-1:s/4/0@5#2'],
      duplicates: 2,
    },
    { what: 'the same origin from another node is another flow', pages: [[flow(1, 5, 's/1/0')], [flow(1, 5, 's/1/0', 'node-2')]], limit: 10, want: ['node-1:s/1/0@5#1', 'node-2:s/1/0@5#1'], duplicates: 0 },
    { what: 'flows stored without an origin are never merged', pages: [[flow(1, 5)], [flow(1, 5)]], limit: 10, want: ['node-1:-@5#1', 'node-1:-@5#1'], duplicates: 0 },
    { what: 'the limit applies to the merged page', pages: [[flow(2, 8, 'a/2/0'), flow(1, 2, 'a/1/0')], [flow(5, 7, 'b/2/0', 'node-2'), flow(4, 1, 'b/1/0', 'node-2')]], limit: 2, want: ['node-1:a/2/0@8#2', 'node-2:b/2/0@7#5'], duplicates: 0 },
    { what: 'no pages, nothing', pages: [[], []], limit: 5, want: [], duplicates: 0 },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const got = mergeFlowPages(c.pages, c.limit);
      assert.deepEqual(got.flows.map(label), c.want);
      assert.equal(got.duplicates, c.duplicates);
    });
  }
});
