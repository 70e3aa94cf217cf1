import { strict as assert } from 'node:assert';
import { Writable } from 'node:stream';
import pino from 'pino';
import { AccessLog, ACCESS_LOG_LABEL, type AccessLogMode } from '../../../../agent/flows/access-log';
import type { FlowRecord } from '../../../../common/flow';
import { REDACT_PATHS } from '../../../../common/log';
import { httpFlow, tcpFlow } from './fixtures';

/** A root logger like the agent's, writing into an array. */
function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb): void {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, stream), lines };
}

// client (10.0.1.10) is labeled; web (10.0.2.10) and db are not.
const WORKLOADS = new Map<string, { labels: Record<string, string> }>([
  ['10.0.1.10', { labels: { app: 'client', [ACCESS_LOG_LABEL]: 'on' } }],
  ['10.0.2.10', { labels: { app: 'web' } }],
  ['10.0.2.11', { labels: { app: 'web', [ACCESS_LOG_LABEL]: 'off' } }],
]);
const workloads = { byIp: (ip: string) => WORKLOADS.get(ip) };

describe('AccessLog', function () {
  describe('record', function () {
    const inboundToUnlabeled = httpFlow(1); // destination web: not labeled
    const inboundToLabeled = httpFlow(2, { destination: { ip: '10.0.1.10', port: 8080, workload: 'client', namespace: 'default' } });
    const outboundFromLabeled = tcpFlow(3); // source client: labeled
    const egressFromUnlabeled = tcpFlow(4, { direction: 'egress', source: { ip: '10.0.2.10', port: 5000, workload: 'web', namespace: 'default' } });
    const inboundToOff = httpFlow(5, { destination: { ip: '10.0.2.11', port: 8080 } });
    const cases: Array<[AccessLogMode, string, FlowRecord, boolean]> = [
      ['labeled', 'inbound, destination labeled', inboundToLabeled, true],
      ['labeled', 'inbound, only the source labeled', inboundToUnlabeled, false],
      ['labeled', 'outbound, source labeled', outboundFromLabeled, true],
      ['labeled', 'egress, source not labeled', egressFromUnlabeled, false],
      ['labeled', 'inbound, destination labeled "off"', inboundToOff, false],
      ['all', 'inbound, nothing labeled', inboundToUnlabeled, true],
      ['all', 'egress, source not labeled', egressFromUnlabeled, true],
      ['none', 'inbound, destination labeled', inboundToLabeled, false],
      ['none', 'outbound, source labeled', outboundFromLabeled, false],
    ];
    for (const [mode, what, flow, logged] of cases) {
      it(`${mode}: ${what} → ${logged ? 'logged' : 'not logged'}`, function () {
        const { log, lines } = capture();
        new AccessLog(log, { mode, workloads }).record(flow);
        assert.equal(lines.length, logged ? 1 : 0);
      });
    }

    it('defaults to labeled', function () {
      const { log, lines } = capture();
      const a = new AccessLog(log, { workloads });
      assert.equal(a.mode, 'labeled');
      a.record(inboundToUnlabeled);
      a.record(outboundFromLabeled);
      assert.equal(lines.length, 1);
    });

    it('writes one structured line: event "flow" and the record, nothing else of the request', function () {
      const { log, lines } = capture();
      const flow = tcpFlow(9);
      new AccessLog(log, { mode: 'all' }).record(flow);
      // pino's own `time` comes first in the line; the record's, later, is the one JSON.parse keeps.
      const { level: _l, pid: _p, hostname: _h, msg, component, event, ...rest } = lines[0]!;
      assert.deepEqual({ msg, component, event }, { msg: 'flow', component: 'access', event: 'flow' });
      assert.deepEqual(rest, JSON.parse(JSON.stringify(flow)));
    });

    it('cuts the query string (which may carry a token) from the path', function () {
      const { log, lines } = capture();
      new AccessLog(log, { mode: 'all' }).record(httpFlow(1, { http: { method: 'GET', path: '/login?token=s3cr3t&key=abc', status: 401 } }));
      assert.deepEqual(lines[0]!.http, { method: 'GET', path: '/login', status: 401 });
      assert.equal(JSON.stringify(lines[0]).includes('s3cr3t'), false);
    });
  });
});
