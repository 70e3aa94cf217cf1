import { strict as assert } from 'node:assert';
import { flowRecord, isoTime } from '../../../common/flow';
import { Rng } from '../../harness/random';

describe('common/flow', function () {
  describe('isoTime', function () {
    it('is new Date(ms).toISOString() for times from 1970 to 9999, across second boundaries', function () {
      const rng = new Rng(4);
      const max = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
      const times = [0, 1, 999, 1000, 1001, 59_999, 60_000, Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(2024, 2, 1), max];
      for (let i = 0; i < 20_000; i++) times.push(rng.int(max));
      for (let i = 0; i < 5_000; i++) times.push(1_700_000_000_000 + i * 7); // many in one second, in order
      for (const t of times) assert.equal(isoTime(t), new Date(t).toISOString(), String(t));
    });

    it('is the time flowRecord stamps', function () {
      const before = Date.now();
      const t = Date.parse(flowRecord({ node: 'n', direction: 'inbound', source: { ip: '1.1.1.1' }, destination: { ip: '2.2.2.2' }, protocol: 'tcp', verdict: 'allowed', reason: 'r', mtls: true, bytesSent: 0, bytesReceived: 0, durationMs: 0 }).time);
      assert.ok(t >= before && t <= Date.now());
    });
  });
});
