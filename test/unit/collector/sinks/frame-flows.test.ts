/**
 * FrameFlowReader's decisions: which flows of a frame it reads from the bytes, which it hands back
 * as their JSON (then parsed alone), and which frames it leaves to JSON.parse whole.
 */
import { strict as assert } from 'node:assert';
import { FrameFlowReader, N, S } from '../../../../collector/sinks/frame-flows';
import type { FlowRecord } from '../../../../common/flow';
import { writeFlowJson } from '../../../../agent/flows/wire';
import { realisticFlow } from '../../../bench/flow-ingest';
import { Rng } from '../../../harness/random';
import { agentFrame, generatedFlow } from './frames';

const T = Date.parse('2026-12-07T05:00:00.123Z');
const flow = (i = 0): FlowRecord => realisticFlow(i, 'node-a', T + i);
const json = (f: unknown): string => JSON.stringify(f);
const frame = (flows: string[], before = '"type":"flows","session":"s-1","seq":1,"lost":0,'): Buffer => Buffer.from(`{${before}"flows":[${flows.join(',')}]}`);

/** `b` with `marker` replaced by raw bytes. */
function withBytes(b: Buffer, marker: string, bytes: number[]): Buffer {
  const [a, c] = b.toString('latin1').split(marker);
  return Buffer.concat([Buffer.from(a!, 'latin1'), Buffer.from(bytes), Buffer.from(c!, 'latin1')]);
}

/** What `read` did with every flow of `b`: per flow, 'view' or the JSON handed back; and read's answer. */
function readAll(b: Buffer): { read: boolean; flows: Array<'view' | string> } {
  const count = (JSON.parse(b.toString('utf8')) as { flows: unknown[] }).flows.length;
  const flows: Array<'view' | string> = [];
  const read = new FrameFlowReader().read(b, 0, count, (v, start, end) => flows.push(v ? 'view' : b.toString('utf8', start, end)));
  return { read, flows };
}

describe('FrameFlowReader', () => {
  describe('read', () => {
    const cases: Array<[string, Buffer, boolean, Array<'view' | 'json'>]> = [
      ['flows as agents write them', frame([json(flow(1)), json(flow(2)), json(flow(3))]), true, ['view', 'view', 'view']],
      ['whitespace anywhere JSON allows it', Buffer.from(JSON.stringify({ type: 'flows', flows: [flow(1), flow(2)] }, null, 2).replace(/": /g, '" :\t ')), true, ['view', 'view']],
      ['other keys after the flows', Buffer.from(`{"type":"flows","flows":[${json(flow(1))}],"x":[1,{"y":"\\u00e9"}],"z":null,"n":-1.5e3,"t":true}`), true, ['view']],
      ['a string with an escape: that flow alone as JSON', frame([json(flow(1)), json({ ...flow(2), reason: 'a"b' }), json(flow(3))]), true, ['view', 'json', 'view']],
      ['a \\u escape', frame([json(flow(1)).replace('"node-a"', '"node\\u002da"')]), true, ['json']],
      ['a number with an exponent or a fraction', frame([json(flow(1)).replace(/"bytesSent":\d+/, '"bytesSent":1e3'), json(flow(2)).replace(/"durationMs":\d+/, '"durationMs":2.5')]), true, ['json', 'json']],
      ['a negative number', frame([json(flow(1)).replace(/"rule":\d+/, '"rule":-1')]), true, ['json']],
      ['a field the reader does not know', frame([json({ ...flow(1), extra: { a: [1, 2] } })]), true, ['json']],
      ['a null', frame([json({ ...flow(1), policy: null })]), true, ['json']],
      ['a required field missing', frame([json({ ...flow(1), reason: undefined })]), true, ['json']],
      ['an unknown verdict', frame([json({ ...flow(1), verdict: 'maybe' })]), true, ['json']],
      ['a trace id in capitals', frame([json({ ...flow(1), traceId: '4BF92F3577B34DA6A3CE929D0E0E4736' })]), true, ['json']],
      ['an object given twice (JSON.parse keeps the second)', frame([json(flow(1)).slice(0, -1) + ',"source":{"ip":"10.9.9.9"}}']), true, ['json']],
      ['a string of bytes that are not UTF-8', withBytes(frame([json({ ...flow(1), reason: 'RSN' })]), 'RSN', [0xff, 0xfe]), true, ['json']],
      ['non-ASCII UTF-8 as it is', frame([json({ ...flow(1), reason: 'ünïcode 😀' })]), true, ['view']],
      ['no flows', frame([]), true, []],
    ];
    for (const [name, b, read, kinds] of cases) {
      it(`${name}: ${read ? kinds.join(', ') || 'nothing' : 'JSON.parse'}`, () => {
        const got = readAll(b);
        assert.equal(got.read, read);
        assert.deepEqual(
          got.flows.map((f) => (f === 'view' ? 'view' : 'json')),
          kinds,
        );
        // a flow handed back is exactly its JSON
        const parsed = (JSON.parse(b.toString('utf8')) as { flows: unknown[] }).flows;
        got.flows.forEach((f, i) => f !== 'view' && assert.deepEqual(JSON.parse(f), parsed[i]));
      });
    }

    const whole: Array<[string, Buffer]> = [
      ['not JSON', Buffer.from('not json')],
      ['cut short', frame([json(flow(1))]).subarray(0, 100)],
      ['something after the frame', Buffer.concat([frame([json(flow(1))]), Buffer.from('x')])],
      ['a trailing comma', Buffer.from(frame([json(flow(1))]).toString().replace(']}', ',]}'))],
      ['flows twice (JSON.parse keeps the second)', Buffer.from(`{"flows":[${json(flow(1))}],"flows":[${json(flow(2))}]}`)],
      ['flows not an array', Buffer.from('{"flows":{}}')],
      ['no flows key', Buffer.from('{"type":"flows"}')],
      ['a key with an escape', Buffer.from(`{"fl\\u006fws":[${json(flow(1))}]}`)],
      ['fewer flows than asked for', frame([json(flow(1))])],
      ['a skipped value nested too deep', Buffer.from(`{"x":${'['.repeat(100)}${']'.repeat(100)},"flows":[]}`)],
    ];
    for (const [name, b] of whole) {
      it(`leaves the frame to JSON.parse: ${name}`, () => {
        const asked = name.startsWith('fewer') ? 2 : 1;
        assert.equal(new FrameFlowReader().read(b, 0, asked, () => {}), false);
      });
    }

    it('reads every kind of flow agents send, as they write them, from the bytes; only those with an escape go alone to JSON.parse', () => {
      const rng = new Rng(7);
      const flows = Array.from({ length: 3000 }, (_, i) => generatedFlow(rng, T + i));
      const b = agentFrame(flows, 1);
      const got = readAll(b);
      assert.equal(got.read, true);
      const expected = flows.map((f) => (writeFlowJson(f)!.includes('\\') ? 'json' : 'view'));
      assert.deepEqual(got.flows.map((f) => (f === 'view' ? 'view' : 'json')), expected);
      assert.ok(expected.filter((k) => k === 'view').length > flows.length / 2, 'most flows have no escape');
    });

    it('visits only flows skip … skip + count - 1, reading past the rest', () => {
      const b = frame(Array.from({ length: 6 }, (_, i) => json(flow(i))));
      const r = new FrameFlowReader();
      const sent: number[] = [];
      assert.equal(r.read(b, 2, 3, (v) => sent.push(v!.n[N.bytesSent]!)), true);
      assert.deepEqual(sent, [2, 3, 4].map((i) => flow(i).bytesSent));
    });

    it('gives each field\'s bytes and value, and the time as Date.parse does (agents\' form and others)', () => {
      const r = new FrameFlowReader();
      const times = ['2026-12-07T05:00:00.123Z', '2026-12-07T05:00:00.124Z', '2026-12-07T05:00:01.000Z', '2026-12-07T05:00:00Z', '2026-12-07T06:00:00.5+01:00', '2024-02-29T23:59:59.999Z'];
      const f = { ...flow(0), traffic: { route: 'default/web', rule: 1, backend: 'default/web-v2', attempts: 2 } };
      const b = frame(times.map((time) => json({ ...f, time })));
      const got: Array<[number, string, string, number, number]> = [];
      r.read(b, 0, times.length, (v) => {
        const s = (slot: number): string => b.toString('utf8', v!.s[2 * slot], v!.s[2 * slot + 1]);
        got.push([v!.timeMs, s(S.node), s(S.backend), v!.n[N.attempts]!, v!.n[N.mtls]!]);
      });
      assert.deepEqual(
        got,
        times.map((time) => [Date.parse(time), 'node-a', 'default/web-v2', 2, f.mtls ? 1 : 0]),
      );
    });
  });
});
