import { strict as assert } from 'node:assert';
import { editHeaderObject, editLines, ownAnswerOps, withHost, withPath } from '../../../../../agent/proxy/http/header-edit';
import type { HeaderOp } from '../../../../../common/routes';

const set = (name: string, value: string): HeaderOp => ({ op: 'set', name, value });
const add = (name: string, value: string): HeaderOp => ({ op: 'add', name, value });
const remove = (name: string): HeaderOp => ({ op: 'remove', name, value: '' });

describe('a route\'s header changes on the proxy\'s two header forms (agent/proxy/http/header-edit.ts)', () => {
  const LINES = ['Host', 'web', 'X-Env', 'prod', 'Accept', 'a', 'x-env', 'stage', 'Content-Length', '0'];
  const CASES: [string, HeaderOp[], string[]][] = [
    ['set replaces the first line in place and drops the others (names compared case-insensitively)', [set('x-env', 'canary')], ['Host', 'web', 'X-Env', 'canary', 'Accept', 'a', 'Content-Length', '0']],
    ['set of a header not there appends it', [set('x-new', '1')], [...LINES, 'x-new', '1']],
    ['add appends a line, keeping those there', [add('x-env', 'canary')], [...LINES, 'x-env', 'canary']],
    ['remove drops every line of the name', [remove('x-env')], ['Host', 'web', 'Accept', 'a', 'Content-Length', '0']],
    ['remove of a header not there changes nothing', [remove('x-none')], LINES],
    ['ops apply in order', [remove('accept'), add('accept', 'b'), set('x-env', 'z')], ['Host', 'web', 'X-Env', 'z', 'Content-Length', '0', 'accept', 'b']],
  ];
  for (const [what, ops, want] of CASES) {
    it(`HTTP/1.1 lines: ${what}`, () => {
      const before = LINES.slice();
      assert.deepEqual(editLines(LINES, ops), want);
      assert.deepEqual(LINES, before, 'the input is untouched');
    });
  }

  it('HTTP/2 headers: set, add (a second value), remove; pseudo-headers kept', () => {
    const h = { ':method': 'POST', ':path': '/demo.Greeter/Say', 'x-env': 'prod', 'x-old': '1', accept: 'a' };
    assert.deepEqual(editHeaderObject(h, [set('x-env', 'canary'), add('accept', 'b'), add('x-tag', 't'), remove('x-old')]), {
      ':method': 'POST',
      ':path': '/demo.Greeter/Say',
      'x-env': 'canary',
      accept: ['a', 'b'],
      'x-tag': 't',
    });
    assert.equal(h['x-old'], '1', 'the input is untouched');
  });

  it('the Host line and the target\'s path are replaced, the query as sent kept', () => {
    assert.deepEqual(withHost(['Host', 'web', 'Accept', 'a'], 'api.internal'), ['Host', 'api.internal', 'Accept', 'a']);
    assert.equal(withPath('/api/users?id=1&x', '/v2/users'), '/v2/users?id=1&x');
    assert.equal(withPath('/api', '/v2'), '/v2');
  });

  it('on the proxy\'s own answer, a route\'s response ops skip the headers that answer keeps (its framing, a redirect\'s Location, a gRPC status); the others apply', () => {
    const ops = [add('x-route', 'a'), set('location', 'https://evil.example/'), remove('content-type'), set('grpc-status', '0'), add('grpc-message', 'x'), set('date', 'x'), remove('x-old')];
    assert.deepEqual(ownAnswerOps(ops), [add('x-route', 'a'), remove('x-old')]);
    const only = [add('x-route', 'a')];
    assert.equal(ownAnswerOps(only), only, 'nothing to skip: the same list');
    assert.deepEqual(editLines(['location', '/new'], ownAnswerOps(ops)), ['location', '/new', 'x-route', 'a']);
  });
});
