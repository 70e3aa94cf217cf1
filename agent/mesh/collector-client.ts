/**
 * The agent's session with the collector. `start()` joins first when the data directory holds
 * no usable node certificate, then keeps one node session open for as long as the agent runs:
 * hello, the node's workloads (again after every reconnect), CSRs, and the mesh registry in: a
 * snapshot, then each change as a delta applied to `registry` (a MeshRegistry). A delta that does
 * not follow what the agent holds is not applied: the agent asks (`registry-sync`) for what it
 * missed. A reconnect says in hello where the registry stands, so only the missed deltas come.
 * A collector that is down or drops us is retried forever with backoff; only a refusal while
 * starting (join refused, node certificate refused) is final. With several collector addresses
 * (replicas sharing one CA: collector/kubernetes/ca-secret.ts) a lost or failed session moves on
 * to the next address at once, and backoff starts only once every address failed in a row; the
 * node keeps its certificate, and the flow reporter resends what was not acknowledged.
 *
 * Flow batches go out with `sendFlows` (the flow reporter, agent/flows/reporter.ts, decides what
 * and when); `bufferedAmount` is its backpressure signal.
 *
 * Events: 'registry' (RegistrySnapshot, built only when someone listens; after every snapshot or delta), 'policies' ({version, files}), 'flows-ack' ({session, seq}), 'connected', 'disconnected' ({code, reason}),
 * 'collector-error' (PalisadeError the collector reported outside any request, e.g. a refused
 * registration).
 */
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIPv4 } from 'node:net';
import type WebSocket from 'ws';
import { errorCode, invalidArgument, isPalisadeError, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import {
  encodeMessage,
  MAX_COLLECTOR_FRAME_BYTES,
  MAX_FLOWS_PER_BATCH,
  MAX_FRAME_BYTES,
  MAX_POLICY_PROBLEMS,
  inflateRegistryFrame,
  NODE_REPLIES,
  parseMessage,
  REGISTRY_DEFLATE,
  REGISTRY_FRAMES,
  type HelloMessage,
  type MeshMessage,
  type MessageOf,
  type RegisterMessage,
  type PolicyStatusMessage,
  type RegistrySnapshot,
  type ServiceRegistration,
  type WorkloadRegistration,
} from '../../common/mesh-protocol';
import { createCsr, generateKeyPair, isNodeName, nodeSpiffeId } from '../../common/pki';
import { Backoff, type BackoffOptions } from '../../common/backoff';
import { MeshRegistry } from './mesh-registry';
import { joinOnce } from './join';
import { loadNodeCredentials, saveNodeCredentials, type NodeCredentials } from './node-identity';
import { isTlsVerifyError, openCollectorSocket, parseCollectorUrl, readRefusal, type CollectorEndpoint } from './transport';

export type { RegistrySnapshot, WorkloadRegistration } from '../../common/mesh-protocol';

export interface CollectorClientOptions {
  /** `wss://host:port` or `unix:/abs/path.sock`; several: collector replicas, tried in turn. */
  url: string | readonly string[];
  caPem: string;
  node: string;
  /** IPv4 where this agent's HBONE :15008 listens. */
  nodeAddress: string;
  /** node.key (0600) + node.crt are kept here. */
  dataDir: string;
  joinToken?: string;
  log: Logger;
  agentVersion?: string;
  /** Drop the session when nothing (not even a ping) came from the collector for this long; default 35 s. */
  deadAfterMs?: number;
  backoff?: BackoffOptions;
  /** Where the mesh registry is kept (default: a new one, as `registry`). */
  registry?: MeshRegistry;
  /** After a failover, how long other nodes' workloads the new replica does not know yet are kept (default 10 s). */
  failoverCarryMs?: number;
}

/**
 * One batch of flow records for the collector. Each record is already JSON text, converted and
 * checked against the collector's own `flowProblem` by agent/flows/wire.ts: re-parsing a
 * 500-record frame here would cost more than the proxy spends producing those records.
 */
export interface FlowBatch {
  session: string;
  seq: number;
  /** the agent's running total of records it had to drop */
  lost: number;
  flows: readonly string[];
}

/** `sendFlows` refuses a batch while the socket holds more unsent bytes than this. */
export const FLOWS_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

const FLOW_SESSION_RE = /^[A-Za-z0-9._-]{1,64}$/;

interface Pending {
  resolve: (v: { certPem: string; caPem: string }) => void;
  reject: (err: PalisadeError) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_CSR_TIMEOUT_MS = 10_000;
const NODE_RENEW_CHECK_MS = 3_600_000;

export class CollectorClient extends EventEmitter {
  private readonly opts: CollectorClientOptions;
  private readonly endpoints: readonly CollectorEndpoint[];
  /** The endpoint in use (or tried next), and how many failed in a row since the last session. */
  private current = 0;
  private failedInRow = 0;
  /** The session moved to another address since the last snapshot: the next one is another replica's. */
  private movedSinceSnapshot = false;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly pending = new Map<string, Pending>();
  private creds: NodeCredentials | undefined;
  private ws: WebSocket | undefined;
  private ready = false;
  private registration: RegisterMessage | undefined;
  /** The last policy status, sent again with the wire rules' state when that changes. */
  private policyStatus: PolicyStatusMessage | undefined;
  private wireRules: string | undefined;
  readonly registry: MeshRegistry;
  /** A `registry-sync` is on its way: undeliverable deltas until its answer are expected. */
  private syncAsked = false;
  private nextId = 0;
  private started = false;
  private closed = false;
  /** A draining agent never says hello again: that would supersede its successor's session. */
  private noReconnect = false;
  private lastHeard = 0;
  private lastError: PalisadeError | undefined;
  private startWaiter: { resolve: (s: RegistrySnapshot) => void; reject: (e: PalisadeError) => void } | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private wake: (() => void) | undefined;

  constructor(opts: CollectorClientOptions) {
    super();
    if (!isNodeName(opts.node)) throw invalidArgument(`invalid node name ${JSON.stringify(opts.node)}`);
    if (!isIPv4(opts.nodeAddress)) {
      throw invalidArgument(`node address must be IPv4, got ${JSON.stringify(opts.nodeAddress)}`);
    }
    try {
      if (!new X509Certificate(opts.caPem).ca) throw new Error('not a CA certificate');
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `the mesh CA is not a PEM CA certificate: ${(err as Error).message}`, { cause: err });
    }
    this.opts = opts;
    this.registry = opts.registry ?? new MeshRegistry();
    const urls = typeof opts.url === 'string' ? [opts.url] : [...opts.url];
    if (urls.length === 0) throw invalidArgument('no collector address');
    this.endpoints = urls.map(parseCollectorUrl);
    this.log = opts.log.child({ component: 'collector-client' });
    this.backoff = new Backoff(opts.backoff);
  }

  get connected(): boolean {
    return this.ready;
  }

  /** The collector address in use (or tried next): `wss://host:port` or `unix:/path`. */
  get collector(): string {
    return endpointText(this.endpoints[this.current]!);
  }

  /** Bytes queued on the collector socket and not yet written (0 when not connected). */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /**
   * Send one batch of flows as a `flows` frame. False when it was not sent: not connected, or
   * the socket already holds `FLOWS_MAX_BUFFERED_BYTES` unsent (the caller keeps the batch and
   * tries again; after a reconnect it resends it, and the collector deduplicates by session+seq).
   * Throws PALISADE_ERR_INVALID_ARGUMENT for a batch the collector would refuse as a whole.
   */
  sendFlows(batch: FlowBatch): boolean {
    const ws = this.ws;
    if (!this.ready || !ws || ws.readyState !== ws.OPEN) return false;
    if (ws.bufferedAmount >= FLOWS_MAX_BUFFERED_BYTES) return false;
    if (!FLOW_SESSION_RE.test(batch.session) || !isCount(batch.seq) || !isCount(batch.lost)) {
      throw invalidArgument('flow batch needs a session id and non-negative integer seq and lost');
    }
    if (batch.flows.length > MAX_FLOWS_PER_BATCH) {
      throw invalidArgument(`a flow batch holds at most ${MAX_FLOWS_PER_BATCH} records, got ${batch.flows.length}`);
    }
    // The same text encodeMessage would produce for {type:'flows', session, seq, lost, flows}.
    const frame = `{"type":"flows","session":${JSON.stringify(batch.session)},"seq":${batch.seq},"lost":${batch.lost},"flows":[${batch.flows.join(',')}]}`;
    const bytes = Buffer.byteLength(frame);
    if (bytes > MAX_FRAME_BYTES) {
      throw invalidArgument(`a flow batch of ${bytes} bytes is over the ${MAX_FRAME_BYTES}-byte frame limit`);
    }
    ws.send(frame);
    return true;
  }

  /** The registry as a snapshot (built now: O(mesh)); undefined before the first one arrived. */
  latest(): RegistrySnapshot | undefined {
    return this.registry.position() ? this.registry.snapshot() : undefined;
  }

  /** Join if needed, open the node session; resolves with the first registry snapshot. */
  async start(): Promise<RegistrySnapshot> {
    if (this.started) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'collector client already started');
    this.started = true;
    this.creds = await this.credentials();
    if (this.closed) throw closedError();
    const first = new Promise<RegistrySnapshot>((resolve, reject) => (this.startWaiter = { resolve, reject }));
    this.connect();
    this.every(NODE_RENEW_CHECK_MS, () => this.renewNodeCertIfDue());
    return first;
  }

  /** This node's workloads (and the services it declares): sent now if connected, and after every reconnect. */
  setWorkloads(workloads: WorkloadRegistration[], services: ServiceRegistration[] = []): void {
    const copy: RegisterMessage = { type: 'register', workloads: workloads.map((w) => ({ ...w, labels: { ...w.labels } })) };
    if (services.length > 0) copy.services = structuredClone(services);
    const frame = checked(copy);
    this.registration = copy;
    if (this.ready && this.ws) this.ws.send(frame);
  }

  /** Tell the collector which policy version this agent enforces (dropped when not connected: it re-pushes at hello). */
  reportPolicyStatus(version: number, ok: boolean, problems: readonly string[]): void {
    const lines = problems.slice(0, MAX_POLICY_PROBLEMS).map((p) => (p.length > 2048 ? `${p.slice(0, 2047)}…` : p));
    this.policyStatus = { type: 'policy-status', version, ok, problems: lines };
    this.sendPolicyStatus();
  }

  /** The node's UDP/ICMP rules went stale (why) or are current again (undefined): sent with the policy status. */
  reportWireRules(problem: string | undefined): void {
    this.wireRules = problem === undefined ? undefined : problem.length > 2048 ? `${problem.slice(0, 2047)}…` : problem;
    this.sendPolicyStatus();
  }

  private sendPolicyStatus(): void {
    if (!this.ready || !this.ws || !this.policyStatus) return;
    this.ws.send(checked({ ...this.policyStatus, ...(this.wireRules !== undefined ? { wireRules: this.wireRules } : {}) }));
  }

  requestCertificate(identity: string, csrPem: string, timeoutMs = DEFAULT_CSR_TIMEOUT_MS): Promise<{ certPem: string; caPem: string }> {
    const ws = this.ws;
    if (!this.ready || !ws) return Promise.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'not connected to the collector'));
    const id = String(++this.nextId);
    let frame: string;
    try {
      frame = checked({ type: 'csr', id, identity, csr: csrPem });
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `no answer to the CSR for ${identity} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(frame);
    });
  }

  /** The agent is draining: keep this session while it lasts, never open another. */
  stopReconnecting(): void {
    this.noReconnect = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.wake?.();
    this.startWaiter?.reject(closedError());
    this.startWaiter = undefined;
    this.failPending('collector client closed');
    const ws = this.ws;
    if (!ws || ws.readyState === ws.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      if (ws.readyState === ws.CONNECTING) ws.terminate();
      else ws.close(1000, 'agent stopping');
      setTimeout(() => ws.terminate(), 1_000).unref();
    });
  }

  private async credentials(): Promise<NodeCredentials> {
    const { dataDir, node, caPem, joinToken } = this.opts;
    const loaded = loadNodeCredentials(dataDir, node, caPem);
    if ('creds' in loaded) {
      this.log.info({ notAfter: loaded.creds.notAfter.toISOString() }, 'node certificate loaded');
      return loaded.creds;
    }
    if (joinToken === undefined) {
      const why = 'missing' in loaded ? `no node certificate in ${dataDir}` : `the node certificate in ${dataDir} is unusable (${loaded.unusable})`;
      throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `${why} and no --join-token`);
    }
    for (;;) {
      try {
        const joined = await joinOnce(this.endpoints[this.current]!, caPem, node, joinToken);
        const creds = saveNodeCredentials(dataDir, node, caPem, joined.key, joined.certPem);
        this.log.info({ notAfter: creds.notAfter.toISOString() }, 'joined the mesh');
        this.backoff.reset();
        return creds;
      } catch (err) {
        if (this.closed) throw closedError();
        if (!isPalisadeError(err) || err.code !== 'PALISADE_ERR_COLLECTOR_UNAVAILABLE') throw err;
        const delay = this.moveOn() ? 0 : this.backoff.next();
        this.log.warn({ reason: err.message, retryInMs: delay, next: this.collector }, 'cannot reach the collector to join, retrying');
        await this.sleep(delay);
        if (this.closed) throw closedError();
      }
    }
  }

  /** Apply a snapshot or delta; false when the delta does not follow what we hold (then we ask for what we missed, once). */
  private registryFrame(ws: WebSocket, m: MessageOf<'registry' | 'registry-delta'>): boolean {
    if (m.type === 'registry') {
      const { type: _type, ...snapshot } = m;
      if (this.movedSinceSnapshot && this.registry.position() && snapshot.epoch !== this.registry.epoch) this.carryOver(snapshot);
      else this.registry.replace(snapshot);
      this.movedSinceSnapshot = false;
      this.syncAsked = false;
      return true;
    }
    if (this.registry.apply(m)) {
      this.syncAsked = false;
      return true;
    }
    if (m.epoch === this.registry.epoch && m.toVersion <= this.registry.version) return false; // already applied
    if (!this.syncAsked) {
      this.syncAsked = true;
      const since = this.registry.position();
      this.log.info({ have: this.registry.version, deltaFrom: m.fromVersion }, 'registry delta does not follow ours, asking for what we missed');
      ws.send(encodeMessage({ type: 'registry-sync', ...(since ? { since } : {}) }));
    }
    return false;
  }

  /** Another replica's snapshot after a failover: keep the nodes it does not know yet for a while (MeshRegistry.replaceCarrying). */
  private carryOver(snapshot: RegistrySnapshot): void {
    const carried = this.registry.replaceCarrying(snapshot);
    if (carried === 0) return;
    const ms = this.opts.failoverCarryMs ?? 10_000;
    this.log.info({ collector: this.collector, carried, forMs: ms }, 'failover: keeping the workloads of nodes this collector does not know yet');
    this.after(ms, () => {
      const dropped = this.registry.dropCarried();
      if (dropped === 0) return;
      this.log.warn({ dropped }, 'failover: workloads still unknown to this collector dropped');
      if (this.listenerCount('registry') > 0) this.emit('registry', this.registry.snapshot());
    });
  }

  private connect(): void {
    const creds = this.creds;
    if (this.closed || !creds) return;
    const ws = openCollectorSocket({ endpoint: this.endpoints[this.current]!, caPem: this.opts.caPem, cert: { certPem: creds.certPem, keyPem: creds.keyPem } });
    this.ws = ws;
    this.lastError = undefined;
    this.heard();
    ws.on('open', () => {
      this.heard();
      const since = this.registry.position();
      const hello: HelloMessage = {
        type: 'hello',
        node: this.opts.node,
        nodeAddress: this.opts.nodeAddress,
        agentVersion: agentVersion(this.opts),
        ...(since ? { since } : {}),
        accepts: [REGISTRY_DEFLATE],
      };
      this.syncAsked = false;
      ws.send(encodeMessage(hello));
      if (this.registration) ws.send(encodeMessage(this.registration));
    });
    ws.on('ping', () => this.heard());
    ws.on('message', (data, isBinary) => this.onFrame(ws, data as Buffer, isBinary));
    ws.on('unexpected-response', (_req, res) => {
      void readRefusal(res, 'PALISADE_ERR_UNAUTHENTICATED').then((err) => {
        this.lastError = new PalisadeError(err.code, `the collector refused node ${this.opts.node}: ${err.message}`);
        this.log.error({ reason: err.message }, 'collector refused this node');
        ws.terminate();
      });
    });
    ws.on('error', (err: Error) => {
      const verify = isTlsVerifyError(err);
      this.log[verify ? 'error' : 'debug']({ reason: err.message, code: errorCode(err) }, 'collector connection error');
      if (verify) this.lastError = new PalisadeError('PALISADE_ERR_UNAUTHENTICATED', `cannot verify the collector: ${err.message}`);
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString()));
    const dead = this.opts.deadAfterMs ?? 35_000;
    const watchdog = this.every(Math.max(50, Math.floor(dead / 4)), () => {
      if (this.ws !== ws || Date.now() - this.lastHeard <= dead) return;
      this.log.warn({ silentMs: Date.now() - this.lastHeard }, 'collector went silent, reconnecting');
      ws.terminate();
    });
    ws.once('close', () => this.clear(watchdog));
  }

  private onFrame(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    this.heard();
    let m;
    try {
      // a binary message is a registry frame deflated (hello accepts REGISTRY_DEFLATE), inflated within the frame limit
      m = isBinary ? parseMessage(inflateRegistryFrame(data), REGISTRY_FRAMES, MAX_COLLECTOR_FRAME_BYTES) : parseMessage(data, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES);
    } catch (err) {
      this.log.warn({ reason: (err as Error).message }, 'bad frame from the collector, reconnecting');
      ws.terminate();
      return;
    }
    if (m.type === 'registry' || m.type === 'registry-delta') {
      if (!this.registryFrame(ws, m)) return;
      // hello always changes the registry (the node is online), so a session's first registry frame comes right after it
      if (!this.ready) {
        this.ready = true;
        this.backoff.reset();
        this.failedInRow = 0;
        this.log.info({ collector: this.collector, version: this.registry.version, workloads: this.registry.size }, 'connected to the collector');
        this.emit('connected');
        this.startWaiter?.resolve(this.registry.snapshot());
        this.startWaiter = undefined;
        void this.renewNodeCertIfDue();
      }
      if (this.listenerCount('registry') > 0) this.emit('registry', this.registry.snapshot());
      return;
    }
    if (m.type === 'policies') {
      this.emit('policies', { version: m.version, files: m.files });
      return;
    }
    if (m.type === 'flows-ack') {
      this.emit('flows-ack', { session: m.session, seq: m.seq });
      return;
    }
    const pending = m.id === undefined ? undefined : this.pending.get(m.id);
    if (pending && m.id !== undefined) {
      this.pending.delete(m.id);
      clearTimeout(pending.timer);
      if (m.type === 'cert') pending.resolve({ certPem: m.cert, caPem: m.ca });
      else if (m.type === 'error') pending.reject(new PalisadeError(m.code, m.message));
      return;
    }
    if (m.type === 'error') {
      const err = new PalisadeError(m.code, m.message);
      this.lastError = err;
      this.log.warn({ code: m.code, reason: m.message }, 'the collector reported an error');
      this.emit('collector-error', err);
    }
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    const wasReady = this.ready;
    this.ready = false;
    this.failPending('the collector connection was lost');
    if (wasReady) this.emit('disconnected', { code, reason });
    if (this.closed || this.noReconnect) return;
    const refused = this.lastError && this.lastError.code !== 'PALISADE_ERR_PROTOCOL' && this.lastError.code !== 'PALISADE_ERR_REGISTRATION_REFUSED';
    if (this.startWaiter && refused && this.lastError) {
      this.startWaiter.reject(this.lastError);
      this.startWaiter = undefined;
      void this.close();
      return;
    }
    const from = this.collector;
    const delay = this.moveOn() ? 0 : this.backoff.next();
    this.log[wasReady ? 'warn' : 'debug']({ collector: from, code, reason, retryInMs: delay, next: this.collector }, 'collector connection closed, reconnecting');
    this.after(delay, () => this.connect());
  }

  /**
   * The session at the current address failed or was lost: the next address is used from now on.
   * True when it has not failed in this row yet (try it at once), false once every one has (back off).
   */
  private moveOn(): boolean {
    this.current = (this.current + 1) % this.endpoints.length;
    if (this.endpoints.length > 1) this.movedSinceSnapshot = true;
    this.failedInRow++;
    if (this.failedInRow < this.endpoints.length) return true;
    this.failedInRow = 0;
    return false;
  }

  /** Renew the node certificate over the node session once it is past half its life. */
  private async renewNodeCertIfDue(): Promise<void> {
    const creds = this.creds;
    if (!creds || !this.ready) return;
    const half = creds.notBefore.getTime() + (creds.notAfter.getTime() - creds.notBefore.getTime()) / 2;
    if (Date.now() < half) return;
    try {
      const key = await generateKeyPair();
      const uri = nodeSpiffeId(creds.trustDomain, this.opts.node);
      const { certPem } = await this.requestCertificate(uri, createCsr(key, { commonName: this.opts.node, uri }));
      this.creds = saveNodeCredentials(this.opts.dataDir, this.opts.node, this.opts.caPem, key, certPem);
      this.log.info({ notAfter: this.creds.notAfter.toISOString() }, 'node certificate renewed');
    } catch (err) {
      this.log.warn({ reason: (err as Error).message }, 'node certificate renewal failed, will retry');
    }
  }

  private failPending(why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', why));
      this.pending.delete(id);
    }
  }

  private heard(): void {
    this.lastHeard = Date.now();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.after(ms, resolve);
    });
  }

  private after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private every(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.add(t);
    return t;
  }

  private clear(t: NodeJS.Timeout): void {
    clearInterval(t);
    this.timers.delete(t);
  }
}

/** Validate an outgoing message with the collector's own parser, so a bug here is an error here. */
function checked(message: MeshMessage): string {
  const frame = encodeMessage(message);
  try {
    parseMessage(frame, [message.type]);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_INVALID_ARGUMENT', (err as Error).message, { cause: err });
  }
  return frame;
}

function endpointText(e: CollectorEndpoint): string {
  return e.kind === 'tcp' ? `wss://${e.hostPort}` : `unix:${e.path}`;
}

function isCount(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

function closedError(): PalisadeError {
  return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'collector client closed');
}

function agentVersion(opts: CollectorClientOptions): string {
  if (opts.agentVersion) return opts.agentVersion;
  try {
    return String((require('../../../package.json') as { version: string }).version);
  } catch {
    return 'unknown';
  }
}
