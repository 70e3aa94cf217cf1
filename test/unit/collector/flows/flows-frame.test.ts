import { strict as assert } from 'node:assert';
import { countRecords, flowsEnvelope, FlowsFrameRefusal, readFlowsFrame } from '../../../../collector/flows/flows-frame';
import { encodeMessage, parseMessage } from '../../../../common/mesh-protocol';
import { realisticFlow } from '../../../bench/flow-ingest';

const T0 = Date.parse('2026-12-01T10:00:00Z');
const flows = (n: number, node = 'node-a') => Array.from({ length: n }, (_, i) => realisticFlow(i, node, T0 + i));
const frame = (text: string): Buffer => Buffer.from(text);
const agentFrame = (n: number, node = 'node-a'): Buffer => frame(encodeMessage({ type: 'flows', session: 's-1', seq: 7, lost: 2, flows: flows(n, node) }));

describe('flows-frame', () => {
  describe('flowsEnvelope', () => {
    const table: Array<[string, string, { session: string; seq: number; lost: number } | undefined]> = [
      ['an agent frame', '{"type":"flows","session":"a.b_c-1","seq":12,"lost":0,"flows":[]}', { session: 'a.b_c-1', seq: 12, lost: 0 }],
      ['another type', '{"type":"csr","session":"a","seq":1,"lost":0,"flows":[]}', undefined],
      ['whitespace: parsed whole instead', '{ "type":"flows","session":"a","seq":1,"lost":0,"flows":[]}', undefined],
      ['another key order', '{"type":"flows","seq":1,"session":"a","lost":0,"flows":[]}', undefined],
      ['a session id with an escape', '{"type":"flows","session":"a\\"b","seq":1,"lost":0,"flows":[]}', undefined],
      ['a session id over 64 characters', `{"type":"flows","session":"${'a'.repeat(65)}","seq":1,"lost":0,"flows":[]}`, undefined],
      ['a seq past 2^53', '{"type":"flows","session":"a","seq":9007199254740993,"lost":0,"flows":[]}', undefined],
      ['a negative lost', '{"type":"flows","session":"a","seq":1,"lost":-1,"flows":[]}', undefined],
      ['not JSON at all', 'flows', undefined],
    ];
    for (const [what, text, want] of table) it(what, () => assert.deepEqual(flowsEnvelope(frame(text)), want));
    it('reads what the agent sends (encodeMessage)', () => assert.deepEqual(flowsEnvelope(agentFrame(3)), { session: 's-1', seq: 7, lost: 2 }));
  });

  describe('countRecords', () => {
    for (const n of [0, 1, 500]) it(`counts ${n} records of an agent frame`, () => assert.equal(countRecords(agentFrame(n)), n));
    it('does not count a "time": inside a string (its quotes are escaped there)', () => {
      const f = flows(2);
      f[0]!.http = { method: 'GET', path: '/x?"time":1', status: 200 };
      const b = frame(encodeMessage({ type: 'flows', session: 's', seq: 1, lost: 0, flows: f }));
      assert.equal(countRecords(b), 2);
      assert.equal(countRecords(new Uint8Array(b)), 2);
    });
  });

  describe('readFlowsFrame', () => {
    it('answers the message of a valid frame', () => {
      const m = readFlowsFrame(agentFrame(3), { session: 's-1', seq: 7, lost: 2 }, 'node-a');
      assert.equal(m.flows.length, 3);
      assert.deepEqual(m.flows[0], flows(1)[0]);
    });
    const refused: Array<[string, Buffer, RegExp, boolean]> = [
      ['a record of another node', agentFrame(2, 'node-b'), /flows\[0\] names node "node-b", but this session is node node-a/, true],
      ['a record that is not a flow', frame('{"type":"flows","session":"s-1","seq":7,"lost":2,"flows":[{"time":"x"}]}'), /^flows\.flows\[0\]: /, false],
      ['a second seq, after the records', frame('{"type":"flows","session":"s-1","seq":7,"lost":2,"flows":[],"seq":8}'), /names its session, seq or lost twice/, false],
      ['a second type', frame('{"type":"flows","session":"s-1","seq":7,"lost":2,"flows":[],"type":"csr"}'), /message type "csr" is not allowed here/, false],
      ['a broken frame', frame('{"type":"flows","session":"s-1","seq":7,"lost":2,"flows":[{'), /frame is not JSON/, false],
    ];
    it('refuses a frame whose records hide from the count that charged it ("time" : with spaces: 0 counted, 3 records)', () => {
      const hidden = frame(agentFrame(3).toString().replaceAll('"time":', '"time" : '));
      assert.equal(countRecords(hidden), 0);
      assert.equal(readFlowsFrame(hidden, { session: 's-1', seq: 7, lost: 2 }, 'node-a').flows.length, 3, 'valid JSON and valid flows');
      assert.throws(
        () => readFlowsFrame(hidden, { session: 's-1', seq: 7, lost: 2 }, 'node-a', countRecords(hidden)),
        (err: unknown) => err instanceof FlowsFrameRefusal && /3 records written otherwise than an agent writes them \(0 counted\)/.test(err.message),
      );
      assert.equal(readFlowsFrame(agentFrame(3), { session: 's-1', seq: 7, lost: 2 }, 'node-a', 3).flows.length, 3, 'an agent frame: counted as it holds');
    });
    describe('reads a frame as parseMessage reads it whole (records parsed a piece at a time)', () => {
      const envelope = { session: 's-1', seq: 7, lost: 2 };
      const text = (n: number): string => agentFrame(n).toString();
      const big = flows(3);
      big[1]!.http = { method: 'GET', path: `/${'p'.repeat(8000)},{"time":"x"}`, status: 200 };
      const nested = text(2).replace('"rule":0', '"rule":0,"extra":[1,{"time":"2026-12-01T10:00:00Z"}]');
      const table: Array<[string, string]> = [
        ['500 records (several pieces)', text(500)],
        ['no records', text(0)],
        ['one record', text(1)],
        ['a record with a path that holds `,{"time":` and 8 KB', encodeMessage({ type: 'flows', session: 's-1', seq: 7, lost: 2, flows: big })],
        ['a record holding `,{"time":` in an unknown field', nested],
        ['a record of 40 KB then more records (a piece cut inside)', nested.replace('"extra":[1,', `"extra":[${'1,'.repeat(20_000)}`)],
        ['whitespace between records', text(3).replaceAll(',{"time":', ', {"time":')],
        ['whitespace after the frame', `${text(2)} `],
        ['a leading zero in seq', text(2).replace('"seq":7', '"seq":07')],
        ['an empty record before the first', text(2).replace('"flows":[', '"flows":[,')],
        ['a trailing comma', text(2).replace(/\]\}$/, ',]}')],
        ['a record that is a number', text(2).replace('"flows":[', '"flows":[1,')],
        ['a second flows key', text(2).replace(/\]\}$/, '],"flows":[]}')],
        ['1001 records', text(1001)],
      ];
      for (const [what, t] of table) {
        it(what, () => {
          const f = frame(t);
          let whole: unknown;
          try {
            whole = parseMessage(f, ['flows']);
          } catch (err) {
            whole = (err as Error).message;
          }
          let pieces: unknown;
          try {
            pieces = readFlowsFrame(f, envelope, 'node-a');
          } catch (err) {
            pieces = (err as Error).message;
          }
          assert.deepEqual(pieces, whole);
        });
      }
    });
    for (const [what, f, message, wrongNode] of refused) {
      it(`refuses ${what} (one line, PALISADE_ERR_PROTOCOL)`, () => {
        assert.throws(
          () => readFlowsFrame(f, { session: 's-1', seq: 7, lost: 2 }, 'node-a'),
          (err: unknown) => err instanceof FlowsFrameRefusal && err.code === 'PALISADE_ERR_PROTOCOL' && message.test(err.message) && err.wrongNode === wrongNode && !err.message.includes('\n'),
        );
      });
    }
  });
});
