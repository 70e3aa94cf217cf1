import { strict as assert } from 'node:assert';
import { compileHeaderRules, inspectHeaders, relayedResponseHeaders, type InspectedHeaders } from '../../../../../agent/proxy/http/headers';
import { parserErrorReason, rawResponse, statusOf } from '../../../../../agent/proxy/http/refusal';

const rules = compileHeaderRules({ 'x-forwarded-client-cert': 'By=spiffe://mesh/web' }, ['x-palisade-*', 'x-internal']);

function inspect(raw: string[], method = 'GET', version = '1.1', upgrade = false): ReturnType<typeof inspectHeaders> {
  return inspectHeaders(raw, method, version, rules, 100, upgrade);
}

function accepted(raw: string[], method = 'GET', version = '1.1', upgrade = false): InspectedHeaders {
  const r = inspect(raw, method, version, upgrade);
  assert.ok(r.ok, `refused: ${JSON.stringify(r)}`);
  return r;
}

describe('inspectHeaders', function () {
  const refusals: Array<[string, string[], string, string?]> = [
    ['no Host', ['Accept', '*/*'], 'missing-host'],
    ['no Host on HTTP/1.0', ['Accept', '*/*'], 'missing-host', '1.0'],
    ['two Host lines', ['Host', 'web', 'Host', 'admin'], 'duplicate-host'],
    ['two Host lines of equal value', ['Host', 'web', 'host', 'web'], 'duplicate-host'],
    ['an invalid Host', ['Host', 'web/admin'], 'invalid-host'],
    ['two Content-Length lines of equal value', ['Host', 'web', 'Content-Length', '5', 'Content-Length', '5'], 'duplicate-content-length'],
    ['a Content-Length list', ['Host', 'web', 'Content-Length', '5, 5'], 'invalid-content-length'],
    ['a signed Content-Length', ['Host', 'web', 'Content-Length', '+5'], 'invalid-content-length'],
    ['Content-Length with Transfer-Encoding', ['Host', 'web', 'Content-Length', '5', 'Transfer-Encoding', 'chunked'], 'content-length-with-transfer-encoding'],
    ['Transfer-Encoding with Content-Length', ['Host', 'web', 'Transfer-Encoding', 'chunked', 'Content-Length', '5'], 'content-length-with-transfer-encoding'],
    ['Transfer-Encoding: gzip, chunked', ['Host', 'web', 'Transfer-Encoding', 'gzip, chunked'], 'invalid-transfer-encoding'],
    ['Transfer-Encoding: chunked, identity', ['Host', 'web', 'Transfer-Encoding', 'chunked, identity'], 'invalid-transfer-encoding'],
    ['Transfer-Encoding: xchunked', ['Host', 'web', 'Transfer-Encoding', 'xchunked'], 'invalid-transfer-encoding'],
    ['two Transfer-Encoding lines', ['Host', 'web', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'], 'invalid-transfer-encoding'],
    ['Transfer-Encoding on HTTP/1.0', ['Host', 'web', 'Transfer-Encoding', 'chunked'], 'transfer-encoding-in-http10', '1.0'],
  ];
  for (const [what, raw, reason, version] of refusals) {
    it(`refuses ${what} (${reason})`, () => assert.deepEqual(inspect(raw, 'POST', version ?? '1.1'), { ok: false, reason }));
  }

  it('refuses more header lines than the limit (431), never truncating', function () {
    const raw = ['Host', 'web'];
    for (let i = 0; i < 100; i++) raw.push(`x-h${i}`, 'v');
    assert.deepEqual(inspectHeaders(raw, 'GET', '1.1', rules, 100, false), { ok: false, reason: 'too-many-headers' });
    assert.ok(inspectHeaders(raw.slice(0, -2), 'GET', '1.1', rules, 100, false).ok);
  });

  it('normalizes Host and puts it first', function () {
    const r = accepted(['Accept', '*/*', 'HOST', 'Web.Default.:8080']);
    assert.equal(r.host, 'web.default:8080');
    assert.deepEqual(r.forward.slice(0, 2), ['Host', 'web.default:8080']);
    assert.deepEqual(r.headers.host, ['web.default:8080']);
  });

  it('keeps every value of a repeated header, in order', function () {
    const r = accepted(['Host', 'web', 'X-A', '1', 'x-a', '2', 'Cookie', 'a=1', 'Cookie', 'b=2']);
    assert.deepEqual(r.headers['x-a'], ['1', '2']);
    assert.deepEqual(r.headers.cookie, ['a=1', 'b=2']);
    assert.deepEqual(r.forward, ['Host', 'web', 'X-A', '1', 'x-a', '2', 'Cookie', 'a=1', 'Cookie', 'b=2', 'x-forwarded-client-cert', 'By=spiffe://mesh/web']);
  });

  it('removes client identity headers, underscore spellings and stripHeaders prefixes, then adds the mesh headers', function () {
    const r = accepted([
      'Host', 'web',
      'X-Forwarded-Client-Cert', 'By=evil',
      'x-forwarded-client_cert', 'By=evil2',
      'X-Palisade-Source', 'evil',
      'X_Palisade_Identity', 'evil',
      'X-Internal', 'evil',
      'X-Internals', 'kept',
    ]);
    assert.equal(r.headers['x-forwarded-client-cert'], undefined);
    assert.equal(r.headers['x-palisade-source'], undefined);
    assert.deepEqual(r.headers['x-internals'], ['kept']);
    assert.deepEqual(r.forward, ['Host', 'web', 'X-Internals', 'kept', 'x-forwarded-client-cert', 'By=spiffe://mesh/web']);
  });

  it('drops hop-by-hop headers and those Connection names, but never framing or Host', function () {
    const r = accepted([
      'Host', 'web',
      'Connection', 'keep-alive, X-Secret, content-length, host',
      'Keep-Alive', 'timeout=5',
      'Proxy-Authorization', 'Basic x',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Trailer', 'X-T',
      'Upgrade', 'h2c',
      'HTTP2-Settings', 'AAA',
      'Expect', '100-continue',
      'X-Secret', 's',
      'Content-Length', '3',
      'X-Kept', 'k',
    ], 'POST');
    assert.deepEqual(r.forward, ['Host', 'web', 'X-Kept', 'k', 'Content-Length', '3', 'x-forwarded-client-cert', 'By=spiffe://mesh/web']);
    assert.deepEqual(Object.keys(r.headers).sort(), ['content-length', 'host', 'x-kept']);
  });

  it('forwards chunked framing as chunked, Content-Length as its number', function () {
    const c = accepted(['Host', 'web', 'Transfer-Encoding', 'Chunked'], 'POST');
    assert.equal(c.chunked, true);
    assert.deepEqual(c.forward.slice(2, 4), ['Transfer-Encoding', 'chunked']);
    const l = accepted(['Host', 'web', 'Content-Length', '007'], 'POST');
    assert.equal(l.contentLength, 7);
    assert.deepEqual(l.forward.slice(2, 4), ['Content-Length', '7']);
  });

  it('gives a body-less POST an explicit Content-Length: 0, and a GET none', function () {
    assert.deepEqual(accepted(['Host', 'web'], 'POST').forward.slice(2, 4), ['Content-Length', '0']);
    assert.ok(!accepted(['Host', 'web'], 'GET').forward.includes('Content-Length'));
  });

  it('forwards the Connection/Upgrade pair of a WebSocket upgrade only', function () {
    const raw = ['Host', 'web', 'Connection', 'Upgrade', 'Upgrade', 'WebSocket', 'Sec-WebSocket-Key', 'k'];
    const r = accepted(raw, 'GET', '1.1', true);
    assert.deepEqual(r.forward, ['Host', 'web', 'Sec-WebSocket-Key', 'k', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'x-forwarded-client-cert', 'By=spiffe://mesh/web']);
    assert.deepEqual(inspect(['Host', 'web', 'Connection', 'Upgrade', 'Upgrade', 'h2c'], 'GET', '1.1', true), { ok: false, reason: 'upgrade-not-supported' });
    assert.deepEqual(inspect(['Host', 'web', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Upgrade', 'websocket'], 'GET', '1.1', true), {
      ok: false,
      reason: 'upgrade-not-supported',
    });
  });

  it('keeps a __proto__ header as data', function () {
    const r = accepted(['Host', 'web', '__proto__', 'x']);
    assert.deepEqual(r.headers['__proto__'], ['x']);
    assert.equal(Object.getPrototypeOf(r.headers), null);
  });
});

describe('compileHeaderRules', function () {
  it('refuses a bare "*" strip rule', () => assert.throws(() => compileHeaderRules({}, ['*']), RangeError));
  it('refuses a setHeaders value with CR/LF', () => assert.throws(() => compileHeaderRules({ 'x-a': 'a\r\nb: c' }), RangeError));
  it('refuses an invalid setHeaders name', () => assert.throws(() => compileHeaderRules({ 'x a': 'b' }), RangeError));
});

describe('relayedResponseHeaders', function () {
  it('drops hop-by-hop response headers and those Connection names', function () {
    const raw = ['Content-Type', 'text/plain', 'Connection', 'close, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'];
    assert.deepEqual(relayedResponseHeaders(raw, false), ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  });
  it('keeps Connection and Upgrade of a 101', function () {
    assert.deepEqual(relayedResponseHeaders(['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Accept', 'x'], true), [
      'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Accept', 'x',
    ]);
  });
});

describe('refusal', function () {
  const table: Array<[{ code: string; reason: string }, string, number]> = [
    [{ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: "Transfer-Encoding can't be present with Content-Length" }, 'content-length-with-transfer-encoding', 400],
    [{ code: 'HPE_INVALID_CONTENT_LENGTH', reason: "Content-Length can't be present with Transfer-Encoding" }, 'content-length-with-transfer-encoding', 400],
    [{ code: 'HPE_UNEXPECTED_CONTENT_LENGTH', reason: 'Duplicate Content-Length' }, 'duplicate-content-length', 400],
    [{ code: 'HPE_INVALID_CONTENT_LENGTH', reason: 'Invalid character in Content-Length' }, 'invalid-content-length', 400],
    [{ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: 'Invalid `Transfer-Encoding` header value' }, 'invalid-transfer-encoding', 400],
    [{ code: 'HPE_HEADER_OVERFLOW', reason: 'Header overflow' }, 'headers-too-large', 431],
    [{ code: 'HPE_INVALID_VERSION', reason: 'Invalid HTTP version' }, 'unsupported-http-version', 505],
    [{ code: 'HPE_INVALID_VERSION', reason: 'Expected CRLF after version' }, 'malformed-request', 400],
    [{ code: 'HPE_PAUSED_H2_UPGRADE', reason: 'Pause on PRI/Upgrade' }, 'http2-preface', 505],
    [{ code: 'HPE_INVALID_HEADER_TOKEN', reason: 'Unexpected whitespace after header value' }, 'obs-fold', 400],
    [{ code: 'HPE_INVALID_HEADER_TOKEN', reason: 'Invalid header field char' }, 'invalid-header', 400],
    [{ code: 'HPE_INVALID_CHUNK_SIZE', reason: 'Invalid character in chunk size' }, 'invalid-chunked-body', 400],
    [{ code: 'HPE_STRICT', reason: 'Expected LF after chunk data' }, 'invalid-chunked-body', 400],
    [{ code: 'HPE_INVALID_METHOD', reason: 'Invalid method encountered' }, 'invalid-method', 400],
    [{ code: 'HPE_CHUNK_EXTENSIONS_OVERFLOW', reason: 'Chunk extensions overflow' }, 'chunk-extensions-too-large', 413],
    [{ code: 'HPE_SOMETHING_NEW', reason: '?' }, 'malformed-request', 400],
  ];
  for (const [err, reason, status] of table) {
    it(`maps ${err.code} "${err.reason}" to ${reason} (${status})`, function () {
      assert.equal(parserErrorReason(err), reason);
      assert.equal(statusOf(reason), status);
    });
  }
  it('writes a complete close-delimited response with a generic body', function () {
    assert.equal(
      rawResponse(431).toString(),
      'HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\ncontent-length: 31\r\nconnection: close\r\n\r\nRequest Header Fields Too Large',
    );
  });
});
