/**
 * Part of the Kubernetes API double (./index.ts): watch streams. A watch is one long HTTP 200
 * response of newline-separated `{"type","object"}` events, as the API server sends them:
 *   - no resourceVersion (or "0"): ADDED for every object that matches now, then live events;
 *   - resourceVersion N: every change after N still in the history, then live events; a
 *     compacted N is an ERROR event carrying a 410 Expired Status, and the stream ends;
 *   - selectors apply to both sides of a change: an object that stops matching is DELETED for
 *     the watch, one that starts matching is ADDED;
 *   - allowWatchBookmarks=true: BOOKMARK events with the current resourceVersion, every
 *     bookmarkIntervalMs and on demand; timeoutSeconds ends the stream cleanly.
 * Tests can end every stream cleanly or cut its connection mid-stream.
 */
import type { ServerResponse } from 'node:http';
import { matchesFields, matchesLabels, type FieldRequirement, type LabelRequirement } from './selectors';
import type { Change, KubeObject } from './store';
import { storageKey, type ResourceType } from './resources';

export interface WatchSpec {
  type: ResourceType;
  apiVersion: string;
  /** One namespace, or undefined for all. */
  namespace: string | undefined;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  bookmarks: boolean;
  timeoutSeconds: number | undefined;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export class WatchStream {
  private bookmarkTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Events written to this stream (bookmarks included). */
  sent = 0;

  constructor(
    readonly spec: WatchSpec,
    private readonly res: ServerResponse,
    private readonly currentRv: () => number,
    bookmarkIntervalMs: number,
    private readonly onClose: () => void,
  ) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    if (spec.bookmarks) this.bookmarkTimer = setInterval(() => this.bookmark(), bookmarkIntervalMs);
    if (spec.timeoutSeconds !== undefined) this.timeoutTimer = setTimeout(() => this.end(), spec.timeoutSeconds * 1000);
    res.on('close', () => this.cleanup());
  }

  /** The initial ADDED events of a watch started without a resourceVersion. */
  sendInitial(objects: KubeObject[]): void {
    for (const o of objects.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))) {
      if (this.matches(o)) this.send('ADDED', o);
    }
  }

  /** Forward one store change, as this watch's selectors see it. */
  deliver(change: Change): void {
    if (this.closed || change.storage !== storageKey(this.spec.type)) return;
    const before = change.old !== undefined && this.matches(change.old);
    const after = change.type !== 'DELETED' && this.matches(change.object);
    if (change.type === 'DELETED') {
      if (before) this.send('DELETED', change.object);
    } else if (before && after) this.send('MODIFIED', change.object);
    else if (after) this.send('ADDED', change.object);
    else if (before) this.send('DELETED', change.object);
  }

  bookmark(): void {
    if (!this.spec.bookmarks) return;
    this.write('BOOKMARK', { kind: this.spec.type.kind, apiVersion: this.spec.apiVersion, metadata: { resourceVersion: String(this.currentRv()) } });
  }

  /** The 410 of a resourceVersion too old for the history, then the end of the stream. */
  expired(rv: number, oldest: number): void {
    this.write('ERROR', {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `too old resource version: ${rv} (${oldest})`,
      reason: 'Expired',
      code: 410,
    });
    this.end();
  }

  /** End the stream cleanly (as the API server does at timeoutSeconds). */
  end(): void {
    if (this.closed) return;
    this.res.end();
    this.cleanup();
  }

  /** Cut the connection mid-stream (a load balancer or API server restart). */
  reset(): void {
    if (this.closed) return;
    this.res.socket?.destroy();
    this.cleanup();
  }

  private matches(o: KubeObject): boolean {
    if (this.spec.namespace !== undefined && o.metadata.namespace !== this.spec.namespace) return false;
    return matchesLabels(this.spec.labels, o.metadata.labels) && matchesFields(this.spec.fields, o);
  }

  private send(type: 'ADDED' | 'MODIFIED' | 'DELETED', o: KubeObject): void {
    this.write(type, { apiVersion: this.spec.apiVersion, kind: this.spec.type.kind, ...o });
  }

  private write(type: WatchEventType, object: unknown): void {
    if (this.closed) return;
    this.sent++;
    this.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.bookmarkTimer);
    clearTimeout(this.timeoutTimer);
    this.onClose();
  }
}
