/**
 * The flow reporter: streams this agent's flow records to the collector in acknowledged batches.
 * `record` is the proxy's side: it writes the record as the collector's JSON once (wire.ts),
 * O(1), never waits, never throws. A full buffer (by records or by bytes of JSON, whichever limit
 * is met first) drops the oldest of what the collector certainly lacks and counts it in `lost`, so
 * produced = acknowledged + lost + buffered at every moment. Batches, resending, backpressure and loss accounting:
 * docs/architecture.md "The reporter".
 */
import { randomBytes } from 'node:crypto';
import type { FlowRecord, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import { MAX_FLOWS_PER_BATCH, MAX_FRAME_BYTES } from '../../common/mesh-protocol';
import { FLOWS_MAX_BUFFERED_BYTES, type FlowBatch } from '../mesh/collector-client';
import { RingBuffer } from './ring-buffer';
import { encodeFlow } from './wire';

/** What the reporter needs of the collector session (the CollectorClient is one). */
export interface FlowTransport {
  readonly connected: boolean;
  /** Bytes queued on the socket and not yet written. */
  readonly bufferedAmount: number;
  /** False when the batch was not sent (not connected, socket backed up). */
  sendFlows(batch: FlowBatch): boolean;
  /** 'connected', 'disconnected', 'flows-ack' ({session, seq}) */
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

export interface FlowReporterOptions {
  log: Logger;
  /** Records kept, in flight included (default 100 000). */
  bufferSize?: number;
  /**
   * Characters of records' JSON kept, in flight included (default 64 Mi): bytes as V8 holds ASCII
   * text, so with 8 KiB paths the buffer stays near 64 MiB instead of bufferSize × 8 KiB.
   */
  bufferBytes?: number;
  /** Records per batch (default 500, at most MAX_FLOWS_PER_BATCH). */
  batchSize?: number;
  /** Batches sent and not yet acknowledged (default 8). */
  maxInFlight?: number;
  /** How often the buffer is flushed (default 100 ms): the latency a flow sees while connected. */
  flushIntervalMs?: number;
  /** Stop sending while the socket holds this many unsent bytes (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Resend unacknowledged batches when none was acknowledged for this long (default 10 s). */
  ackTimeoutMs?: number;
  /** This process's session id (default: random). */
  session?: string;
}

export interface FlowReporterStats {
  /** records handed to `record` */
  produced: number;
  /** records sent for the first time */
  sent: number;
  /** records sent again (after a reconnect or an acknowledgement timeout) */
  resent: number;
  /** records the collector acknowledged */
  acknowledged: number;
  /** records dropped: buffer full, or not a record the collector accepts */
  lost: number;
  /** records held: waiting, or sent and not yet acknowledged */
  buffered: number;
  /** characters of JSON those records hold */
  bufferedBytes: number;
  /** batches sent and not yet acknowledged */
  inFlight: number;
}

export const DEFAULT_FLOW_BUFFER = 100_000;
/** The most records `--flow-buffer` may ask for. */
export const MAX_FLOW_BUFFER = 10_000_000;
export const DEFAULT_FLOW_BUFFER_BYTES = 64 * 1024 * 1024;
const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_MAX_IN_FLIGHT = 8;
const DEFAULT_FLUSH_INTERVAL_MS = 100;
const DEFAULT_ACK_TIMEOUT_MS = 10_000;
const MAX_ACK_TIMEOUT_MS = 300_000;
/** A batch the collector left unacknowledged this many times on a live session is refused: lost. */
const MAX_ACK_TIMEOUTS = 5;
/** Room left in a frame for everything but the records. */
const BATCH_BYTES = MAX_FRAME_BYTES - 1024;
const LOG_EVERY_MS = 10_000;

interface Batch {
  seq: number;
  flows: string[];
  /** characters of JSON in `flows` */
  bytes: number;
  /** on the current connection, awaiting acknowledgement */
  sent: boolean;
  sentAt: number;
  everSent: boolean;
  /** times the acknowledgement timeout passed while this was the oldest batch */
  timeouts: number;
}

export class FlowReporter implements FlowSink {
  readonly session: string;
  private readonly log: Logger;
  private readonly capacity: number;
  private readonly capacityBytes: number;
  private readonly batchSize: number;
  private readonly maxInFlight: number;
  private readonly flushIntervalMs: number;
  private readonly maxBufferedBytes: number;
  private readonly baseAckTimeoutMs: number;
  private ackTimeoutMs: number;
  /** records as the collector's JSON, oldest first */
  private readonly queue: RingBuffer<string>;
  private readonly inflight: Batch[] = [];
  private inflightRecords = 0;
  /** characters of JSON held, queued and in flight */
  private bufferedBytes = 0;
  private nextSeq = 1;
  /** `lost` as last sent to the collector */
  private lostReported = 0;
  private transport: FlowTransport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private soon = false;
  private closed = false;
  private produced = 0;
  private sent = 0;
  private resent = 0;
  private acknowledged = 0;
  private lost = 0;
  private lastLossLog = 0;
  private lossSinceLog = 0;
  private lastInvalidLog = 0;

  constructor(opts: FlowReporterOptions) {
    this.log = opts.log.child({ component: 'flow-reporter' });
    this.capacity = positive(opts.bufferSize ?? DEFAULT_FLOW_BUFFER, 'bufferSize');
    this.capacityBytes = positive(opts.bufferBytes ?? DEFAULT_FLOW_BUFFER_BYTES, 'bufferBytes');
    this.batchSize = Math.min(positive(opts.batchSize ?? DEFAULT_BATCH_SIZE, 'batchSize'), MAX_FLOWS_PER_BATCH);
    this.maxInFlight = positive(opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, 'maxInFlight');
    this.flushIntervalMs = positive(opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS, 'flushIntervalMs');
    this.maxBufferedBytes = positive(opts.maxBufferedBytes ?? FLOWS_MAX_BUFFERED_BYTES, 'maxBufferedBytes');
    this.baseAckTimeoutMs = positive(opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS, 'ackTimeoutMs');
    this.ackTimeoutMs = this.baseAckTimeoutMs;
    this.session = opts.session ?? randomBytes(12).toString('base64url');
    this.queue = new RingBuffer<string>(this.capacity);
  }

  /** The proxy's side: one encoding, never waits, never throws. */
  record(flow: FlowRecord): void {
    this.produced++;
    const e = encodeFlow(flow);
    if (e.problem !== undefined) {
      this.lost++;
      this.noteInvalid(e.problem);
      return;
    }
    const size = e.json.length;
    while (this.queue.length + this.inflightRecords >= this.capacity || this.bufferedBytes + size > this.capacityBytes) if (!this.dropOldest()) break;
    this.queue.push(e.json);
    this.bufferedBytes += size;
    if (!this.soon && this.queue.length >= this.batchSize && this.transport !== undefined && this.transport.connected) {
      this.soon = true;
      setImmediate(this.pumpSoon);
    }
  }

  /** Start streaming over `transport` (records made before are kept and sent first). */
  start(transport: FlowTransport): void {
    if (this.transport) throw new Error('flow reporter already started');
    if (this.closed) return;
    this.transport = transport;
    transport.on('connected', this.onConnected);
    transport.on('disconnected', this.onDisconnected);
    transport.on('flows-ack', this.onAck);
    this.timer = setInterval(this.tick, this.flushIntervalMs);
    this.timer.unref();
    this.pump();
  }

  /** Send what can be sent now (what the timer does; also a last try before stopping). */
  flush(): void {
    this.pump();
  }

  /**
   * For a stopping agent: true once every record produced so far has been acknowledged (or
   * dropped and counted), false if `timeoutMs` passes first.
   */
  async settled(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.pump();
      if (this.queue.length === 0 && this.inflight.length === 0) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
  }

  /** Stop: a last flush, then no more sends; what is left is not acknowledged. */
  close(): void {
    if (this.closed) return;
    this.pump();
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const t = this.transport;
    if (t) {
      t.off('connected', this.onConnected);
      t.off('disconnected', this.onDisconnected);
      t.off('flows-ack', this.onAck);
    }
    const s = this.stats();
    if (s.produced > 0) this.log.info({ produced: s.produced, acknowledged: s.acknowledged, lost: s.lost, unacknowledged: s.buffered }, 'flow reporter stopped');
  }

  stats(): FlowReporterStats {
    return {
      produced: this.produced,
      sent: this.sent,
      resent: this.resent,
      acknowledged: this.acknowledged,
      lost: this.lost,
      buffered: this.queue.length + this.inflightRecords,
      bufferedBytes: this.bufferedBytes,
      inFlight: this.inflight.length,
    };
  }

  private readonly pumpSoon = (): void => {
    this.soon = false;
    this.pump();
  };

  private readonly tick = (): void => {
    const t = this.transport;
    if (!t || !t.connected) return;
    const oldest = this.inflight[0];
    if (oldest?.sent && Date.now() - oldest.sentAt > this.ackTimeoutMs) {
      if (++oldest.timeouts >= MAX_ACK_TIMEOUTS) {
        // Sent again and again on a live session and never acknowledged: the collector refuses
        // it. Keeping it would hold the window shut for good.
        const n = this.dropBatch(0);
        this.lost += n;
        this.log.error({ seq: oldest.seq, records: n, lost: this.lost }, 'the collector never acknowledged a flow batch; its records are counted lost');
      } else {
        this.log.warn({ batches: this.inflight.length, waitedMs: this.ackTimeoutMs }, 'no acknowledgement for flow batches, sending them again');
      }
      for (const b of this.inflight) b.sent = false;
      this.ackTimeoutMs = Math.min(this.ackTimeoutMs * 2, MAX_ACK_TIMEOUT_MS);
    }
    this.pump();
  };

  private readonly onConnected = (): void => {
    this.pump();
  };

  /** What was sent on the lost connection is sent again, first, on the next one. */
  private readonly onDisconnected = (): void => {
    for (const b of this.inflight) b.sent = false;
  };

  private readonly onAck = (ack: { session: string; seq: number }): void => {
    if (ack.session !== this.session) return;
    let settled = false;
    while (this.inflight.length > 0 && this.inflight[0]!.seq <= ack.seq) {
      const b = this.inflight.shift()!;
      this.inflightRecords -= b.flows.length;
      this.bufferedBytes -= b.bytes;
      this.acknowledged += b.flows.length;
      settled = true;
    }
    if (!settled) return;
    this.ackTimeoutMs = this.baseAckTimeoutMs;
    this.pump();
  };

  private pump(): void {
    const t = this.transport;
    if (!t || this.closed || !t.connected) return;
    // Unacknowledged batches first, in order.
    for (let i = 0; i < this.inflight.length; i++) {
      const b = this.inflight[i]!;
      if (b.sent) continue;
      const r = this.send(t, b);
      if (r === 'blocked') return;
      if (r === 'dropped') i--;
    }
    while (this.queue.length > 0 && this.inflight.length < this.maxInFlight) {
      if (t.bufferedAmount >= this.maxBufferedBytes) return;
      const b = this.cut();
      if (!b) continue;
      this.inflight.push(b);
      this.inflightRecords += b.flows.length;
      if (this.send(t, b) === 'blocked') return;
    }
    // Records were dropped since the last batch, and no batch is coming to say so.
    if (this.queue.length === 0 && this.lost > this.lostReported && this.inflight.length < this.maxInFlight) {
      const b: Batch = { seq: this.nextSeq++, flows: [], bytes: 0, sent: false, sentAt: 0, everSent: false, timeouts: 0 };
      this.inflight.push(b);
      this.send(t, b);
    }
  }

  private send(t: FlowTransport, b: Batch): 'sent' | 'blocked' | 'dropped' {
    if (t.bufferedAmount >= this.maxBufferedBytes) return 'blocked';
    let ok: boolean;
    const lost = this.lost;
    try {
      ok = t.sendFlows({ session: this.session, seq: b.seq, lost, flows: b.flows });
    } catch (err) {
      // A batch the collector would refuse whole: resending it would never end.
      this.inflight.splice(this.inflight.indexOf(b), 1);
      this.inflightRecords -= b.flows.length;
      this.bufferedBytes -= b.bytes;
      this.lost += b.flows.length;
      this.log.error({ err, seq: b.seq, records: b.flows.length }, 'flow batch cannot be sent; its records are lost');
      return 'dropped';
    }
    if (!ok) return 'blocked';
    if (lost > this.lostReported) this.lostReported = lost;
    b.sent = true;
    b.sentAt = Date.now();
    if (b.everSent) this.resent += b.flows.length;
    else this.sent += b.flows.length;
    b.everSent = true;
    return 'sent';
  }

  /** The next batch from the queue (records already in wire form); undefined when it is empty. */
  private cut(): Batch | undefined {
    const flows: string[] = [];
    let bytes = 0;
    let chars = 0;
    while (flows.length < this.batchSize && this.queue.length > 0) {
      const json = this.queue.peek()!;
      const size = Buffer.byteLength(json) + 1;
      if (flows.length > 0 && bytes + size > BATCH_BYTES) break;
      this.queue.shift();
      flows.push(json);
      bytes += size;
      chars += json.length;
    }
    if (flows.length === 0) return undefined;
    return { seq: this.nextSeq++, flows, bytes: chars, sent: false, sentAt: 0, everSent: false, timeouts: 0 };
  }

  /** Buffer full: the oldest of what the collector certainly lacks goes (see the top). */
  private dropOldest(): boolean {
    let n = 1;
    let i = 0;
    while (i < this.inflight.length && this.inflight[i]!.everSent) i++;
    if (i < this.inflight.length) n = this.dropBatch(i);
    else if (this.queue.length > 0) this.bufferedBytes -= this.queue.shift()!.length;
    else if (this.inflight.length > 0) n = this.dropBatch(0);
    else return false;
    this.lost += n;
    this.lossSinceLog += n;
    const now = Date.now();
    if (now - this.lastLossLog >= LOG_EVERY_MS) {
      this.log.warn(
        { event: 'flows-lost', dropped: this.lossSinceLog, lost: this.lost, bufferSize: this.capacity, bufferBytes: this.capacityBytes },
        'flow buffer full, dropping the oldest records',
      );
      this.lastLossLog = now;
      this.lossSinceLog = 0;
    }
    return true;
  }

  private dropBatch(i: number): number {
    const [b] = this.inflight.splice(i, 1);
    this.inflightRecords -= b!.flows.length;
    this.bufferedBytes -= b!.bytes;
    return b!.flows.length;
  }

  private noteInvalid(problem: string): void {
    const now = Date.now();
    if (now - this.lastInvalidLog < LOG_EVERY_MS) return;
    this.lastInvalidLog = now;
    this.log.warn({ problem, lost: this.lost }, 'flow record the collector would refuse, dropped');
  }
}

function positive(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${n}`);
  return n;
}
