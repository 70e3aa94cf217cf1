import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EnforcedPolicies } from '../../../../agent/policy/enforced';
import { silentLogger } from '../../../../common/log';
import { authorize, type PolicyIndex } from '../../../../common/policy';

const deny = (name: string, ns = 'default'): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: ${ns}}
spec:
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/${name}"]}}]}]
`;

const web = { namespace: 'default', labels: { app: 'web' } };
const verdictFor = (index: PolicyIndex, sa: string): boolean =>
  authorize({ source: { ip: '10.0.1.10', principal: `spiffe://cluster.local/ns/default/sa/${sa}`, namespace: 'default' }, destination: { ip: '10.0.1.11', port: 80, workload: web } }, index, 'tcp').allowed;

describe('EnforcedPolicies', () => {
  let dir: string;
  let store: EnforcedPolicies;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-store-'))));
  afterEach(() => {
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('enforces the union of its directory and the collector, each replaced on its own', () => {
    fs.writeFileSync(path.join(dir, 'a.yaml'), deny('alice'));
    store = new EnforcedPolicies({ dir, log: silentLogger() });
    store.start();
    assert.equal(verdictFor(store.index, 'alice'), false);
    assert.equal(store.applyCollector(1, [{ source: 'b.yaml', text: deny('bob') }]), true);
    assert.equal(verdictFor(store.index, 'alice'), false, 'the directory still applies');
    assert.equal(verdictFor(store.index, 'bob'), false, 'and the collector');
    assert.equal(store.applyCollector(2, []), true);
    assert.equal(verdictFor(store.index, 'bob'), true, 'the collector version 2 has no policies');
    assert.deepEqual(Object.keys(store.state().sources).sort(), ['collector', 'dir']);
    assert.equal(store.state().sources.collector?.version, 2);
  });

  it('keeps the previous policies when a change does not validate, and says why', () => {
    store = new EnforcedPolicies({ dir, log: silentLogger() });
    store.start();
    assert.equal(store.applyCollector(1, [{ source: 'b.yaml', text: deny('bob') }]), true);
    const rejected: Array<{ problems: string[] }> = [];
    store.on('rejected', (r: { problems: string[] }) => rejected.push(r));
    assert.equal(store.applyCollector(2, [{ source: 'b.yaml', text: deny('bob') }, { source: 'c.yaml', text: 'kind: Nope\n' }]), false);
    assert.equal(verdictFor(store.index, 'bob'), false, 'version 1 still in force');
    assert.equal(rejected.length, 1);
    assert.match(rejected[0]!.problems.join('\n'), /c\.yaml:1:/);
  });

  it('refuses to start on a directory that does not validate', () => {
    fs.writeFileSync(path.join(dir, 'bad.yaml'), deny('x').replace('DENY', 'NOPE'));
    store = new EnforcedPolicies({ dir, log: silentLogger() });
    assert.throws(() => store.start(), (err: Error & { code?: string }) => err.code === 'PALISADE_ERR_POLICY_INVALID' && /bad\.yaml:5:/.test(err.message));
  });

  it('reloads when a file changes and tells listeners', async () => {
    store = new EnforcedPolicies({ dir, log: silentLogger(), debounceMs: 10 });
    store.start();
    const changed = new Promise<PolicyIndex>((resolve) => store.once('change', resolve));
    fs.writeFileSync(path.join(dir, 'a.yaml'), deny('alice'));
    const index = await changed;
    assert.equal(verdictFor(index, 'alice'), false);
  });
});
