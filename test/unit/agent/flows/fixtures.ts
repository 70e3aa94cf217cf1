/** Flow records shaped like the proxy's, and a stand-in for the collector session. */
import { EventEmitter } from 'node:events';
import type { FlowRecord } from '../../../../common/flow';
import type { FlowTransport } from '../../../../agent/flows/reporter';
import type { FlowBatch } from '../../../../agent/mesh/collector-client';

/** An inbound HTTP request (DestinationAuthz's shape); `n` goes into bytesSent so records can be told apart. */
export function httpFlow(n = 0, over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time: new Date().toISOString(),
    node: 'node-2',
    direction: 'inbound',
    source: { ip: '10.0.1.10', port: 43210, workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' },
    destination: { ip: '10.0.2.10', port: 8080, workload: 'web', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/web', host: 'web:8080' },
    protocol: 'http',
    http: { method: 'GET', path: '/api/v1/items', status: 200 },
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    policy: 'default/allow-client',
    rule: 0,
    mtls: true,
    bytesSent: n,
    bytesReceived: 1234,
    durationMs: 3.25,
    ...over,
  };
}

/** An outbound TCP connection through the tunnel (OutboundProxy's shape). */
export function tcpFlow(n = 0, over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time: new Date().toISOString(),
    node: 'node-1',
    direction: 'outbound',
    source: { ip: '10.0.1.10', port: 40000, workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' },
    destination: { ip: '10.0.2.10', port: 5432, workload: 'db', namespace: 'data', identity: 'spiffe://cluster.local/ns/data/sa/db' },
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'tunnel-established',
    mtls: true,
    bytesSent: n,
    bytesReceived: 4096,
    durationMs: 120,
    ...over,
  };
}

/** What a collector got: each frame, the records parsed back. */
export interface Frame {
  session: string;
  seq: number;
  lost: number;
  flows: FlowRecord[];
}

/** The collector session as the reporter sees it: connect/disconnect/ack by hand, or auto-ack. */
export class FakeCollector extends EventEmitter implements FlowTransport {
  connected = false;
  bufferedAmount = 0;
  /** sendFlows answers false while set (the client's own buffer check). */
  full = false;
  autoAck = false;
  frames: Frame[] = [];

  sendFlows(batch: FlowBatch): boolean {
    if (!this.connected || this.full) return false;
    this.frames.push({ session: batch.session, seq: batch.seq, lost: batch.lost, flows: batch.flows.map((j) => JSON.parse(j) as FlowRecord) });
    if (this.autoAck) setImmediate(() => this.connected && this.emit('flows-ack', { session: batch.session, seq: batch.seq }));
    return true;
  }

  connect(): void {
    this.connected = true;
    this.emit('connected');
  }

  disconnect(): void {
    this.connected = false;
    this.emit('disconnected', { code: 1006, reason: '' });
  }

  ack(seq: number, session = this.frames[0]?.session ?? ''): void {
    this.emit('flows-ack', { session, seq });
  }

  /** bytesSent of every record received, in arrival order. */
  ids(): number[] {
    return this.frames.flatMap((f) => f.flows.map((r) => r.bytesSent));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
