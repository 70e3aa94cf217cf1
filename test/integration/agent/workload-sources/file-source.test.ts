/**
 * The workloads file as a watched workload source: adding, removing and relabelling a workload in
 * the file applies without a restart; a change that does not validate (syntax, a field, a netns
 * that does not exist) is refused whole and the workloads stay. Kernel and netns are fakes here.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { LocalWorkloads } from '../../../../agent/local-workloads';
import { FileSource, loadCheckedWorkloads } from '../../../../agent/workload-sources/file-source';
import { NodeEnrollment } from '../../../../agent/workload-sources/node-enrollment';
import { createRootLogger } from '../../../../common/log';
import { tempDir } from '../../../harness/agent';
import { FakeDatapath, FakeNetns } from '../../../harness/enrollment-fakes';
import { JsonLines } from '../../../harness/fixtures';
import { waitFor } from '../../../harness/wait';

function yaml(entries: Array<{ name: string; ip: string; labels?: Record<string, string> }>): string {
  const lines = ['workloads:'];
  for (const e of entries) {
    lines.push(`  - name: ${e.name}`, '    namespace: default', `    serviceAccount: ${e.name}`, `    netns: /netns/${e.name}`, `    ip: ${e.ip}`);
    if (e.labels) lines.push(`    labels: ${JSON.stringify(e.labels)}`);
  }
  return `${lines.join('\n')}\n`;
}

describe('FileSource (watched workloads file; fake kernel)', function () {
  this.timeout(20_000);
  let dir: string;
  let file: string;
  let netns: FakeNetns;
  let local: LocalWorkloads;
  let dp: FakeDatapath;
  let source: FileSource;
  let enrollment: NodeEnrollment;
  let logs: JsonLines;

  /** Replace the file the way editors and ConfigMaps do: write aside, rename over. */
  function write(text: string): void {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  }
  const names = (): string => local.all().map((w) => w.name).sort().join(',');

  beforeEach(async function () {
    dir = tempDir('file-source');
    file = path.join(dir, 'workloads.yaml');
    netns = new FakeNetns();
    for (const n of ['a', 'b', 'c']) netns.add(`/netns/${n}`);
    local = new LocalWorkloads();
    dp = new FakeDatapath(netns, local);
    const stream = new PassThrough();
    logs = new JsonLines(stream);
    const log = createRootLogger({ level: 'info', destination: stream });
    enrollment = new NodeEnrollment({ datapath: dp, local, log, cookieOf: netns.cookieOf });
    write(yaml([{ name: 'a', ip: '10.0.1.11' }, { name: 'b', ip: '10.0.1.12' }]));
    source = new FileSource({ file, initial: loadCheckedWorkloads(file, netns.cookieOf), log, debounceMs: 20, cookieOf: netns.cookieOf });
    await source.start(enrollment);
  });

  afterEach(async function () {
    await source.close();
    enrollment.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('enrolls the file at start', function () {
    assert.equal(names(), 'a,b');
    assert.equal(dp.map.size, 2);
  });

  it('adds, removes and relabels without a restart', async function () {
    write(yaml([{ name: 'b', ip: '10.0.1.12', labels: { tier: 'back' } }, { name: 'c', ip: '10.0.1.13' }]));
    await waitFor(() => names() === 'b,c' && local.byIp('10.0.1.12')?.labels.tier === 'back', 5000, { what: `the change applied (${names()})` });
    assert.deepEqual([...dp.map.keys()].sort(), [netns.cookieOf('/netns/b'), netns.cookieOf('/netns/c')].sort());
  });

  it('an IP moved from a removed workload to a new one in the same change', async function () {
    write(yaml([{ name: 'c', ip: '10.0.1.11' }, { name: 'b', ip: '10.0.1.12' }]));
    await waitFor(() => local.byIp('10.0.1.11')?.name === 'c', 5000, { what: 'c at a\'s old address' });
    assert.equal(names(), 'b,c');
  });

  const bad: Array<[string, string, RegExp]> = [
    ['a syntax error', 'workloads: [\n', /workloads\.yaml:\d+: /],
    ['a bad field', yaml([{ name: 'a', ip: '10.0.1.300' }]), /workloads\.yaml:\d+: workload "a": "ip" must be an IPv4 address/],
    ['a netns that does not exist', yaml([{ name: 'zz', ip: '10.0.1.40' }]), /workload default\/zz: netns \/netns\/zz does not exist/],
  ];
  for (const [what, text, problem] of bad) {
    it(`refuses a change with ${what}, one line, and keeps the workloads`, async function () {
      write(text);
      const line = await logs.waitFor<{ problems: string[] }>((l) => l?.event === 'workloads-rejected', 5000);
      assert.match(line.problems[0]!, problem);
      assert.ok(line.problems.every((p) => !p.includes('\n')));
      assert.equal(names(), 'a,b');
      assert.equal(dp.map.size, 2);
    });
  }
});
