import { strict as assert } from 'node:assert';
import { FlowFanOut } from '../../../../agent/flows/fan-out';
import type { FlowRecord, FlowSink } from '../../../../common/flow';
import { silentLogger } from '../../../../common/log';
import { tcpFlow } from './fixtures';

describe('FlowFanOut', function () {
  describe('record', function () {
    it('hands the same record to every sink, in order, skipping absent ones', function () {
      const seen: Array<[string, FlowRecord]> = [];
      const sink = (name: string): FlowSink => ({ record: (f) => void seen.push([name, f]) });
      const flow = tcpFlow(1);
      new FlowFanOut([sink('a'), undefined, sink('b')], silentLogger()).record(flow);
      assert.deepEqual(
        seen.map(([n]) => n),
        ['a', 'b'],
      );
      assert.ok(seen.every(([, f]) => f === flow));
    });

    it('keeps a throwing sink from the others and from the caller', function () {
      let got = 0;
      const fan = new FlowFanOut(
        [
          {
            record: () => {
              throw new Error('boom');
            },
          },
          { record: () => void got++ },
        ],
        silentLogger(),
      );
      assert.doesNotThrow(() => {
        fan.record(tcpFlow(1));
        fan.record(tcpFlow(2));
      });
      assert.equal(got, 2);
    });
  });
});
