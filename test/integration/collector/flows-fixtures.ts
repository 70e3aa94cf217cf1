/**
 * Shared pieces of the flows-*.test.ts suites: a known set of flows with the filter cases that
 * narrow it, an HTTPS client for the collector's API, and a raw agent session that sends flow
 * batches and waits for their acknowledgements.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import WebSocket from 'ws';
import { nodeCertPath, nodeKeyPath } from '../../../agent/mesh/node-identity';
import type { RunningCollector } from '../../../collector/collector';
import { filtersToQuery, type FlowFilters } from '../../../common/flows-api';
import type { FlowRecord } from '../../../common/flow';
import { encodeMessage, type FlowsMessage } from '../../../common/mesh-protocol';
import { opened, rawNodeSocket, type Stack } from './helpers';

/** Flows in the known set are `T0 + tag * 1000` (an hour ago: inside the default retention); `bytesSent` is the tag. */
export const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

const ep = (ip: string, namespace?: string, workload?: string, port?: number): FlowRecord['source'] => ({
  ip,
  ...(port !== undefined ? { port } : {}),
  ...(workload !== undefined ? { workload, namespace, identity: `spiffe://cluster.local/ns/${namespace}/sa/${workload}` } : {}),
});

function flow(tag: number, node: string, f: Partial<FlowRecord>, t0: number): FlowRecord {
  return {
    time: new Date(t0 + tag * 1000).toISOString(),
    node,
    direction: 'outbound',
    source: ep('10.1.0.1', 'shop', 'web'),
    destination: ep('10.1.0.2', 'shop', 'api', 8080),
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    mtls: true,
    bytesSent: tag,
    bytesReceived: 100,
    durationMs: 5,
    ...f,
  };
}

/** Tags 1–7 are node-a's, tag 8 node-b's. */
export function knownFlows(t0 = T0): { a: FlowRecord[]; b: FlowRecord[] } {
  const a = [
    flow(1, 'node-a', { protocol: 'http', http: { method: 'GET', path: '/api/v1/orders/1', status: 200 }, policy: 'shop/allow-web' }, t0),
    flow(2, 'node-a', { destination: ep('10.1.0.3', 'shop', 'db', 5432), verdict: 'denied', reason: 'denied-by-policy', policy: 'shop/db-lockdown' }, t0),
    flow(3, 'node-a', { direction: 'inbound', source: ep('10.1.0.4', 'ops', 'cart'), protocol: 'http', http: { method: 'POST', path: '/api/v1/cart', status: 201 }, traffic: { route: 'shop/canary', rule: 1, backend: 'shop/api-v2', attempts: 1 } }, t0),
    flow(4, 'node-a', { direction: 'egress', destination: { ip: '93.184.216.34', port: 443, host: 'example.com' }, protocol: 'tls', verdict: 'denied', reason: 'host-not-allowed', mtls: false }, t0),
    flow(5, 'node-a', { source: ep('10.1.0.5', 'default', 'web'), destination: ep('10.1.0.6', 'default', 'api', 8080), protocol: 'http', http: { method: 'GET', path: '/login', status: 200 }, verdict: 'audit' }, t0),
    flow(6, 'node-a', { source: ep('10.1.0.2', 'shop', 'api'), destination: ep('10.1.0.1', 'shop', 'web', 80), protocol: 'http', http: { method: 'GET', path: '/API/v1/orders/2', status: 500 }, verdict: 'error', reason: 'upstream-failed', traffic: { route: 'shop/canary', rule: 0, backend: 'shop/web-v1', attempts: 2 } }, t0),
    flow(7, 'node-a', { direction: 'inbound' }, t0),
  ];
  const b = [flow(8, 'node-b', { source: ep('10.2.0.1', 'shop', 'search'), protocol: 'http', http: { method: 'GET', path: '/api/v1/search', status: 200 }, traffic: { route: 'search/canary', rule: 0, backend: 'search/api', attempts: 1 } }, t0)];
  return { a, b };
}

/** [what, filters, expected tags newest first] over knownFlows(T0). */
export const FILTER_CASES: Array<[string, FlowFilters, number[]]> = [
  ['no filter', {}, [8, 7, 6, 5, 4, 3, 2, 1]],
  ['from a workload name (any namespace)', { from: 'web' }, [7, 5, 4, 2, 1]],
  ['from namespace/workload', { from: 'shop/web' }, [7, 4, 2, 1]],
  ['from a SPIFFE identity', { from: 'spiffe://cluster.local/ns/ops/sa/cart' }, [3]],
  ['from an IP', { from: '10.1.0.5' }, [5]],
  ['to a workload name', { to: 'api' }, [8, 7, 5, 3, 1]],
  ['to namespace/workload', { to: 'shop/api' }, [8, 7, 3, 1]],
  ['to a SPIFFE identity', { to: 'spiffe://cluster.local/ns/shop/sa/web' }, [6]],
  ['to an outside IP', { to: '93.184.216.34' }, [4]],
  ['verdict denied', { verdict: 'denied' }, [4, 2]],
  ['verdict audit', { verdict: 'audit' }, [5]],
  ['verdict error', { verdict: 'error' }, [6]],
  ['protocol tcp', { protocol: 'tcp' }, [7, 2]],
  ['protocol tls', { protocol: 'tls' }, [4]],
  ['protocol http', { protocol: 'http' }, [8, 6, 5, 3, 1]],
  ['an exact HTTP path', { httpPath: '/api/v1/orders/1' }, [1]],
  ['an HTTP path prefix (case-sensitive)', { httpPath: '/api/*' }, [8, 3, 1]],
  ['an HTTP path that is only a prefix, without *', { httpPath: '/api/v1' }, []],
  ['direction inbound', { direction: 'inbound' }, [7, 3]],
  ['direction egress', { direction: 'egress' }, [4]],
  ['node', { node: 'node-b' }, [8]],
  ['since (inclusive)', { since: T0 + 5000 }, [8, 7, 6, 5]],
  ['until (exclusive)', { until: T0 + 3000 }, [2, 1]],
  ['since and until', { since: T0 + 2000, until: T0 + 4000 }, [3, 2]],
  ['limit', { limit: 3 }, [8, 7, 6]],
  ['from and verdict together', { from: 'shop/web', verdict: 'denied' }, [4, 2]],
  ['to, protocol and direction together', { to: 'api', protocol: 'tcp', direction: 'inbound' }, [7]],
  ['a workload nobody has', { from: 'nobody' }, []],
  ['a route, namespace/name (traffic.route)', { route: 'shop/canary' }, [6, 3]],
  ['a route name, any namespace', { route: 'canary' }, [8, 6, 3]],
  ['a route and a verdict together', { route: 'canary', verdict: 'error' }, [6]],
  ['a route nobody has', { route: 'shop/nope' }, []],
  ['a route name that is only a suffix', { route: 'nary' }, []],
];

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface ApiCredentials {
  token?: string;
  cert?: { certPem: string; keyPem: string };
  /** more request headers (a browser's cookie, Origin, …) */
  headers?: Record<string, string>;
  /** Reuse this agent's connections (default: a new connection per request). */
  agent?: https.Agent;
}

/** The node certificate and key an earlier join left in `agentDir`, as API credentials. */
export const nodeCreds = (agentDir: string): ApiCredentials['cert'] => ({
  certPem: fs.readFileSync(nodeCertPath(agentDir), 'utf8'),
  keyPem: fs.readFileSync(nodeKeyPath(agentDir), 'utf8'),
});

/** GET `path` on the collector's API over real TLS (another `method`, with `body` sent as JSON when given). */
export function apiGet(col: RunningCollector, path: string, creds: ApiCredentials = {}, method = 'GET', body?: unknown): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: col.port,
        path,
        method,
        ca: col.ca.certPem,
        agent: creds.agent ?? false,
        headers: {
          ...(creds.token !== undefined ? { authorization: `Bearer ${creds.token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...creds.headers,
        },
        ...(creds.cert ? { cert: creds.cert.certPem, key: creds.cert.keyPem } : {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export const flowsPath = (f: FlowFilters): string => {
  const q = filtersToQuery(f);
  return q ? `/v1/flows?${q}` : '/v1/flows';
};

/** A follower on /v1/flows/follow; `frames` collects what arrives. */
export function follow(col: RunningCollector, f: FlowFilters, creds: ApiCredentials, stack: Stack): { ws: WebSocket; frames: Array<{ at: number; text: string }> } {
  const q = filtersToQuery(f);
  const ws = new WebSocket(`wss://127.0.0.1:${col.port}/v1/flows/follow${q ? `?${q}` : ''}`, {
    ca: col.ca.certPem,
    headers: creds.token !== undefined ? { authorization: `Bearer ${creds.token}` } : {},
    ...(creds.cert ? { cert: creds.cert.certPem, key: creds.cert.keyPem } : {}),
  });
  const frames: Array<{ at: number; text: string }> = [];
  ws.on('message', (d) => frames.push({ at: Date.now(), text: String(d) }));
  ws.on('error', () => undefined);
  stack.push(() => ws.terminate());
  return { ws, frames };
}

type Reply = { type: string; code?: string; message?: string; session?: string; seq?: number };

/** A node's agent session that sends flow batches itself (the raw protocol, as an agent would). */
export class FlowSession {
  readonly replies: Reply[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.replies.push(JSON.parse(String(d)) as Reply));
  }

  static async open(stack: Stack, col: RunningCollector, agentDir: string, node: string): Promise<FlowSession> {
    const ws = rawNodeSocket(stack, col.url, col.ca.certPem, agentDir);
    await opened(ws);
    ws.send(encodeMessage({ type: 'hello', node, nodeAddress: '192.168.50.1', agentVersion: 'test' }));
    return new FlowSession(ws);
  }

  /** Send a batch; resolves with the flows-ack, or the error reply, whichever comes first. */
  send(batch: Omit<FlowsMessage, 'type'>, timeoutMs = 5_000): Promise<Reply> {
    const from = this.replies.length;
    this.ws.send(encodeMessage({ type: 'flows', ...batch }));
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const poll = (): void => {
        const r = this.replies.slice(from).find((m) => (m.type === 'flows-ack' && m.session === batch.session && m.seq === batch.seq) || m.type === 'error');
        if (r) return resolve(r);
        if (Date.now() > deadline) return reject(new Error(`no reply to flows ${batch.session}/${batch.seq} within ${timeoutMs} ms`));
        setTimeout(poll, 5);
      };
      poll();
    });
  }
}

/** A TCP flow of `node`'s web workload, told apart from every other by `bytesSent` = `n`. */
export function numberedFlow(node: string, n: number): FlowRecord {
  return {
    time: new Date().toISOString(),
    node,
    direction: 'outbound',
    source: { ip: '10.7.0.1', workload: 'web', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/web' },
    destination: { ip: '10.7.0.2', port: 8080 },
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'allowed',
    mtls: true,
    bytesSent: n,
    bytesReceived: 0,
    durationMs: 1,
  };
}
