import { strict as assert } from 'node:assert';
import { parseSinkSpec, parseSinkSpecs, sinkName } from '../../../../collector/sinks/sink-spec';

describe('parseSinkSpec', () => {
  const good: Array<[string, string, string]> = [
    ['sqlite', 'sqlite', 'sqlite'],
    ['otlp=http://otel:4318', 'http://otel:4318/v1/logs', 'otlp:otel:4318'],
    ['otlp=https://otel.example/v1/logs', 'https://otel.example/v1/logs', 'otlp:otel.example'],
    ['otlp=http://10.0.0.1:4318/custom/path', 'http://10.0.0.1:4318/custom/path', 'otlp:10.0.0.1:4318'],
  ];
  for (const [text, url, name] of good) {
    it(`takes ${text}`, () => {
      const s = parseSinkSpec(text);
      assert.equal(s.kind === 'otlp' ? s.url.href : s.kind, url);
      assert.equal(sinkName(s), name);
    });
  }
  const bad: Array<[string, RegExp]> = [
    ['kafka=broker:9092', /expected sqlite or otlp=/],
    ['otlp', /not a URL/],
    ['otlp=otel:4318', /is not http: or https:/],
    ['otlp=ftp://otel/', /"ftp:" is not http: or https:/],
    ['otlp=http://user:secret@otel:4318', /must not carry credentials/],
    ['otlp=http://otel:4318/#x', /#fragment/],
  ];
  for (const [text, message] of bad) {
    it(`refuses ${text} in one line that does not echo secrets`, () => {
      assert.throws(() => parseSinkSpec(text), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'PALISADE_ERR_INVALID_ARGUMENT');
        assert.match(e.message, message);
        assert.doesNotMatch(e.message, /secret|\n/);
        return true;
      });
    });
  }
  it('refuses the same receiver twice', () => {
    assert.throws(() => parseSinkSpecs(['otlp=http://otel:4318', 'otlp=http://otel:4318/v1/logs']), /given twice/);
    assert.equal(parseSinkSpecs(['sqlite', 'otlp=http://a:1', 'otlp=http://b:1']).length, 3);
  });
});
