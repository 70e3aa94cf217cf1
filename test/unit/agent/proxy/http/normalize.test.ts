import { strict as assert } from 'node:assert';
import { normalizeHost, normalizeTarget } from '../../../../../agent/proxy/http/normalize';

/** [raw target, Host header, expected forwarded target (path + query) or refusal reason] */
type Row = [string, string | undefined, { target: string; path?: string; query?: string } | { reason: string }];

const ok = (target: string, path = target.split('?')[0]!, query = target.includes('?') ? target.slice(target.indexOf('?')) : ''): Row[2] => ({
  target,
  path,
  query,
});
const no = (reason: string): Row[2] => ({ reason });

const rows: Row[] = [
  // already normal: returned as is
  ['/', 'web', ok('/')],
  ['/a/b/c', 'web', ok('/a/b/c')],
  ['/a/b/', 'web', ok('/a/b/')],
  ['/ADMIN', 'web', ok('/ADMIN')], // paths are case-sensitive (Istio)
  ["/a-b_c.d~e!$&'()*+,=:@", 'web', ok("/a-b_c.d~e!$&'()*+,=:@")],
  ['/file.txt', 'web', ok('/file.txt')],
  ['/.well-known/x', 'web', ok('/.well-known/x')],
  ['/a..b/c', 'web', ok('/a..b/c')],
  // merge slashes
  ['//admin', 'web', ok('/admin')],
  ['/a//b///c', 'web', ok('/a/b/c')],
  ['///', 'web', ok('/')],
  // dot segments (RFC 3986 remove_dot_segments, never above root)
  ['/a/../admin', 'web', ok('/admin')],
  ['/./admin', 'web', ok('/admin')],
  ['/a/./b/../../admin', 'web', ok('/admin')],
  ['/..', 'web', ok('/')],
  ['/../../admin', 'web', ok('/admin')],
  ['/a/b/..', 'web', ok('/a/')],
  ['/a/.', 'web', ok('/a/')],
  ['/admin/..%2f..%2fadmin', 'web', ok('/admin')],
  // escapes of unreserved characters decoded exactly once
  ['/%2e%2e/admin', 'web', ok('/admin')],
  ['/%2E%2E/admin', 'web', ok('/admin')],
  ['/.%2e/admin', 'web', ok('/admin')],
  ['/%61dmin', 'web', ok('/admin')],
  ['/%41DMIN', 'web', ok('/ADMIN')],
  ['/%7euser', 'web', ok('/~user')],
  // %2F and %5C decode to a slash (DECODE_AND_MERGE_SLASHES); backslash is a slash
  ['/%2fadmin', 'web', ok('/admin')],
  ['/%2Fadmin', 'web', ok('/admin')],
  ['/%5cadmin', 'web', ok('/admin')],
  ['/a%2f..%2fadmin', 'web', ok('/admin')],
  ['\\\\admin', 'web', ok('/admin')],
  ['/\\admin', 'web', ok('/admin')],
  ['/a\\..\\admin', 'web', ok('/admin')],
  // reserved and non-ASCII escapes stay encoded, uppercased
  ['/a%3fb', 'web', ok('/a%3Fb')],
  ['/caf%c3%a9', 'web', ok('/caf%C3%A9')],
  ['/a%20b', 'web', ok('/a%20b')],
  ['/%23frag', 'web', ok('/%23frag')],
  // fragment dropped, query kept as sent and not normalized
  ['/admin#x', 'web', ok('/admin')],
  ['/a#x?y=1', 'web', ok('/a')],
  ['/a?x=%2e%2e/../admin', 'web', ok('/a?x=%2e%2e/../admin')],
  ['/a/../b?q=1&r=%00', 'web', ok('/b?q=1&r=%00', '/b', '?q=1&r=%00')],
  ['/?', 'web', ok('/?', '/', '?')],
  // refused
  ['/admin;x', 'web', no('path-parameter')],
  ['/admin;jsessionid=1/x', 'web', no('path-parameter')],
  ['/admin%3bx', 'web', no('path-parameter')],
  ['/ok/..;/admin', 'web', no('path-parameter')],
  ['/%252e%252e/admin', 'web', no('double-encoding')],
  ['/a%25', 'web', no('double-encoding')],
  ['/%00', 'web', no('nul-byte')],
  ['/a%00.html', 'web', no('nul-byte')],
  ['/a\u0000b', 'web', no('nul-byte')],
  ['/a%0d%0aX-Injected:1', 'web', no('control-character')],
  ['/a%7f', 'web', no('control-character')],
  ['/a%2', 'web', no('invalid-percent-encoding')],
  ['/a%zz', 'web', no('invalid-percent-encoding')],
  ['/a|b', 'web', no('invalid-path-character')],
  ['/a"b', 'web', no('invalid-path-character')],
  ['/a<b>', 'web', no('invalid-path-character')],
  ['/a{b}', 'web', no('invalid-path-character')],
  ['/caf\u00e9', 'web', no('invalid-path-character')],
  ['/a?b c', 'web', no('invalid-query')],
  ['admin', 'web', no('invalid-request-target')],
  ['web:80', 'web', no('invalid-request-target')],
  ['', 'web', no('invalid-request-target')],
  // asterisk-form (the front allows it for OPTIONS only)
  ['*', 'web', ok('*')],
  // absolute-form: allowed only when it names the Host, forwarded as origin-form
  ['http://web/a/../admin?x=1', 'web', ok('/admin?x=1')],
  ['http://WEB/p', 'web', ok('/p')],
  ['HTTP://web:80/p', 'web', ok('/p')],
  ['http://web/p', 'web:80', ok('/p')],
  ['http://web.:8080/p', 'web:8080', ok('/p')],
  ['http://web', 'web', ok('/')],
  ['http://web?q', 'web', ok('/?q', '/', '?q')],
  ['http://other/p', 'web', no('absolute-form-host-mismatch')],
  ['http://web:8080/p', 'web', no('absolute-form-host-mismatch')],
  ['http://web/p', undefined, no('absolute-form-host-mismatch')],
  ['http://user@web/p', 'web', no('absolute-form-userinfo')],
  ['http://web@other/p', 'web', no('absolute-form-userinfo')],
  ['https://web/p', 'web', no('absolute-form-scheme')],
  ['http://we b/p', 'web', no('invalid-host')],
];

describe('normalizeTarget', function () {
  it('has a row for every rule (at least 40)', () => assert.ok(rows.length >= 40, `${rows.length} rows`));
  for (const [raw, host, want] of rows) {
    const name = 'reason' in want ? `refuses ${JSON.stringify(raw)} (${want.reason})` : `normalizes ${JSON.stringify(raw)} to ${want.target}`;
    it(name, function () {
      const got = normalizeTarget(raw, host);
      if ('reason' in want) {
        assert.deepEqual(got, { ok: false, status: 400, reason: want.reason });
      } else {
        assert.ok(got.ok, `refused: ${JSON.stringify(got)}`);
        assert.equal(got.target, want.target);
        assert.equal(got.path, want.path);
        assert.equal(got.query, want.query);
      }
    });
  }

  it('is idempotent: a normalized target normalizes to itself', function () {
    for (const [raw, host, want] of rows) {
      if ('reason' in want || want.target === '*') continue;
      const again = normalizeTarget(want.target, host);
      assert.ok(again.ok, raw);
      assert.equal(again.target, want.target, raw);
    }
  });
});

describe('normalizeHost', function () {
  const good: Array<[string, string]> = [
    ['web', 'web'],
    ['Web.Default.SVC.cluster.local', 'web.default.svc.cluster.local'],
    ['web.', 'web'],
    ['web.:8080', 'web:8080'],
    ['web:080', 'web:80'],
    ['10.0.1.2:80', '10.0.1.2:80'],
    ['[::1]', '[::1]'],
    ['[FE80::1]:8443', '[fe80::1]:8443'],
    ['my_svc', 'my_svc'],
  ];
  for (const [raw, want] of good) it(`reads ${raw} as ${want}`, () => assert.equal(normalizeHost(raw), want));
  const bad = [undefined, '', '.', 'web..', '.web', 'we b', 'web:', 'web:0', 'web:65536', 'web:+80', 'web:80:80', 'user@web', 'w%65b', '[::1', '[web]', 'web/x', 'a'.repeat(254)];
  for (const raw of bad) it(`refuses ${JSON.stringify(raw)}`, () => assert.equal(normalizeHost(raw), undefined));
});
