/**
 * Configuration text for the data-plane benchmark: the nginx every path ends at, the haproxy
 * pair (the C reference), the L7 AuthorizationPolicy and the haproxy ACL that mirrors it, and
 * the TLS material of the haproxy hop (openssl, RSA-2048 like the mesh's workload certificates).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SERVER_PORT = 8080;
export const HAPROXY_HTTP_PORT = 18080;
export const HAPROXY_TLS_PORT = 18443;
/** the 1 KiB response every request workload asks for */
export const SMALL_PATH = '/bench/1k';
/** the large file of the bulk transfer */
export const BULK_PATH = '/bench/bulk';
/** answers "<peer address>|<x-forwarded-client-cert>": who delivered the request */
export const WHOAMI_PATH = '/bench/whoami';
/** outside what the L7 rules allow (nginx would answer 404) */
export const FORBIDDEN_PATH = '/admin';

export const CLIENT_SA = 'client';
export const L7_APP = 'bench-server-l7';
export const TRUST_DOMAIN = 'cluster.local';
export const HAPROXY_SERVER_NAME = 'bench-server';

/** The Istio policy on the L7 server: only the client identity, only GET/HEAD, only /bench/*. */
export function l7PolicyYaml(): string {
  return `# The L7 path of the data-plane benchmark: HTTP attributes, so every request is parsed and authorized.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: bench-l7
  namespace: default
spec:
  selector:
    matchLabels:
      app: ${L7_APP}
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["${TRUST_DOMAIN}/ns/default/sa/${CLIENT_SA}"]
      to:
        - operation:
            methods: ["GET", "HEAD"]
            paths: ["/bench/*"]
`;
}

/** One nginx (single process, no logging) serving `www` on ip:8080. */
export function nginxConf(o: { dir: string; www: string; ip: string }): string {
  const tmp = path.join(o.dir, 'tmp');
  return `daemon off;
master_process off;
worker_processes 1;
user root;
pid ${path.join(o.dir, 'nginx.pid')};
error_log stderr error;
worker_rlimit_nofile 65536;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  types { }
  default_type application/octet-stream;
  server {
    listen ${o.ip}:${SERVER_PORT} backlog=4096;
    root ${o.www};
    location = ${WHOAMI_PATH} {
      default_type text/plain;
      return 200 "$remote_addr|$http_x_forwarded_client_cert\\n";
    }
  }
}
`;
}

/** The document root: a 1 KiB file and a sparse bulk file. */
export function writeWww(www: string, bulkBytes: number): void {
  fs.mkdirSync(path.join(www, 'bench'), { recursive: true });
  fs.writeFileSync(path.join(www, SMALL_PATH), Buffer.alloc(1024, 'x'));
  const fd = fs.openSync(path.join(www, BULK_PATH), 'w');
  fs.ftruncateSync(fd, bulkBytes);
  fs.closeSync(fd);
}

const HAPROXY_GLOBAL = `global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3

defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  timeout http-request 10s
`;

/**
 * Node 1: plain HTTP in from the client pod, out over mTLS (TLS 1.3, client certificate, the
 * peer's certificate verified against the CA and its name) to haproxy-2. Idle upstream
 * connections are shared by every client connection (`http-reuse always`), as the mesh pools
 * its tunnel connection.
 */
export function haproxyClientSide(o: { listen: string; peer: string; tls: TlsFiles }): string {
  return `${HAPROXY_GLOBAL}
frontend from_pod
  bind ${o.listen}:${HAPROXY_HTTP_PORT}
  default_backend to_node2

backend to_node2
  http-reuse always
  server node2 ${o.peer}:${HAPROXY_TLS_PORT} ssl verify required ca-file ${o.tls.ca} crt ${o.tls.clientPem} sni str(${HAPROXY_SERVER_NAME}) verifyhost ${HAPROXY_SERVER_NAME} alpn http/1.1 pool-purge-delay 300s
`;
}

/**
 * Node 2: mTLS in (a client certificate from the CA is required), the same rules as the L7
 * AuthorizationPolicy (caller identity, method, path; else 403), the caller's identity passed
 * on like the mesh's XFCC header, then plain HTTP to the server pod.
 */
export function haproxyServerSide(o: { listen: string; server: string; tls: TlsFiles }): string {
  return `${HAPROXY_GLOBAL}
frontend from_mesh
  bind ${o.listen}:${HAPROXY_TLS_PORT} ssl crt ${o.tls.serverPem} ca-file ${o.tls.ca} verify required alpn http/1.1
  acl from_client ssl_c_s_dn(CN) -m str ${CLIENT_SA}
  acl allowed_method method GET HEAD
  acl allowed_path path_beg /bench/
  http-request deny deny_status 403 unless from_client allowed_method allowed_path
  http-request set-header x-forwarded-client-cert "By=${HAPROXY_SERVER_NAME};Subject=%[ssl_c_s_dn(CN)]"
  default_backend to_pod

backend to_pod
  http-reuse always
  server pod ${o.server}:${SERVER_PORT} pool-purge-delay 300s
`;
}

export interface TlsFiles {
  ca: string;
  /** haproxy-2's certificate and key (PEM, concatenated) */
  serverPem: string;
  /** haproxy-1's client certificate and key */
  clientPem: string;
}

/** A throwaway CA and two leaf certificates for the haproxy hop. */
export function makeTls(dir: string): TlsFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (name: string): string => path.join(dir, name);
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  };
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=bench-ca', '-days', '2']);
  const leaf = (name: string, cn: string, ext: string): string => {
    fs.writeFileSync(f(`${name}.ext`), ext);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
    const pem = f(`${name}.pem`);
    fs.writeFileSync(pem, fs.readFileSync(f(`${name}.crt`), 'utf8') + fs.readFileSync(f(`${name}.key`), 'utf8'), { mode: 0o600 });
    return pem;
  };
  const serverPem = leaf('server', HAPROXY_SERVER_NAME, `subjectAltName=DNS:${HAPROXY_SERVER_NAME}\nextendedKeyUsage=serverAuth\n`);
  const clientPem = leaf('client', CLIENT_SA, `subjectAltName=URI:spiffe://${TRUST_DOMAIN}/ns/default/sa/${CLIENT_SA}\nextendedKeyUsage=clientAuth\n`);
  return { ca: f('ca.crt'), serverPem, clientPem };
}
