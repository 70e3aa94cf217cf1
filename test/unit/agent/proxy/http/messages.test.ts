import { strict as assert } from 'node:assert';
import { declaresBody, ownResponse, planResponse, relayedHead, requestHead, type ResponseFraming } from '../../../../../agent/proxy/http/messages';

describe('messages', function () {
  describe('requestHead', function () {
    it('writes the request line and lines as given, then Connection: keep-alive, as Node\'s ClientRequest did', function () {
      assert.equal(requestHead('GET', '/a?b', ['Host', 'web', 'X-A', 'caf\u00e9']).toString('latin1'), 'GET /a?b HTTP/1.1\r\nHost: web\r\nX-A: caf\u00e9\r\nConnection: keep-alive\r\n\r\n');
    });
    it('keeps every byte of a value as latin1', function () {
      assert.ok(requestHead('GET', '/', ['X', '\u00ff']).includes(Buffer.from([0x58, 0x3a, 0x20, 0xff, 0x0d, 0x0a])));
    });
    it('adds no Connection line when the lines carry one (an upgrade)', function () {
      assert.equal(requestHead('GET', '/ws', ['Host', 'web', 'Connection', 'Upgrade', 'Upgrade', 'websocket']).toString(), 'GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    });
  });

  describe('planResponse', function () {
    const table: Array<[string, ResponseFraming, { chunked: boolean; close: boolean }]> = [
      ['Content-Length, HTTP/1.1, keep-alive', { noBody: false, contentLength: true, http11: true, keepAlive: true }, { chunked: false, close: false }],
      ['no length, HTTP/1.1: chunks', { noBody: false, contentLength: false, http11: true, keepAlive: true }, { chunked: true, close: false }],
      ['no length, HTTP/1.0: to the close', { noBody: false, contentLength: false, http11: false, keepAlive: true }, { chunked: false, close: true }],
      ['Content-Length, HTTP/1.0 keep-alive', { noBody: false, contentLength: true, http11: false, keepAlive: true }, { chunked: false, close: false }],
      ['no body (HEAD/204/304), HTTP/1.1', { noBody: true, contentLength: false, http11: true, keepAlive: true }, { chunked: false, close: false }],
      ['no body, HTTP/1.0 without a length: close', { noBody: true, contentLength: false, http11: false, keepAlive: true }, { chunked: false, close: true }],
      ['the exchange closes anyway', { noBody: false, contentLength: true, http11: true, keepAlive: false }, { chunked: false, close: true }],
    ];
    for (const [what, f, want] of table) it(what, () => assert.deepEqual(planResponse(f), want));
  });

  describe('relayedHead', function () {
    const client = { method: 'GET', httpVersion: '1.1', keepAlive: true };
    it('drops hop-by-hop lines, frames and adds Date and Connection', function () {
      const r = relayedHead(200, 'OK', ['Connection', 'x-a, keep-alive', 'X-A', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Date', 'd', 'X-B', '2'], client);
      assert.ok(!('bad' in r));
      assert.equal(r.head, 'HTTP/1.1 200 OK\r\nDate: d\r\nX-B: 2\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n');
    });
    it('refuses what Node\'s ServerResponse refused', function () {
      assert.deepEqual(relayedHead(99, 'x', [], client), { bad: 'ERR_HTTP_INVALID_STATUS_CODE' });
      assert.deepEqual(relayedHead(200, 'O\u0001K', [], client), { bad: 'ERR_INVALID_CHAR' });
    });
    it('keeps a 304\'s Content-Length and sends no chunks for HEAD', function () {
      const r = relayedHead(304, 'Not Modified', ['Content-Length', '9', 'Date', 'd'], client);
      assert.ok(!('bad' in r) && r.noBody && !r.plan.chunked && r.head.includes('Content-Length: 9\r\n'));
      const h = relayedHead(200, 'OK', ['Date', 'd'], { ...client, method: 'HEAD' });
      assert.ok(!('bad' in h) && h.noBody && !h.plan.chunked);
    });
  });

  describe('declaresBody', function () {
    const table: Array<[string[], boolean]> = [
      [['Host', 'a'], false],
      [['Content-Length', '0'], false],
      [['content-length', '3'], true],
      [['Transfer-Encoding', 'chunked'], true],
      [['transfer-encoding', 'gzip'], true],
    ];
    for (const [lines, want] of table) it(`${JSON.stringify(lines)} → ${want}`, () => assert.equal(declaresBody(lines), want));
  });

  describe('ownResponse', function () {
    it('gives a HEAD request the head only', function () {
      const full = ownResponse(403, 'RBAC: access denied', false, false).toString();
      const head = ownResponse(403, 'RBAC: access denied', false, true).toString();
      assert.ok(full.endsWith('\r\n\r\nRBAC: access denied'));
      assert.ok(head.endsWith('\r\n\r\n'));
      assert.match(head, /content-length: 19\r\n/);
    });

    it('carries the given header lines (a redirect\'s location, a route\'s response headers) before its own', function () {
      const text = ownResponse(301, 'Moved Permanently', true, false, ['location', '/new', 'x-route', 'a']).toString();
      assert.match(text, /^HTTP\/1\.1 301 Moved Permanently\r\nlocation: \/new\r\nx-route: a\r\ncontent-type: text\/plain\r\n/);
    });
  });
});
