/**
 * The agent's metrics listener (default :15020): GET /metrics in the Prometheus text format and
 * GET /healthz, 200 once the agent is ready (503 before). A plain HTTP server in the agent
 * process; nothing else is served.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { describeCause, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';

export const METRICS_PORT = 15020;

export interface MetricsServerOptions {
  registry: Registry;
  /** /healthz answers 200 while this is true. */
  ready: () => boolean;
  log: Logger;
}

export class MetricsServer {
  private readonly server: http.Server;
  private readonly log: Logger;

  constructor(private readonly opts: MetricsServerOptions) {
    this.log = opts.log.child({ component: 'metrics' });
    this.server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => this.handle(req, res));
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
