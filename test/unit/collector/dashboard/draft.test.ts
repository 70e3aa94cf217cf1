import { strict as assert } from 'node:assert';
import { parse, parseAllDocuments } from 'yaml';
import { draftPolicies } from '../../../../collector/dashboard/draft';
import type { FlowRecord } from '../../../../common/flow';
import { compilePolicyFiles } from '../../../../common/policy';

const w = (name: string) => ({ kind: 'workload', namespace: 'default', name });

function flow(f: Partial<FlowRecord>): FlowRecord {
  return {
    time: new Date().toISOString(),
    node: 'n1',
    direction: 'inbound',
    source: { ip: '10.0.1.10', workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' },
    destination: { ip: '10.0.2.10', port: 8080, workload: 'web-2', namespace: 'default' },
    protocol: 'http',
    verdict: 'allowed',
    reason: 'no-policy',
    mtls: true,
    bytesSent: 1,
    bytesReceived: 1,
    durationMs: 1,
    ...f,
  };
}

describe('draftPolicies', () => {
  it('drafts one ALLOW policy per destination with the callers and ports seen, and an EgressPolicy per source', () => {
    const d = draftPolicies([
      { source: w('client'), target: w('web-2'), flows: [flow({}), flow({ destination: { ip: '10.0.2.10', port: 9090, workload: 'web-2', namespace: 'default' } })] },
      { source: { kind: 'ip', namespace: '', name: '192.0.2.7' }, target: w('web-2'), flows: [flow({ source: { ip: '192.0.2.7' } })] },
      {
        source: w('client'),
        target: { kind: 'host', namespace: '', name: 'allowed.example.test' },
        flows: [flow({ direction: 'egress', destination: { ip: '172.31.0.100', port: 443, host: 'allowed.example.test' }, protocol: 'tls', mtls: false })],
      },
    ]);
    const docs = parseAllDocuments(d.yaml).map((x) => x.toJSON() as Record<string, any>);
    assert.equal(docs.length, 2);
    const authz = docs[0]!;
    assert.equal(authz.kind, 'AuthorizationPolicy');
    assert.deepEqual(authz.metadata, { name: 'web-2-allow-drafted', namespace: 'default' });
    assert.deepEqual(authz.spec.selector, { matchLabels: { 'palisade.dev/workload': 'web-2' } });
    assert.deepEqual(authz.spec.rules, [
      { from: [{ source: { ipBlocks: ['192.0.2.7'] } }], to: [{ operation: { ports: ['8080'] } }] },
      { from: [{ source: { principals: ['cluster.local/ns/default/sa/client'] } }], to: [{ operation: { ports: ['8080', '9090'] } }] },
    ]);
    const egress = docs[1]!;
    assert.equal(egress.kind, 'EgressPolicy');
    assert.equal(egress.metadata.name, 'client-egress-drafted');
    assert.deepEqual(egress.spec.allow, [{ hosts: ['allowed.example.test'], ports: [443] }]);
    assert.equal(d.summary.length, 2);
    // what it drafts is a valid policy set
    const set = compilePolicyFiles([{ source: 'draft.yaml', text: d.yaml }]);
    assert.equal(set.authorization.length + set.egress.length, 2);
    assert.ok(parse(d.yaml.split('---\n')[0]!));
  });

  it('names edges it cannot draft (an unknown source leaving the mesh)', () => {
    const d = draftPolicies([{ source: { kind: 'ip', namespace: '', name: '192.0.2.7' }, target: { kind: 'ip', namespace: '', name: '198.51.100.1' }, flows: [] }]);
    assert.equal(d.yaml, '');
    assert.match(d.summary[0]!, /not a workload of the mesh/);
  });
});
