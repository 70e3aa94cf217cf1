/**
 * The data-plane bench's report (test/bench/data-plane/report.ts): a run in which nothing was
 * answered — connections accepted and never served, which the load generator counts as no error —
 * is called out in the failed row instead of reading "0".
 */
import { strict as assert } from 'node:assert';
import type { LoadgenResult, Workload } from '../../bench/data-plane/loadgen';
import { dropsBetween, renderTable, silent, summarize, type Sample } from '../../bench/data-plane/report';

const workload: Workload = { id: 'conn16', title: 'no keep-alive, 16 concurrent', short: 'no keep-alive, 16 at once', mode: 'conn', conns: 16, path: '/bench/1k', warmupS: 0.5, durationS: 3 };

function result(answered: number): LoadgenResult {
  return {
    mode: 'conn', conns: 16, target_rate: 0, duration_s: 3, requests: answered, ok: answered,
    status: { '2xx': answered, '3xx': 0, '4xx': 0, '5xx': 0, other: 0 },
    errors: 0, timeouts: 0, connect_errors: 0, reconnects: 0, rps: answered / 3, body_bytes: answered * 1024, gbit_s: 0,
    latency_us: { p50: 1000, p90: 1000, p99: 1000, p999: 1000, max: 1000, mean: 1000 },
    send_lag_us: { p50: 0, p99: 0, max: 0 },
    cpu_usec: [0, 0, 0, 0],
  } as LoadgenResult;
}

const sample = (path: Sample['path'], answered: number): Sample => ({ round: 1, workload: 'conn16', path, result: result(answered), proxyCpuUsec: 0, collectorCpuUsec: 0, rssAfterMb: {} });

describe('data-plane bench report: silent runs', () => {
  it('a run that answered nothing is silent; one that answered something is not', () => {
    assert.equal(silent(result(0)), true);
    assert.equal(silent(result(1)), false);
  });

  it('the failed row names the silent runs of a path, and leaves the others as counts', () => {
    const summary = summarize([sample('direct', 4000), sample('palisade-l4', 3000), sample('palisade-l7', 0), sample('haproxy', 0), sample('haproxy', 0)], [workload], {});
    assert.equal(summary.errors['palisade-l7']?.silentRuns, 1);
    assert.equal(summary.errors.haproxy?.silentRuns, 2);
    assert.equal(summary.errors['palisade-l4']?.silentRuns, 0);
    const row = renderTable(summary, []).split('\n').find((l) => l.startsWith('failed requests'));
    assert.ok(row, 'a failed row');
    assert.match(row, /0 \+ 1 run\(s\) silent/);
    assert.match(row, /0 \+ 2 run\(s\) silent/);
  });

  it('the failed row adds the requests left stalled at the end, which no other count sees', () => {
    const stuck: Sample = { ...sample('haproxy', 0), result: { ...result(0), stalled: 16 } };
    const summary = summarize([sample('direct', 4000), { ...sample('palisade-l4', 3000), result: { ...result(3000), stalled: 0 } }, stuck], [workload], {});
    assert.equal(summary.errors.haproxy?.stalled, 16);
    const row = renderTable(summary, []).split('\n').find((l) => l.startsWith('failed requests'));
    assert.ok(row, 'a failed row');
    assert.match(row, /0 \+ 16 stalled \+ 1 run\(s\) silent/);
    assert.doesNotMatch(row.replace(/0 \+ 16 stalled/, ''), /stalled \+|\+ 0 stalled/);
  });
});

describe('data-plane bench report: packets the pod filters dropped', () => {
  it('counts only what moved during the run', () => {
    assert.deepEqual(dropsBetween({ 'proxy-port from-pod': 3, 'ipv6 to-pod': 1 }, { 'proxy-port from-pod': 232, 'ipv6 to-pod': 1, 'tcp-no-connection from-pod': 4 }), {
      'proxy-port from-pod': 229,
      'tcp-no-connection from-pod': 4,
    });
    assert.deepEqual(dropsBetween({ 'proxy-port from-pod': 3 }, { 'proxy-port from-pod': 3 }), {});
  });

  it('a run with drops is named under the table, most first; without any, no warning', () => {
    const hit: Sample = { ...sample('haproxy', 0), filterDrops: { 'tcp-no-connection from-pod': 4, 'proxy-port from-pod': 229 } };
    const text = renderTable(summarize([sample('direct', 4000), { ...sample('palisade-l4', 3000), filterDrops: {} }, hit], [workload], {}), []);
    assert.match(text, /WARNING: the pod filters dropped packets/);
    assert.match(text, /round 1 conn16 haproxy: 229 proxy-port from-pod, 4 tcp-no-connection from-pod/);
    assert.doesNotMatch(text, /palisade-l4: /);
    assert.doesNotMatch(renderTable(summarize([sample('direct', 4000)], [workload], {}), []), /WARNING/);
  });
});
