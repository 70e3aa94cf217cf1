/**
 * One simulated agent: a real node session, made cheap enough to run hundreds in one agent process (agent-worker.ts).
 * It joins with a real token (agent/mesh/join.ts), opens the session with its node certificate
 * over TLS (agent/mesh/transport.ts), says hello, registers its pods, asks certificates for its
 * identities, answers every `policies` frame with `policy-status` and sends flow batches — the
 * frames a real agent sends, encoded the same way. What it does not do is parse every registry
 * snapshot or delta: it reads the type and version from the frame's head and notes when it arrived, so
 * the cost measured is the collector's. Watching for one pod's address is a byte search.
 */
import type WebSocket from 'ws';
import * as zlib from 'node:zlib';
import { encodeMessage, inflateRegistryFrame, MAX_COLLECTOR_FRAME_BYTES, NODE_REPLIES, parseMessage, REGISTRY_DEFLATE, type WorkloadRegistration } from '../../../common/mesh-protocol';
import type { KeyPair } from '../../../common/pki';
import { Backoff } from '../../../common/backoff';
import { joinOnce } from '../../../agent/mesh/join';
import { now } from './timing';
import { openCollectorSocket, type CollectorEndpoint } from '../../../agent/mesh/transport';

/** A registry or policies frame: its version and when it arrived (ms, now()). */
export interface Arrival {
  version: number;
  t: number;
}

export interface SimAgentOptions {
  node: string;
  nodeAddress: string;
  endpoint: CollectorEndpoint;
  caPem: string;
  /** Pre-encoded wire records (agent/flows/wire.ts) the agent's batches are cut from. */
  flowTexts: string[];
  csrTimeoutMs?: number;
}

/** The agent's reporter keeps at most this many batches unacknowledged (agent/flows/reporter.ts). */
const MAX_IN_FLIGHT = 8;
const MAX_BUFFERED = 4 * 1024 * 1024;
/** A snapshot's or policies' `version`, or a registry delta's `toVersion` (collector/registry.ts writes these fields first). */
const HEAD_RE = /^\{"type":"(registry|registry-delta|policies)",(?:"epoch":"[0-9a-f]+","fromVersion":\d+,"toVersion"|"version"):(\d+),/;
/** A registry frame's epoch (a delta's first field, a snapshot's second): with the version, the `since` of hello, as the agent sends it. */
const EPOCH_RE = /"epoch":"([0-9a-f]+)"/;

interface Batch {
  seq: number;
  count: number;
  t: number;
  frame: string;
}

export class SimAgent {
  readonly registry: Arrival[] = [];
  readonly policies: Arrival[] = [];
  /** Payload bytes of every frame from the collector, and of registry/policies frames alone. */
  bytesIn = 0;
  pushBytes = 0;
  csrOk = 0;
  lastRegistryBytes = 0;
  /** Keep the newest registry snapshot frame (one agent does, for the cost model). */
  keepFrame = false;
  lastRegistryFrame: Buffer | undefined;
  csrFailed = 0;
  collectorErrors = 0;
  /** Registry and policies frames received, and those whose bytes were searched for a watched pod. */
  frames = 0;
  searched = 0;
  /** Told of every registry and policies frame as it arrives (agent-worker.ts streams them). */
  onArrival: ((kind: 'registry' | 'policies', arrival: Arrival) => void) | undefined;
  flowsSent = 0;
  flowsAcked = 0;
  /** Flows a full window or socket kept from being sent (a real agent would buffer them). */
  flowsHeld = 0;
  readonly ackLatencies: number[] = [];
  private ws: WebSocket | undefined;
  private creds: { certPem: string; keyPem: string } | undefined;
  private pods: WorkloadRegistration[] = [];
  private wanted = false;
  private readyWaiters: Array<() => void> = [];
  private snapshotWaiters: Array<() => void> = [];
  private ready = false;
  /** Where this agent's registry stands (the last registry frame's epoch and version). */
  private at: { epoch: string; version: number } | undefined;
  private readonly backoff = new Backoff();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly watchers: Array<{ needle: Buffer; resolve: (a: Arrival) => void }> = [];
  private readonly pending = new Map<string, { settle: (ok: boolean) => void }>();
  private nextId = 0;
  private readonly flowSession = `sim-${Math.random().toString(36).slice(2, 12)}`;
  private seq = 0;
  private readonly inFlight: Batch[] = [];
  private flowCursor = 0;

  constructor(private readonly opts: SimAgentOptions) {}

  get node(): string {
    return this.opts.node;
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** A real join: a join session with `token`, a CSR for `key`, a node certificate back. */
  async join(token: string, key: KeyPair): Promise<void> {
    const joined = await joinOnce(this.opts.endpoint, this.opts.caPem, this.opts.node, token, 30_000, key);
    this.creds = { certPem: joined.certPem, keyPem: key.privateKeyPem };
  }

  setPods(pods: WorkloadRegistration[]): void {
    this.pods = pods;
    if (this.ready) this.send(encodeMessage({ type: 'register', workloads: pods }));
  }

  /** Open the node session (hello, register); resolves at the first registry snapshot. */
  connect(): Promise<void> {
    this.wanted = true;
    const ready = this.whenReady();
    this.open();
    return ready;
  }

  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Close the session as a stopping agent does (1000); no reconnect. */
  async disconnect(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (!ws || ws.readyState === ws.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000, 'agent stopping');
      setTimeout(() => ws.terminate(), 2_000).unref();
    });
  }

  /** A certificate for each identity (CSRs prepared by the caller); failures are counted. */
  async requestCertificates(csrs: ReadonlyArray<{ identity: string; csr: string }>): Promise<void> {
    await Promise.all(csrs.map((c) => this.requestCertificate(c.identity, c.csr)));
  }

  /** Ask for a whole registry snapshot (registry-sync from nowhere); resolves when it arrived. */
  requestSnapshot(): Promise<void> {
    const got = new Promise<void>((resolve) => this.snapshotWaiters.push(resolve));
    this.send(encodeMessage({ type: 'registry-sync' }));
    return got;
  }

  /** Resolves with the first registry frame from now on whose bytes contain `"ip":"<ip>"`. */
  watchFor(ip: string): Promise<Arrival> {
    return new Promise((resolve) => this.watchers.push({ needle: Buffer.from(`"ip":"${ip}"`), resolve }));
  }

  /** Send one batch of `count` flows if the window and the socket allow; false when held back. */
  sendFlows(count: number): boolean {
    const ws = this.ws;
    if (count <= 0) return true;
    if (!this.ready || !ws || this.inFlight.length >= MAX_IN_FLIGHT || ws.bufferedAmount >= MAX_BUFFERED) {
      this.flowsHeld += count;
      return false;
    }
    const texts = this.opts.flowTexts;
    const records: string[] = [];
    for (let k = 0; k < count; k++) records.push(texts[(this.flowCursor++) % texts.length]!);
    const seq = ++this.seq;
    const frame = `{"type":"flows","session":"${this.flowSession}","seq":${seq},"lost":0,"flows":[${records.join(',')}]}`;
    this.inFlight.push({ seq, count, t: now(), frame });
    this.flowsSent += count;
    ws.send(frame);
    return true;
  }

  private requestCertificate(identity: string, csr: string): Promise<void> {
    if (!this.ready) {
      this.csrFailed += 1;
      return Promise.resolve();
    }
    const id = String(++this.nextId);
    return new Promise((resolve) => {
      const settle = (ok: boolean): void => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        if (ok) this.csrOk += 1;
        else this.csrFailed += 1;
        resolve();
      };
      const timer = setTimeout(() => settle(false), this.opts.csrTimeoutMs ?? 10_000);
      this.pending.set(id, { settle });
      this.send(encodeMessage({ type: 'csr', id, identity, csr }));
    });
  }

  private open(): void {
    const creds = this.creds;
    if (!creds) throw new Error(`${this.opts.node} has not joined`);
    const ws = openCollectorSocket({ endpoint: this.opts.endpoint, caPem: this.opts.caPem, cert: creds });
    this.ws = ws;
    ws.on('open', () => {
      // as the real agent: registry frames may come deflated
      ws.send(encodeMessage({ type: 'hello', node: this.opts.node, nodeAddress: this.opts.nodeAddress, agentVersion: 'scale-sim', ...(this.at ? { since: this.at } : {}), accepts: [REGISTRY_DEFLATE] }));
      ws.send(encodeMessage({ type: 'register', workloads: this.pods }));
    });
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on('error', () => undefined); // the close that follows reconnects
    ws.on('close', () => this.onClose(ws));
  }

  private onClose(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.ready = false;
    for (const p of [...this.pending.values()]) p.settle(false);
    if (!this.wanted) return;
    this.reconnectTimer = setTimeout(() => this.open(), this.backoff.next());
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    const t = now();
    this.bytesIn += data.length;
    // a deflated registry frame: its head from its first bytes inflated; the whole only to search it
    const text = isBinary ? headOfDeflated(data) : data.toString('latin1', 0, Math.min(128, data.length));
    const head = HEAD_RE.exec(text);
    let whole: Buffer | undefined;
    const body = (): Buffer => (whole ??= isBinary ? inflatedOnce(text, data) : data);
    if (head) {
      this.pushBytes += data.length;
      this.frames += 1;
      const arrival = { version: Number(head[2]), t };
      if (head[1] === 'policies') {
        this.policies.push(arrival);
        this.onArrival?.('policies', arrival);
        this.send(encodeMessage({ type: 'policy-status', version: arrival.version, ok: true, problems: [] }));
        return;
      }
      this.registry.push(arrival);
      this.onArrival?.('registry', arrival);
      const epoch = EPOCH_RE.exec(text)?.[1];
      if (epoch !== undefined) this.at = { epoch, version: arrival.version };
      if (head[1] === 'registry') {
        this.lastRegistryBytes = data.length;
        if (this.keepFrame) this.lastRegistryFrame = body();
        for (const resolve of this.snapshotWaiters.splice(0)) resolve();
      }
      if (this.watchers.length > 0) this.searched += 1;
      for (let k = this.watchers.length - 1; k >= 0; k--) {
        const w = this.watchers[k]!;
        if (body().indexOf(w.needle) < 0) continue;
        this.watchers.splice(k, 1);
        w.resolve(arrival);
      }
      if (!this.ready) this.becameReady();
      return;
    }
    if (isBinary) {
      this.collectorErrors += 1;
      return;
    }
    let m;
    try {
      m = parseMessage(data, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES);
    } catch {
      this.collectorErrors += 1;
      return;
    }
    if (m.type === 'flows-ack') return this.acknowledged(m.seq, t);
    if (m.type === 'cert' || (m.type === 'error' && m.id !== undefined)) {
      return this.pending.get(m.id!)?.settle(m.type === 'cert');
    }
    if (m.type === 'error') this.collectorErrors += 1;
  }

  private becameReady(): void {
    this.ready = true;
    this.backoff.reset();
    // what the collector may not have stored yet goes again, in order (it deduplicates by seq)
    for (const b of this.inFlight) this.ws?.send(b.frame);
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  private acknowledged(seq: number, t: number): void {
    while (this.inFlight.length > 0 && this.inFlight[0]!.seq <= seq) {
      const b = this.inFlight.shift()!;
      this.flowsAcked += b.count;
      this.ackLatencies.push(t - b.t);
    }
  }

  private send(frame: string): void {
    const ws = this.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(frame);
  }
}

/**
 * Frames inflated lately in this process, by their head (type, epoch, versions): the collector
 * sends every agent at one position the same frame, so a process of 500 agents inflates it once
 * (the real agent inflates what it gets; this is the simulator sparing its cores, as it spares
 * the JSON.parse).
 */
const INFLATED_KEPT = 64;
const inflated = new Map<string, Buffer>();

function inflatedOnce(head: string, data: Buffer): Buffer {
  const key = `${head}|${data.length}`;
  let text = inflated.get(key);
  if (text === undefined) {
    text = inflateRegistryFrame(data);
    inflated.set(key, text);
    if (inflated.size > INFLATED_KEPT) inflated.delete(inflated.keys().next().value!);
  }
  return text;
}

/** The first ~128 bytes of a deflated frame's text (its type, epoch and version), without inflating the rest. */
function headOfDeflated(data: Buffer): string {
  try {
    return zlib.inflateRawSync(data.subarray(0, 512), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('latin1', 0, 128);
  } catch {
    return '';
  }
}
