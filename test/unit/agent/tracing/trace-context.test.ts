import { strict as assert } from 'node:assert';
import { beginHop, upstreamHeaders, withTraceHeaders, type TraceHop } from '../../../../agent/tracing/trace-context';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';
const ids = (): { span(): string; trace(): string } => {
  let n = 0;
  return { span: () => `${++n}`.padStart(16, 'a'), trace: () => 'f'.repeat(32) };
};
const h = (o: Record<string, string>): Record<string, string[]> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, [v]]));

describe('beginHop', () => {
  const cases: Array<[string, Record<string, string>, number, number, Partial<TraceHop>]> = [
    ['a sampled W3C parent', { traceparent: `00-${T}-${P}-01` }, 0, 1, { traceId: T, parentSpanId: P, sampled: true }],
    ['an unsampled W3C parent (whatever the draw)', { traceparent: `00-${T}-${P}-00` }, 1, 0, { traceId: T, parentSpanId: P, sampled: false }],
    ['tracestate kept', { traceparent: `00-${T}-${P}-01`, tracestate: 'a=1,b=2' }, 0, 1, { parentSpanId: P, traceState: 'a=1,b=2' }],
    ['B3 multi', { 'x-b3-traceid': T, 'x-b3-spanid': P, 'x-b3-sampled': '1' }, 0, 1, { traceId: T, parentSpanId: P, sampled: true, b3: 'multi' }],
    ['B3 single', { b3: `${T}-${P}-1` }, 0, 1, { traceId: T, parentSpanId: P, sampled: true, b3: 'single' }],
    ['B3 single, not sampled', { b3: `${T}-${P}-0` }, 1, 0, { parentSpanId: P, sampled: false, b3: 'single' }],
    ['W3C wins over B3, B3 form remembered', { traceparent: `00-${T}-${P}-01`, b3: `${'1'.repeat(32)}-${'2'.repeat(16)}-0` }, 0, 1, { traceId: T, parentSpanId: P, sampled: true, b3: 'single' }],
    ['no context, draw under the rate: a new sampled trace', {}, 0.01, 0.005, { traceId: 'f'.repeat(32), sampled: true }],
    ['no context, draw over the rate: new, not sampled', {}, 0.01, 0.5, { traceId: 'f'.repeat(32), sampled: false }],
    ['a malformed traceparent is no context', { traceparent: `00-${T}-${P}` }, 0, 1, { traceId: 'f'.repeat(32), sampled: false }],
    ['an all-zero trace id is no context', { traceparent: `00-${'0'.repeat(32)}-${P}-01` }, 0, 1, { traceId: 'f'.repeat(32), sampled: false }],
  ];
  for (const [what, headers, rate, draw, want] of cases) {
    it(what, () => {
      const hop = beginHop(h(headers), rate, () => draw, ids());
      for (const [k, v] of Object.entries(want)) assert.deepEqual(hop[k as keyof TraceHop], v, k);
      assert.equal(hop.serverSpanId, 'aaaaaaaaaaaaaaa1');
      assert.equal(hop.clientSpanId, 'aaaaaaaaaaaaaaa2');
      if (!('parentSpanId' in want)) assert.equal(hop.parentSpanId, undefined);
    });
  }
});

describe('upstreamHeaders and withTraceHeaders', () => {
  const hop: TraceHop = { traceId: T, parentSpanId: P, serverSpanId: '1'.repeat(16), clientSpanId: '2'.repeat(16), sampled: true };
  it('names the client span in traceparent, with the sampled flag', () => {
    assert.deepEqual(upstreamHeaders(hop), [['traceparent', `00-${T}-${'2'.repeat(16)}-01`]]);
    assert.deepEqual(upstreamHeaders({ ...hop, sampled: false }), [['traceparent', `00-${T}-${'2'.repeat(16)}-00`]]);
  });
  it('adds tracestate and B3 in the client\'s form', () => {
    assert.deepEqual(Object.fromEntries(upstreamHeaders({ ...hop, traceState: 'a=1', b3: 'single' })), {
      traceparent: `00-${T}-${'2'.repeat(16)}-01`,
      tracestate: 'a=1',
      b3: `${T}-${'2'.repeat(16)}-1`,
    });
    assert.deepEqual(Object.fromEntries(upstreamHeaders({ ...hop, b3: 'multi' })), {
      traceparent: `00-${T}-${'2'.repeat(16)}-01`,
      'x-b3-traceid': T,
      'x-b3-spanid': '2'.repeat(16),
      'x-b3-sampled': '1',
    });
  });
  it('replaces every trace header the client sent, any case, and keeps the rest in order', () => {
    const lines = ['Host', 'web', 'TraceParent', 'x', 'X-B3-TraceId', 'y', 'X-B3-ParentSpanId', 'z', 'tracestate', 's', 'B3', 'q', 'Accept', '*/*'];
    assert.deepEqual(withTraceHeaders(lines, hop), ['Host', 'web', 'Accept', '*/*', 'traceparent', `00-${T}-${'2'.repeat(16)}-01`]);
  });
});
