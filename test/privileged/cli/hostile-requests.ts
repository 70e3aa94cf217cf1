/**
 * Hostile HTTP requests for the end-to-end evasion test: each tries to reach /admin on a web pod
 * (denied by web-deny-admin) or to get past the x-user DENY on /echo. Written as exact bytes.
 *
 * expect: 'deny' → 403 from the proxy; 'reject' → 4xx/5xx refusal before authorization (or a
 * closed connection); 'pass' → the request may reach the pod, but never the admin page; 'h2' → the
 * proxy answers in HTTP/2 (its SETTINGS frame: a pod under an HTTP-level policy is served HTTP/2
 * with authorization per stream) or closes — never an HTTP/1 answer.
 */
export interface HostileCase {
  name: string;
  request: string;
  expect: 'deny' | 'reject' | 'pass' | 'h2';
  /** the statuses of a pipelined exchange, in order, when that is the point */
  statuses?: number[];
}

const H = 'Host: web-2\r\n';
const get = (target: string, extra = '', version = 'HTTP/1.1'): string => `GET ${target} ${version}\r\n${H}${extra}\r\n`;
const smuggled = `GET /admin HTTP/1.1\r\n${H}\r\n`;

export const HOSTILE: HostileCase[] = [
  // path spellings of /admin
  { name: 'plain /admin', request: get('/admin'), expect: 'deny' },
  { name: 'trailing slash', request: get('/admin/'), expect: 'deny' },
  { name: 'sub path', request: get('/admin/users'), expect: 'deny' },
  { name: 'double slash', request: get('//admin'), expect: 'deny' },
  { name: 'triple slash', request: get('///admin'), expect: 'deny' },
  { name: 'dot-dot segment', request: get('/a/../admin'), expect: 'deny' },
  { name: 'dot segment', request: get('/./admin'), expect: 'deny' },
  { name: 'escape out of /public', request: get('/public/../admin'), expect: 'deny' },
  { name: 'encoded dot-dot lower', request: get('/%2e%2e/admin'), expect: 'deny' },
  { name: 'encoded dot-dot upper', request: get('/%2E%2E/admin'), expect: 'deny' },
  { name: 'encoded single dot', request: get('/%2e/admin'), expect: 'deny' },
  { name: 'encoded unreserved letter', request: get('/%61dmin'), expect: 'deny' },
  { name: 'encoded slash lower', request: get('/%2fadmin'), expect: 'deny' },
  { name: 'encoded slash upper', request: get('/%2Fadmin'), expect: 'deny' },
  { name: 'encoded slashes around dot-dot', request: get('/public%2f..%2fadmin'), expect: 'deny' },
  { name: 'backslash', request: get('/\\admin'), expect: 'deny' },
  { name: 'encoded backslash', request: get('/%5cadmin'), expect: 'deny' },
  { name: 'backslash dot-dot', request: get('/public\\..\\admin'), expect: 'deny' },
  { name: 'fragment', request: get('/admin#x'), expect: 'deny' },
  { name: 'query string', request: get('/admin?x=1'), expect: 'deny' },
  { name: 'trailing dot segment', request: get('/admin/.'), expect: 'deny' },
  { name: 'path parameter', request: get('/admin;jsessionid=1'), expect: 'reject' },
  { name: 'path parameter segment', request: get('/admin;/x'), expect: 'reject' },
  { name: 'double-encoded dot-dot', request: get('/%252e%252e/admin'), expect: 'reject' },
  { name: 'encoded NUL', request: get('/admin%00'), expect: 'reject' },
  { name: 'encoded NUL before suffix', request: get('/admin%00.html'), expect: 'reject' },
  { name: 'upper case path (a different path; the app routes it to 404)', request: get('/ADMIN'), expect: 'pass' },
  { name: 'mixed case path', request: get('/Admin'), expect: 'pass' },
  { name: 'encoded upper case letter', request: get('/%41DMIN'), expect: 'pass' },
  { name: 'overlong UTF-8 dots', request: get('/%c0%ae%c0%ae/admin'), expect: 'pass' },
  { name: 'admin in the query only', request: get('/public?/admin'), expect: 'pass' },
  // request-target forms and Host
  { name: 'absolute-form, same host', request: get('http://web-2/admin'), expect: 'deny' },
  { name: 'absolute-form, upper-case host', request: get('http://WEB-2/admin'), expect: 'deny' },
  { name: 'absolute-form, other host', request: get('http://other/admin'), expect: 'reject' },
  { name: 'duplicate Host', request: `GET /admin HTTP/1.1\r\n${H}Host: other\r\n\r\n`, expect: 'reject' },
  { name: 'no Host', request: 'GET /admin HTTP/1.1\r\n\r\n', expect: 'reject' },
  { name: 'Host with trailing dot', request: 'GET /admin HTTP/1.1\r\nHost: web-2.\r\n\r\n', expect: 'deny' },
  { name: 'CONNECT', request: `CONNECT web-2:8080 HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },
  // methods and versions
  { name: 'lower-case method', request: `get /admin HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },
  { name: 'two spaces after method (parsed as /admin, denied)', request: `GET  /admin HTTP/1.1\r\n${H}\r\n`, expect: 'deny' },
  { name: 'HEAD', request: `HEAD /admin HTTP/1.1\r\n${H}\r\n`, expect: 'deny' },
  { name: 'POST', request: `POST /admin HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, expect: 'deny' },
  { name: 'HTTP/1.0', request: get('/admin', '', 'HTTP/1.0'), expect: 'deny' },
  { name: 'HTTP/0.9', request: 'GET /admin\r\n\r\n', expect: 'reject' },
  { name: 'HTTP/2 preface', request: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', expect: 'h2' },
  { name: 'h2c upgrade', request: get('/admin', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'), expect: 'reject' },
  // request smuggling shapes: the hidden request must never be read as a request
  {
    name: 'CL then TE',
    request: `POST /public HTTP/1.1\r\n${H}Content-Length: ${5 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    expect: 'reject',
  },
  {
    name: 'TE then CL',
    request: `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${smuggled}\r\n0\r\n\r\n`,
    expect: 'reject',
  },
  { name: 'duplicate Content-Length', request: `POST /public HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'Content-Length list', request: `POST /public HTTP/1.1\r\n${H}Content-Length: 0, 0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'Content-Length with plus sign', request: `POST /public HTTP/1.1\r\n${H}Content-Length: +0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'TE chunked, identity', request: `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'TE xchunked', request: `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'space before colon', request: `POST /public HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'obs-fold TE', request: `POST /public HTTP/1.1\r\n${H}X-A: b\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`, expect: 'reject' },
  { name: 'bad chunk size', request: `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n${smuggled}\r\n0\r\n\r\n`, expect: 'reject' },
  { name: 'pipelined after an allowed request', request: `${get('/public')}${smuggled}`, expect: 'deny', statuses: [200, 403] },
  {
    name: 'request inside a Content-Length body is only a body',
    request: `POST /public HTTP/1.1\r\n${H}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    expect: 'pass',
    statuses: [200],
  },
  // headers
  { name: 'over-long header', request: get('/public', `X-Big: ${'a'.repeat(20_000)}\r\n`), expect: 'reject' },
  { name: 'too many headers', request: get('/public', Array.from({ length: 150 }, (_, i) => `X-H${i}: v\r\n`).join('')), expect: 'reject' },
  { name: 'NUL in a header value', request: get('/public', 'X-A: a\u0000b\r\n'), expect: 'reject' },
  // the x-user DENY on /echo (web-deny-guest): every spelling of a guest caller is denied
  { name: 'x-user guest', request: get('/echo', 'X-User: guest\r\n'), expect: 'deny' },
  { name: 'x-user upper-case header name', request: get('/echo', 'X-USER: guest\r\n'), expect: 'deny' },
  { name: 'x-user twice, guest second', request: get('/echo', 'X-User: admin\r\nX-User: guest\r\n'), expect: 'deny' },
  { name: 'x-user twice, guest first', request: get('/echo', 'X-User: guest\r\nX-User: admin\r\n'), expect: 'deny' },
  { name: 'x-user guest with spaces', request: get('/echo', 'X-User:    guest   \r\n'), expect: 'deny' },
];
