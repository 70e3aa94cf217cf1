/**
 * `GET /v1/flows/follow?<filters>` as a WebSocket: every flow stored from now on that matches
 * the filters is sent as one JSON text frame (a StoredFlow). The caller was authenticated and
 * its filters parsed before the upgrade. A follower that stops reading is cut off rather than
 * growing the collector's memory; followers are pinged so dead ones are noticed.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { matchesFilters, type FlowFilters } from '../../common/flows-api';
import type { Logger } from '../../common/log';
import type { FlowStore, StoredEntry } from '../flows/store';
import { closeAllGracefully } from '../session-io';

/** A follower with this much unsent is cut off (close 1013). */
const MAX_FOLLOWER_BUFFER_BYTES = 16 * 1024 * 1024;
const PING_INTERVAL_MS = 15_000;
const CLOSE_GRACE_MS = 1_000;

export class FlowFollowers {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, clientTracking: true });
  private readonly alive = new WeakSet<WebSocket>();
  private readonly keepalive: NodeJS.Timeout;

  constructor(
    private readonly store: FlowStore,
    private readonly log: Logger,
  ) {
    this.keepalive = setInterval(() => this.ping(), PING_INTERVAL_MS);
    this.keepalive.unref();
  }

  get count(): number {
    return this.wss.clients.size;
  }

  /** Complete the upgrade and stream matching flows until either side closes. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, filters: FlowFilters, who: Record<string, unknown>): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const log = this.log.child(who);
      this.alive.add(ws);
      ws.on('pong', () => this.alive.add(ws));
      ws.on('error', (err) => log.debug({ reason: err.message }, 'follower error'));
      // followers have nothing to say; whatever they send is ignored
      const unsubscribe = this.store.onStored((batch) => this.send(ws, batch.entries(), filters, log));
      ws.on('close', (code) => {
        unsubscribe();
        log.debug({ code }, 'follower left');
      });
      log.debug({ filters }, 'follower joined');
    });
  }

  /** Close every follower (1001), waiting briefly for them to answer. */
  async close(): Promise<void> {
    clearInterval(this.keepalive);
    await closeAllGracefully(this.wss, 'collector stopping');
  }

  private send(ws: WebSocket, entries: readonly StoredEntry[], filters: FlowFilters, log: Logger): void {
    if (ws.readyState !== ws.OPEN) return;
    for (const e of entries) {
      if (!matchesFilters(e.record, filters)) continue;
      if (ws.bufferedAmount > MAX_FOLLOWER_BUFFER_BYTES) {
        log.warn({ reason: 'follower is not reading', bufferedBytes: ws.bufferedAmount }, 'follower cut off');
        ws.close(1013, 'not reading fast enough');
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
        return;
      }
      ws.send(e.json);
    }
  }

  private ping(): void {
    for (const ws of this.wss.clients) {
      if (!this.alive.has(ws)) {
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      if (ws.readyState === ws.OPEN) ws.ping();
    }
  }
}
