import { strict as assert } from 'node:assert';
import { encodeGrpcMessage, GRPC, grpcStatusOfHttp, isGrpc, parseGrpcTimeout, retryStatusOf, trailersOnly, trailersOnlyStatus } from '../../../../../agent/proxy/h2/grpc';
import { prefaceMatch } from '../../../../../agent/proxy/h2/preface';

describe('gRPC wire rules (agent/proxy/h2/grpc.ts, preface.ts)', () => {
  it('grpc-timeout: 1 to 8 digits and a unit, in ms; anything else is no deadline', () => {
    const cases: [string | undefined, number | undefined][] = [
      ['300m', 300],
      ['2S', 2000],
      ['1M', 60_000],
      ['1H', 3_600_000],
      ['1500u', 2],
      ['999999n', 1],
      ['0m', 0],
      ['99999999m', 99_999_999],
      ['123456789m', undefined],
      ['10', undefined],
      ['m', undefined],
      ['10s', undefined],
      ['-1S', undefined],
      [' 1S', undefined],
      ['', undefined],
      [undefined, undefined],
    ];
    for (const [v, want] of cases) assert.equal(parseGrpcTimeout(v), want, String(v));
  });

  it('an HTTP status the proxy decided maps to gRPC\'s status as gRPC specifies', () => {
    const cases: [number, number][] = [
      [400, GRPC.INTERNAL],
      [401, GRPC.UNAUTHENTICATED],
      [403, GRPC.PERMISSION_DENIED],
      [404, GRPC.UNIMPLEMENTED],
      [429, GRPC.UNAVAILABLE],
      [502, GRPC.UNAVAILABLE],
      [503, GRPC.UNAVAILABLE],
      [504, GRPC.UNAVAILABLE],
      [500, GRPC.UNKNOWN],
      [418, GRPC.UNKNOWN],
    ];
    for (const [http, want] of cases) assert.equal(grpcStatusOfHttp(http), want, String(http));
  });

  it('what is a gRPC call: application/grpc with or without a subtype or parameters', () => {
    const cases: [string | undefined, boolean][] = [
      ['application/grpc', true],
      ['application/grpc+proto', true],
      ['Application/GRPC+json', true],
      ['application/grpc;charset=utf-8', true],
      ['application/grpc-web', false],
      ['application/grpcx', false],
      ['application/json', false],
      [undefined, false],
    ];
    for (const [ct, want] of cases) assert.equal(isGrpc(ct), want, String(ct));
  });

  it('trailers-only answers: HTTP 200, grpc-status, percent-encoded grpc-message; Istio\'s denial text', () => {
    assert.deepEqual(trailersOnly(GRPC.PERMISSION_DENIED), { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'RBAC: access denied' });
    assert.equal(trailersOnly(GRPC.DEADLINE_EXCEEDED)['grpc-status'], '4');
    assert.equal(trailersOnly(GRPC.UNAVAILABLE)['grpc-status'], '14');
    assert.equal(encodeGrpcMessage('50% done\n'), '50%25 done%0A');
    assert.equal(encodeGrpcMessage('naïve'), 'na%C3%AFve');
  });

  it('a trailers-only UNAVAILABLE counts as 503 for retry codes; other answers keep their status', () => {
    assert.equal(trailersOnlyStatus({ ':status': '200', 'grpc-status': '14' }, true), 14);
    assert.equal(trailersOnlyStatus({ ':status': '200', 'grpc-status': '14' }, false), undefined, 'headers of a response with a body');
    assert.equal(trailersOnlyStatus({ ':status': '200' }, true), undefined);
    assert.equal(retryStatusOf(14, 200), 503);
    assert.equal(retryStatusOf(4, 200), 200);
    assert.equal(retryStatusOf(undefined, 502), 502);
  });

  it('the HTTP/2 client preface is told from HTTP/1.1 on the first bytes', () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const cases: [string, 'yes' | 'no' | 'more'][] = [
      [preface, 'yes'],
      [preface + '\x00\x00\x00\x04', 'yes'],
      ['PRI * HTTP/2.0\r\n', 'more'],
      ['', 'more'],
      ['P', 'more'],
      ['PRI * HTTP/1.1\r\n', 'no'],
      ['POST / HTTP/1.1\r\n', 'no'],
      ['GET / HTTP/1.1\r\n', 'no'],
    ];
    for (const [s, want] of cases) assert.equal(prefaceMatch(Buffer.from(s, 'latin1')), want, JSON.stringify(s));
  });
});
