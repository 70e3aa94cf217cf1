import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import type { Topology } from '../../harness';
import { tempDir } from '../../harness/agent';
import { JsonLines } from '../../harness/fixtures';
import type { LoadgenResult } from '../../bench/data-plane/loadgen';
import type { ProxyProcess } from '../../bench/data-plane/stack';
import { keepStallEvidence, warnLines } from '../../bench/data-plane/stall-evidence';

describe('data-plane bench: a stalled run keeps the agents warn/error lines', function () {
  const since = Date.parse('2026-12-07T18:00:00.000Z');
  const cases: Array<[string, unknown, boolean]> = [
    ['a warn line during the run', { level: 40, time: '2026-12-07T18:00:01.000Z', msg: 'http upstream failed' }, true],
    ['an error line during the run', { level: 50, time: '2026-12-07T18:00:02.000Z', msg: 'x' }, true],
    ['a warn line at the run start', { level: 40, time: '2026-12-07T18:00:00.000Z' }, true],
    ['a warn line before the run', { level: 40, time: '2026-12-07T17:59:59.999Z' }, false],
    ['an info line during the run', { level: 30, time: '2026-12-07T18:00:01.000Z' }, false],
    ['a line with a time in ms', { level: 60, time: since + 5 }, true],
    ['a line with no time', { level: 40 }, true],
    ['a line with no level', { time: '2026-12-07T18:00:01.000Z' }, false],
    ['not an object', 'warn', false],
    ['null', null, false],
  ];
  for (const [what, line, kept] of cases) it(`${what}: ${kept ? 'kept' : 'left out'}`, () => assert.equal(warnLines([line], since).length, kept ? 1 : 0));
});

describe('data-plane bench: keepStallEvidence', function () {
  it('writes the stuck ports, the sockets, the warn lines and the metrics into the run directory', async function () {
    const dir = path.join(tempDir('stall-evidence'), 'round1-conn16-palisade-routed');
    const started = Date.now();
    const stderr = new PassThrough();
    const logs = new JsonLines(stderr);
    stderr.write(`${JSON.stringify({ level: 30, time: new Date(started + 1).toISOString(), msg: 'info line' })}\n`);
    stderr.write(`${JSON.stringify({ level: 40, time: new Date(started + 2).toISOString(), msg: 'http upstream failed' })}\nnot json\n`);
    await new Promise((r) => setImmediate(r));
    // the commands run here, not in a namespace
    const topo = {
      exec: async (_t: unknown, cmd: string, args: readonly string[]) => {
        const r = spawnSync(cmd, args, { encoding: 'utf8' });
        return { code: r.status, signal: null, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut: false };
      },
    } as unknown as Topology;
    const result = { stalled: 1, stalled_conns: [{ port: 41234, waited_s: 1.5, request_bytes_sent: 80, response_head_bytes: 0, connecting: 0 }] } as LoadgenResult;
    const files = await keepStallEvidence({
      topo,
      dir,
      result,
      startedMs: started,
      agents: [{ name: 'agent-1', logs } as unknown as ProxyProcess],
      namespaces: [{ name: 'client-pod', target: { netnsPath: '', cgroupPath: '' } }],
      metrics: async () => 'palisade_up 1',
    });
    const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
    assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['README.txt', 'agent-1-metrics.txt', 'agent-1-other.txt', 'agent-1-warn.jsonl', 'loadgen.json', 'ss-client-pod.txt']);
    assert.match(read('README.txt'), /41234/);
    assert.match(read('ss-client-pod.txt'), /State|Recv-Q/);
    assert.deepEqual(read('agent-1-warn.jsonl').trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg), ['http upstream failed']);
    assert.equal(read('agent-1-other.txt').trim(), 'not json');
    assert.equal(read('agent-1-metrics.txt').trim(), 'palisade_up 1');
    assert.equal((JSON.parse(read('loadgen.json')) as LoadgenResult).stalled_conns![0]!.port, 41234);
  });
});
