import { strict as assert } from 'node:assert';
import type * as http2 from 'node:http2';
import { readRequest, relayedHeaders } from '../../../../../agent/proxy/h2/request';
import { compileHeaderRules } from '../../../../../agent/proxy/http/headers';

const rules = compileHeaderRules({ 'x-forwarded-client-cert': 'By=a;URI=b' }, ['x-palisade-*']);
const base = { ':method': 'POST', ':scheme': 'http', ':authority': 'Greeter.Default:50051', ':path': '/demo.Greeter/Say', 'content-type': 'application/grpc', te: 'trailers' };

describe('an HTTP/2 request as the proxy reads it (agent/proxy/h2/request.ts)', () => {
  it('gives authz the normalized request and forwards the same path, the mesh headers set and the client\'s removed', () => {
    const r = readRequest({ ...base, 'x-forwarded-client-cert': 'forged', 'x-palisade-source': 'forged', 'grpc-timeout': '1S', 'x-user': 'ann' }, rules);
    assert.ok(r.ok);
    assert.equal(r.grpc, true);
    assert.deepEqual(r.req, {
      method: 'POST',
      path: '/demo.Greeter/Say',
      query: '',
      host: 'greeter.default:50051',
      headers: { host: ['greeter.default:50051'], 'content-type': ['application/grpc'], 'grpc-timeout': ['1S'], 'x-user': ['ann'] },
      httpVersion: '2.0',
    });
    assert.deepEqual(r.forward, {
      ':method': 'POST',
      ':path': '/demo.Greeter/Say',
      ':authority': 'Greeter.Default:50051',
      ':scheme': 'http',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '1S',
      'x-user': 'ann',
      'x-forwarded-client-cert': 'By=a;URI=b',
    });
  });

  it('normalizes the path once, as the HTTP/1.1 engine does, and keeps the query as sent', () => {
    const r = readRequest({ ...base, ':path': '/a/./b//c/../d?x=1', 'content-type': 'text/plain' }, rules);
    assert.ok(r.ok);
    assert.equal(r.grpc, false);
    assert.equal(r.req.path, '/a/b/d');
    assert.equal(r.req.query, '?x=1');
    assert.equal(r.forward[':path'], '/a/b/d?x=1');
  });

  it('refuses what cannot be served, naming why', () => {
    const cases: [Record<string, string>, string][] = [
      [{ ...base, ':method': 'CONNECT' }, 'connect-method'],
      [{ ...base, ':path': '/a%00b' }, 'nul-byte'],
      [{ ...base, ':path': '/a%252Fb' }, 'double-encoding'],
      [{ ...base, ':path': '' }, 'invalid-request-target'],
      [{ ':method': 'GET', ':scheme': 'http', ':path': '/' }, 'missing-host'],
      [{ ...base, ':authority': 'a b' }, 'invalid-host'],
    ];
    for (const [h, reason] of cases) {
      const r = readRequest(h, rules);
      assert.equal(r.ok, false, reason);
      assert.equal((r as { reason: string }).reason, reason);
    }
  });

  it('te passes only as trailers; connection-specific headers never pass', () => {
    const r = readRequest({ ...base, te: 'gzip', connection: 'close', 'keep-alive': '1', upgrade: 'x', host: 'other' }, rules);
    assert.ok(r.ok);
    for (const h of ['te', 'connection', 'keep-alive', 'upgrade', 'host']) assert.equal(r.forward[h], undefined, h);
  });

  it('a response is relayed with :status and its headers as sent', () => {
    assert.deepEqual(relayedHeaders({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0', 'set-cookie': ['a=1', 'b=2'] } as unknown as http2.IncomingHttpHeaders), { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0', 'set-cookie': ['a=1', 'b=2'] });
  });
});
