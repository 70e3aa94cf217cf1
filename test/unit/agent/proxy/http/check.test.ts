import { strict as assert } from 'node:assert';
import { checkRequest, Kind, kindOf, type ParsedRequest } from '../../../../../agent/proxy/http/check';
import { compileHeaderRules } from '../../../../../agent/proxy/http/headers';

const rules = compileHeaderRules({ 'x-forwarded-client-cert': 'By=mesh' });
const req = (method: string, url: string, httpVersion = '1.1', rawHeaders = ['Host', 'web']): ParsedRequest => ({ method, url, httpVersion, rawHeaders });

describe('checkRequest', function () {
  const refusals: Array<[string, ParsedRequest, Kind, string]> = [
    ['CONNECT', req('CONNECT', 'web:443'), Kind.Connect, 'connect-method'],
    ['HTTP/0.9', req('GET', '/', '0.9', []), Kind.Request, 'unsupported-http-version'],
    ['HTTP/2.0 on an HTTP/1 request line', req('GET', '/', '2.0'), Kind.Request, 'unsupported-http-version'],
    ['asterisk-form with GET', req('GET', '*'), Kind.Request, 'asterisk-form-not-options'],
    ['a WebSocket upgrade with POST', req('POST', '/ws', '1.1', ['Host', 'web', 'Upgrade', 'websocket']), Kind.Upgrade, 'upgrade-not-supported'],
    ['a WebSocket upgrade with a body', req('GET', '/ws', '1.1', ['Host', 'web', 'Upgrade', 'websocket', 'Content-Length', '3']), Kind.Upgrade, 'upgrade-with-body'],
    ['an h2c upgrade', req('GET', '/', '1.1', ['Host', 'web', 'Upgrade', 'h2c']), Kind.Upgrade, 'upgrade-not-supported'],
    ['an unknown expectation', req('GET', '/'), Kind.Expectation, 'unsupported-expectation'],
    ['a bad path', req('GET', '/a;b'), Kind.Request, 'path-parameter'],
    ['a duplicate Host', req('GET', '/', '1.1', ['Host', 'a', 'Host', 'b']), Kind.Request, 'duplicate-host'],
  ];
  for (const [what, r, kind, reason] of refusals) {
    it(`refuses ${what} (${reason})`, function () {
      const c = checkRequest(r, kind, rules, 100);
      assert.equal(c.ok, false);
      assert.equal(!c.ok && c.reason, reason);
    });
  }

  it('returns the normalized request and the exact forwarded form', function () {
    const c = checkRequest(req('GET', '/a/%2e%2e//b?x=%2e', '1.0', ['Host', 'Web.:8080', 'Accept', '*/*']), Kind.Request, rules, 100);
    assert.ok(c.ok);
    assert.deepEqual({ ...c.request, headers: { ...c.request.headers } }, {
      method: 'GET',
      path: '/b',
      query: '?x=%2e',
      host: 'web:8080',
      headers: { host: ['web:8080'], accept: ['*/*'] },
      httpVersion: '1.0',
    });
    assert.equal(c.target, '/b?x=%2e');
    assert.deepEqual(c.forward, ['Host', 'web:8080', 'Accept', '*/*', 'x-forwarded-client-cert', 'By=mesh']);
  });

  it('allows OPTIONS * and forwards it as *', function () {
    const c = checkRequest(req('OPTIONS', '*'), Kind.Request, rules, 100);
    assert.ok(c.ok);
    assert.equal(c.target, '*');
  });

  it('keeps the host and normalized path of a request refused after normalization, for the record', function () {
    const c = checkRequest(req('POST', '/x/../ws', '1.1', ['Host', 'web', 'Upgrade', 'websocket']), Kind.Upgrade, rules, 100);
    assert.deepEqual(c, { ok: false, reason: 'upgrade-not-supported', host: 'web', path: '/ws' });
  });
});

describe('kindOf', function () {
  const cases: Array<[string, boolean, string, string, string[], Kind]> = [
    ['a plain request', false, 'GET', '1.1', ['Host', 'web'], Kind.Request],
    ['an upgrade the parser saw', true, 'GET', '1.1', ['Connection', 'Upgrade', 'Upgrade', 'websocket'], Kind.Upgrade],
    ['CONNECT', true, 'CONNECT', '1.1', [], Kind.Connect],
    ['Expect: 100-continue', false, 'POST', '1.1', ['Expect', '100-continue'], Kind.Continue],
    ['100-continue in another case, among other expectations', false, 'POST', '1.1', ['expect', 'foo, 100-Continue'], Kind.Continue],
    ['100-continue on a second Expect line (lines are joined)', false, 'POST', '1.1', ['Expect', 'foo', 'EXPECT', '100-continue'], Kind.Continue],
    ['another expectation', false, 'GET', '1.1', ['Expect', '200-ok'], Kind.Expectation],
    ['an empty Expect', false, 'GET', '1.1', ['Expect', ''], Kind.Expectation],
    ['100-continue as part of a token is not it', false, 'POST', '1.1', ['Expect', 'x100-continue'], Kind.Expectation],
    ['Expect in HTTP/1.0 (ignored, as Node did)', false, 'POST', '1.0', ['Expect', '100-continue'], Kind.Request],
  ];
  for (const [what, upgrade, method, version, headers, kind] of cases) {
    it(`${what} → ${['request', 'continue', 'expectation', 'upgrade', 'connect'][kind]}`, function () {
      assert.equal(kindOf(upgrade, method, version, headers), kind);
    });
  }
});
