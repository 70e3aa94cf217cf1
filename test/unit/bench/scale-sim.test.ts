/** The mesh simulator's pure parts (its flags, its percentiles and arrivals, the simulated mesh's addresses) and its clock, one across processes. */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { DEFAULTS, defaultProcesses, parseOptions, SCENARIOS, SMOKE } from '../../bench/scale/options';
import { NodePods, nodeAddress, nodeName, podCidr } from '../../bench/scale/mesh-shape';
import { firstArrival, percentile, spread } from '../../bench/scale/stats';
import { now } from '../../bench/scale/timing';

describe('mesh simulator: options', () => {
  const cases: Array<[string, string[], Partial<typeof DEFAULTS>]> = [
    ['defaults are the issue\'s target', [], { nodes: 1000, podsPerNode: 100, flowRate: 50_000, scenarios: [...SCENARIOS], smoke: false }],
    ['--smoke is small, over two agent processes', ['--smoke'], { ...SMOKE, processes: 2, smoke: true }],
    ['--processes', ['--processes', '5'], { processes: 5 }],
    ['flags after --smoke win', ['--smoke', '--nodes', '20'], { nodes: 20, podsPerNode: SMOKE.podsPerNode, smoke: true }],
    ['flags', ['--nodes', '300', '--pods-per-node', '20', '--flow-rate', '0', '--duration', '2.5'], { nodes: 300, podsPerNode: 20, flowRate: 0, durationS: 2.5 }],
    ['scenarios run in their fixed order', ['--scenarios', 'collector-restart,steady'], { scenarios: ['steady', 'collector-restart'] }],
  ];
  for (const [what, argv, want] of cases) {
    it(what, () => {
      const got = parseOptions(argv);
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, k);
    });
  }

  const bad: Array<[string[], RegExp]> = [
    [['--nodes', '1'], /--nodes must be an integer from 2 to 10000, got "1"/],
    [['--nodes', '2.5'], /--nodes must be an integer/],
    [['--pods-per-node', '201'], /--pods-per-node must be an integer from 1 to 200/],
    [['--flow-rate'], /--flow-rate needs a value/],
    [['--scenarios', 'steady,nope'], /--scenarios takes a comma-separated list of .*; got "nope"/],
    [['--frobnicate', '1'], /unknown flag "--frobnicate"/],
    [['--processes', '0'], /--processes must be an integer from 1 to 64, got "0"/],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(' ')} in one line`, () => assert.throws(() => parseOptions(argv), (err: Error) => message.test(err.message) && !err.message.includes('\n')));
  }
});

describe('mesh simulator: agent processes', () => {
  it('defaults to one agent process per core, at least two', () => {
    assert.deepEqual([1, 2, 4, 16, 200].map(defaultProcesses), [2, 2, 4, 16, 64]);
  });

  it('takes times on one clock in every process (CLOCK_MONOTONIC, not each process\'s own start)', () => {
    const before = now();
    const timing = path.resolve(__dirname, '../../bench/scale/timing.js');
    const child = Number(execFileSync(process.execPath, ['-e', `process.stdout.write(String(require(${JSON.stringify(timing)}).now()))`], { encoding: 'utf8' }));
    const after = now();
    assert.ok(before <= child && child <= after, `the child's ${child} lies between the parent's ${before} and ${after}`);
  });
});

describe('mesh simulator: figures', () => {
  it('takes percentiles by nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, k) => k + 1);
    assert.equal(percentile(sorted, 50), 50);
    assert.equal(percentile(sorted, 99), 99);
    assert.equal(percentile(sorted, 100), 100);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([], 50), null);
    assert.deepEqual(spread([3, 1, 2]), { samples: 3, p50Ms: 2, p99Ms: 3, maxMs: 3 });
    assert.deepEqual(spread([]), { samples: 0, p50Ms: null, p99Ms: null, maxMs: null });
  });

  it('finds the first arrival of a version after a time, across a collector restart', () => {
    const arrivals = [
      { version: 5, t: 10 },
      { version: 6, t: 20 },
      { version: 8, t: 30 },
      { version: 1, t: 40 }, // restarted collector
      { version: 3, t: 50 },
    ];
    assert.deepEqual(firstArrival(arrivals, 6, 0), { version: 6, t: 20 });
    assert.deepEqual(firstArrival(arrivals, 7, 0), { version: 8, t: 30 });
    assert.deepEqual(firstArrival(arrivals, 2, 35), { version: 3, t: 50 });
    assert.equal(firstArrival(arrivals, 9, 0), undefined);
    assert.equal(firstArrival(arrivals, 1, 51), undefined);
  });
});

describe('mesh simulator: the mesh shape', () => {
  it('gives nodes distinct names, addresses and pod ranges', () => {
    assert.equal(nodeName(7), 'sim-00007');
    assert.equal(nodeAddress(0), '172.16.0.1');
    assert.equal(nodeAddress(255), '172.16.1.0');
    assert.equal(podCidr(0), '10.64.0.0/24');
    assert.equal(podCidr(300), '10.65.44.0/24');
  });

  it('replaces pods with new names and free addresses inside the node\'s range', () => {
    const pods = new NodePods(3, 100, 4);
    const seen = new Set(pods.registrations().map((w) => w.ip));
    for (let k = 0; k < 1000; k++) {
      const position = k % 100;
      const old = pods.ipAt(position);
      const ip = pods.replace(position);
      assert.notEqual(ip, old);
      const regs = pods.registrations();
      assert.equal(new Set(regs.map((w) => w.ip)).size, 100, 'addresses stay unique');
      assert.equal(new Set(regs.map((w) => w.name)).size, 100, 'names stay unique');
      assert.ok(regs.every((w) => w.ip.startsWith('10.64.3.') && w.labels['palisade.dev/workload'] === w.name));
      seen.add(ip);
    }
    assert.ok(seen.size > 200, 'addresses cycle through the range');
    assert.deepEqual([...new Set(pods.registrations().map((w) => w.serviceAccount))].sort(), ['app-0', 'app-1', 'app-2', 'app-3']);
  });
});
