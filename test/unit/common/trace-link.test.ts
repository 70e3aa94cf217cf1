import { strict as assert } from 'node:assert';
import { parseTraceUrl, traceLink } from '../../../common/trace-link';

const ID = '4bf92f3577b34da6a3ce929d0e0e4736';

describe('parseTraceUrl', () => {
  const good = [
    'https://jaeger.example/trace/{traceId}',
    'http://localhost:16686/trace/{traceId}?uiFind={traceId}',
    'https://grafana.example/explore?left={"datasource":"tempo","queries":[{"query":"{traceId}"}]}',
  ];
  for (const text of good) it(`takes ${text}`, () => assert.equal(parseTraceUrl(text), text));

  const bad: Array<[string, RegExp]> = [
    ['https://jaeger.example/trace/', /must contain \{traceId\}/],
    ['jaeger.example/trace/{traceId}', /not a URL/],
    ['javascript:alert(1)//{traceId}', /"javascript:" is not http: or https:/],
    ['https://user:secret@jaeger.example/trace/{traceId}', /must not carry credentials/],
    [`https://jaeger.example/${'x'.repeat(2100)}/{traceId}`, /longer than 2048/],
  ];
  for (const [text, message] of bad) {
    it(`refuses ${text.slice(0, 60)} in one line that does not echo it`, () => {
      assert.throws(() => parseTraceUrl(text), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'PALISADE_ERR_INVALID_ARGUMENT');
        assert.match(e.message, message);
        assert.doesNotMatch(e.message, /secret|alert|\n/);
        return true;
      });
    });
  }
});

describe('traceLink', () => {
  const table: Array<[string | undefined, string | undefined, string | undefined]> = [
    ['https://jaeger.example/trace/{traceId}', ID, `https://jaeger.example/trace/${ID}`],
    ['http://j:16686/trace/{traceId}?uiFind={traceId}', ID, `http://j:16686/trace/${ID}?uiFind=${ID}`],
    [undefined, ID, undefined],
    ['https://jaeger.example/trace/{traceId}', undefined, undefined],
    ['https://jaeger.example/trace/{traceId}', '00000000000000000000000000000000', undefined],
    ['https://jaeger.example/trace/{traceId}', `${ID}"><script>`, undefined],
    ['https://jaeger.example/trace/{traceId}', ID.toUpperCase(), undefined],
  ];
  for (const [template, id, want] of table) {
    it(`${template ?? 'no template'} + ${String(id).slice(0, 40)} → ${want ?? 'no link'}`, () => assert.equal(traceLink(template, id), want));
  }
});
