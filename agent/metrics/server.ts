/**
 * The agent's metrics listener (default :15020): GET /metrics in the Prometheus text format and
 * GET /healthz, 200 once the agent is ready (503 before). A plain HTTP server in the agent
 * process; nothing else is served.
 *
 * Served to the node only: what it says (every principal on the node, who talks to whom) is not
 * for pods. The proxy refuses a pod's connection to the agent's ports on any node address
 * (agent/proxy/node-local.ts), and this listener closes a connection that comes straight from a
 * pod's address (`refusePeer`), e.g. to the proxy address, which pods reach without the proxy.
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { describeCause, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { stripMapped } from '../ipv4-mapped';

export const METRICS_PORT = 15020;

export interface MetricsServerOptions {
  registry: Registry;
  /** /healthz answers 200 while this is true. */
  ready: () => boolean;
  /** True for a peer address that may not read metrics (a pod's): its connection is closed unanswered. */
  refusePeer?: (ip: string) => boolean;
  log: Logger;
}

/** Refused peers are logged at most this often, with how many were refused meanwhile. */
const REFUSED_LOG_EVERY_MS = 10_000;

export class MetricsServer {
  private readonly server: http.Server;
  private readonly log: Logger;
  /** connections closed because they came from a refused peer */
  refusedPeers = 0;
  private refusedSinceLog = 0;
  private lastRefusedLog = -Infinity;

  constructor(private readonly opts: MetricsServerOptions) {
    this.log = opts.log.child({ component: 'metrics' });
    this.server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => this.handle(req, res));
    const refusePeer = opts.refusePeer;
    if (refusePeer) this.server.on('connection', (socket) => this.screen(socket, refusePeer));
  }

  /** Close a connection from a refused peer before it is read; logged at most every 10 s. */
  private screen(socket: Socket, refusePeer: (ip: string) => boolean): void {
    const peer = stripMapped(socket.remoteAddress ?? '');
    if (!refusePeer(peer)) return;
    socket.destroy();
    this.refusedPeers++;
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastRefusedLog < REFUSED_LOG_EVERY_MS) return;
    this.log.warn({ event: 'refused', reason: 'metrics-from-pod', peer, refused: this.refusedSinceLog }, 'metrics are served to the node only: connection from a pod closed');
    this.lastRefusedLog = now;
    this.refusedSinceLog = 0;
  }

  /** Bind; PALISADE_ERR_LISTEN when the address cannot be used. */
  async listen(host: string, port: number): Promise<{ address: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new PalisadeError('PALISADE_ERR_LISTEN', `cannot serve metrics on ${host}:${port}: ${describeCause(err)}`, { cause: err }));
      this.server.once('error', onError);
      // reusePort: a successor agent serves the same port while this one drains (agent/handover.ts).
      this.server.listen({ port, host, reusePort: true }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.server.on('error', (err) => this.log.warn({ err }, 'metrics listener error'));
    const a = this.server.address() as AddressInfo;
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    if (path === '/healthz') return this.opts.ready() ? reply(res, 200, 'ok\n') : reply(res, 503, 'not ready\n');
    if (path !== '/metrics') return reply(res, 404, 'not found\n');
    this.opts.registry.metrics().then(
      (text) => reply(res, 200, text, { 'content-type': this.opts.registry.contentType }),
      (err: Error) => {
        this.log.error({ err }, 'collecting metrics failed');
        reply(res, 500, 'collecting metrics failed\n');
      },
    );
  }
}

function reply(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
