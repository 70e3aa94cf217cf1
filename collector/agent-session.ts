/**
 * A node session: an agent authenticated by its node certificate, which may only act as that
 * node. It says `hello` first, then `register`s its workloads and sends `csr`s; the collector
 * sends a `registry` snapshot (or, to a reconnecting agent, the deltas it missed), then pushes
 * every change as a `registry-delta`. A node registers only workloads its join binding allows (scope,
 * pod range; and, with a pod authority, pods that run on it: nodes/workload-admission.ts). The
 * CA signs a workload identity only while this node has a workload with that identity
 * registered, the binding (and authority) still allow it, and only for a CSR whose one URI SAN
 * is it. Every refusal is one warn line and an audit record.
 *
 * With a pod authority (Kubernetes), the node's last registration is decided again whenever the
 * authority's view of the node changes (`readmit`: a pod created, moved, deleted, its IP set);
 * until the authority has listed the pods once, a registration waits (nothing of it is admitted)
 * and workload certificates are refused.
 */
import type WebSocket from 'ws';
import { isPalisadeError, PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import {
  CloseCode,
  NODE_FIRST,
  NODE_REQUESTS,
  parseMessage,
  REGISTRY_DEFLATE,
  type CsrMessage,
  type HelloMessage,
  type FlowsMessage,
  type PolicyStatusMessage,
  type RegisterMessage,
  type RegistryPosition,
} from '../common/mesh-protocol';
import { parseSpiffeId } from '../common/identity';
import { certInfo, nodeSpiffeId, readCsr } from '../common/pki';
import type { TrustEvent, TrustRefusals } from './audit/trust-refusals';
import { countRecords, flowsEnvelope, type FlowsEnvelope } from './flows/flows-frame';
import { FrameBudget, PacedFrames } from './frame-budget';
import type { CertificateAuthority } from './mesh-ca';
import type { NodeBinding } from './nodes/node-binding';
import type { NodePods } from './nodes/node-pods';
import type { NodeRecords } from './nodes/node-records';
import type { PresentedKey } from './nodes/node-trust';
import { certificateRefusal, registrationRefusal } from './nodes/workload-admission';
import type { WorkloadRegistry } from './registry';
import { closeWith, refuseFrame, sendTo } from './session-io';
import { pullFrom, wake } from './send-queue';

/** Where node sessions are tracked: one current session per node. */
export interface NodeSessionHub {
  /** Why `session` may not take over its node from the current session (nodes/node-trust.ts), or undefined. */
  takeoverRefusal(node: string, session: NodeSession): string | undefined;
  /** Make `session` the node's current one; returns the one it replaces, if any. */
  claim(node: string, session: NodeSession): NodeSession | undefined;
  /** Forget `session`; true when it was the node's current one. */
  release(node: string, session: NodeSession): boolean;
}

export interface NodeSessionDeps {
  ca: CertificateAuthority;
  registry: WorkloadRegistry;
  hub: NodeSessionHub;
  /** Each node's binding and certificates. */
  nodes: NodeRecords;
  refusals: TrustRefusals;
  /** Which pods run on which node, when the collector has such an authority (Kubernetes). */
  pods?: NodePods;
  /** The peer's address, for refusal records. */
  remote: string;
  workloadCertTtlSeconds: number;
  nodeCertTtlSeconds: number;
  log: Logger;
  /** Where flow batches go (the flow store); without one, batches are refused. */
  flows?: FlowIngest;
  /** The current `policies` frame, pushed right after hello (none without a policy source). */
  policiesFrame?: () => string | undefined;
  /** The agent says which policy version it enforces. */
  policyStatus?: (node: string, m: PolicyStatusMessage) => void;
  /** How long a superseded session may still deliver flows (default SUPERSEDED_GRACE_MS). */
  supersededGraceMs?: number;
}

/**
 * Takes one batch of an agent's flows: stored when it returns, or when its promise resolves; it
 * throws (or rejects) when the batch cannot be stored — nothing is acknowledged then, and
 * PALISADE_ERR_COLLECTOR_UNAVAILABLE means "send it again later".
 */
export interface FlowIngest {
  /** `frame`: the agent's frame the batch was parsed from (flow sinks read the flows from its bytes). */
  ingest(node: string, batch: Pick<FlowsMessage, 'session' | 'seq' | 'lost' | 'flows'>, frame?: Uint8Array): void | Promise<void>;
  /**
   * The same for a flows frame not parsed here, only its envelope read (flows/flows-frame.ts):
   * the store parses and checks it (PALISADE_ERR_PROTOCOL, nothing stored, when it is refused).
   */
  ingestFrame?(node: string, envelope: FlowsEnvelope, frame: Buffer, flows: number): Promise<void>;
}

const MAX_ERROR_TEXT = 1024;
/** How long a superseded session may go on delivering its last flows (above any drain timeout). */
export const SUPERSEDED_GRACE_MS = 11 * 60_000;

export class NodeSession {
  private ready = false;
  /**
   * Where the agent's registry stands once it has every registry frame handed to its socket
   * (undefined: no registry yet); the next frame is computed from it when the session can send.
   */
  private registryAt: RegistryPosition | undefined;
  /** The frame the send queue peeked and where it takes the agent. */
  private registryNext: ReturnType<WorkloadRegistry['nextFrame']>;
  /** Registry frames flow (after hello, until superseded). */
  private registryOn = false;
  /** The policies frame hello gets is still to be sent. */
  private helloPolicies = false;
  /** A newer session of this node said hello: this one only delivers its last flows. */
  private superseded = false;
  /** The agent takes registry frames deflated (hello `accepts`). */
  private deflate = false;
  /** `registryNext` is being deflated: it is the next frame, whatever changes meanwhile. */
  private deflating = false;
  private notStoredCount = 0;
  private readonly log: Logger;
  /** Frames at the pace this session's budget allows (frame-budget.ts). */
  private readonly frames: PacedFrames;
  /** The node's last registration, decided again when the pod authority changes (`readmit`). */
  private lastRegister: RegisterMessage | undefined;
  /** What that registration's last decision refused, to report a re-decision only when it differs. */
  private lastRefused = '';

  constructor(
    readonly ws: WebSocket,
    /** From the client certificate; the session can act as this node only. */
    readonly node: string,
    /** The certificate the session was opened with: proof of the node key. */
    readonly key: PresentedKey,
    private readonly deps: NodeSessionDeps,
  ) {
    this.log = deps.log.child({ session: 'node', node });
    this.frames = new PacedFrames(ws, (data, isBinary) => this.onFrame(data, isBinary));
    pullFrom(ws, {
      peek: () => {
        if (!this.registryOn || this.superseded || !this.deps.registry.sending) return undefined;
        // a frame waiting to be deflated is kept: a newer one would need deflating again (and again, under a churn)
        if (!this.deflating) this.registryNext = this.deps.registry.nextFrame(this.registryAt);
        if (!this.registryNext) {
          this.sendHelloPolicies();
          return undefined;
        }
        const frame = this.registryNext.frame;
        if (!this.deflate) return frame.bytes;
        // deflated once for every session (shared-frame.ts); until then nothing, and a wake when it is
        const out = frame.forDeflating(() => wake(this.ws));
        this.deflating = out === undefined;
        return out === undefined ? undefined : out.binary ? { binary: out.data } : out.data;
      },
      take: () => {
        this.registryAt = this.registryNext?.to;
        this.registryNext = undefined;
        this.sendHelloPolicies();
      },
    });
    ws.on('message', (data, isBinary) => this.frames.receive(data as Buffer, isBinary));
    ws.on('close', (code) => this.onClose(code));
    // ws reports frames over maxPayload (then closes 1009) and broken framing here
    ws.on('error', (err: Error & { code?: string }) => this.log.warn({ reason: err.message, code: err.code }, 'session error'));
  }

  /** True once hello was accepted: the session receives registry snapshots. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Push a pre-encoded frame (policies), as text or its UTF-8 bytes. */
  push(frame: string | Buffer): void {
    if (this.ready && !this.superseded) sendTo(this.ws, frame, this.log);
  }

  /**
   * The registry changed: the session pulls what its agent misses when its socket can take it
   * (send-queue.ts), so an agent that is behind gets the newest state, not every frame queued.
   */
  registryChanged(): void {
    if (this.registryOn && !this.superseded) wake(this.ws);
  }

  /** The pod authority's view of this node changed: decide its last registration again. */
  readmit(): void {
    if (!this.ready || this.superseded || !this.lastRegister) return;
    try {
      this.register(this.lastRegister, 'readmit');
    } catch (err) {
      this.log.error({ err }, 'cannot decide the registration again');
    }
  }

  /** The collector no longer accepts this session's certificate (the node was revoked). */
  revoke(reason: string): void {
    this.log.warn({ reason }, 'session closed');
    this.ready = false;
    sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_UNAUTHENTICATED', message: reason.slice(0, MAX_ERROR_TEXT) }, this.log);
    closeWith(this.ws, CloseCode.FORBIDDEN, 'node certificate revoked');
  }

  /**
   * Another session for this node said hello — a successor agent taking the node over, or the
   * same agent after a reconnect. This one gets nothing pushed any more and may only deliver
   * flows (a draining agent's last ones) until it closes, or until the grace period ends.
   */
  supersede(): void {
    if (this.superseded) return;
    this.log.info({ reason: 'a newer session for this node said hello' }, 'session superseded: accepting its last flows only');
    this.superseded = true;
    setTimeout(() => closeWith(this.ws, CloseCode.REPLACED, 'replaced by a newer session'), this.deps.supersededGraceMs ?? SUPERSEDED_GRACE_MS).unref();
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    try {
      if (isBinary) throw new PalisadeError('PALISADE_ERR_PROTOCOL', 'binary frames are not accepted');
      if (!this.ready) {
        this.frames.charge(FrameBudget.cost('hello'));
        this.hello(parseMessage(data, NODE_FIRST));
      } else {
        const envelope = this.deps.flows?.ingestFrame ? flowsEnvelope(data) : undefined;
        if (envelope) return this.flowsFrame(envelope, data);
        const message = parseMessage(data, NODE_REQUESTS);
        this.frames.charge(FrameBudget.cost(message.type, message.type === 'flows' ? message.flows.length : 0));
        if (this.superseded && message.type !== 'flows') {
          throw new PalisadeError('PALISADE_ERR_PROTOCOL', `a superseded session may only deliver flows, not ${message.type}`);
        }
        if (message.type === 'register') this.register(message);
        else if (message.type === 'flows') this.flows(message, data);
        else if (message.type === 'policy-status') this.deps.policyStatus?.(this.node, message);
        else if (message.type === 'registry-sync') this.syncRegistry(message.since);
        else this.csr(message);
      }
    } catch (err) {
      if (isPalisadeError(err) && err.code === 'PALISADE_ERR_PROTOCOL') {
        this.audit('protocol', err.message);
        return refuseFrame(this.ws, err, this.log);
      }
      this.log.error({ err }, 'session failed');
      closeWith(this.ws, 1011, 'internal error');
    }
  }

  private hello(m: HelloMessage): void {
    if (m.node !== this.node) {
      this.log.warn({ claimed: m.node, reason: 'hello for another node' }, 'session refused');
      this.audit('node-certificate', `hello for node ${m.node}`);
      sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_UNAUTHENTICATED', message: `this certificate is for node ${this.node}, not ${m.node}` }, this.log);
      return closeWith(this.ws, CloseCode.FORBIDDEN, 'wrong node');
    }
    const takeover = this.deps.hub.takeoverRefusal(this.node, this);
    const address = this.deps.registry.addressRefusal(this.node, m.nodeAddress);
    if (takeover !== undefined || address !== undefined) {
      const [event, reason] = takeover !== undefined ? (['takeover', takeover] as const) : (['node-certificate', address!] as const);
      this.log.warn({ reason }, 'session refused');
      this.audit(event, reason);
      sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_UNAUTHENTICATED', message: `session refused: ${reason}` }, this.log);
      return closeWith(this.ws, CloseCode.FORBIDDEN, 'session refused');
    }
    this.deps.hub.claim(this.node, this)?.supersede();
    this.ready = true;
    this.deflate = m.accepts?.includes(REGISTRY_DEFLATE) === true;
    this.log.info({ nodeAddress: m.nodeAddress, agentVersion: m.agentVersion }, 'agent connected');
    this.deps.registry.nodeOnline(this.node, m.nodeAddress); // a delta to every other session
    this.helloPolicies = true;
    this.syncRegistry(m.since);
  }

  /** The current `policies` frame once, right behind the first registry frame after hello. */
  private sendHelloPolicies(): void {
    if (!this.helloPolicies) return;
    this.helloPolicies = false;
    const policies = this.deps.policiesFrame?.();
    if (policies) sendTo(this.ws, policies, this.log);
  }

  /** The agent's registry is at `since`: from now on it is sent what it misses from there (deltas, or a snapshot). */
  private syncRegistry(since: RegistryPosition | undefined): void {
    this.registryAt = since;
    this.registryNext = undefined;
    this.deflating = false;
    this.registryOn = true;
    wake(this.ws);
  }

  /** Store a batch, then acknowledge it: the agent resends what was never acknowledged. */
  private flows(m: FlowsMessage, frame: Buffer): void {
    const sink = this.deps.flows;
    if (!sink) {
      sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_PROTOCOL', message: 'this collector does not store flows' }, this.log);
      return;
    }
    const ack = (): void => {
      sendTo(this.ws, { type: 'flows-ack', session: m.session, seq: m.seq }, this.log);
    };
    let stored: void | Promise<void>;
    try {
      stored = sink.ingest(this.node, m, frame);
    } catch (err) {
      if (!isPalisadeError(err) || err.code !== 'PALISADE_ERR_COLLECTOR_UNAVAILABLE') throw err;
      return this.notStored(m.seq, m.flows.length, err);
    }
    if (stored) stored.then(ack, (err: Error) => this.notStored(m.seq, m.flows.length, err));
    else ack();
  }

  /** A flows frame handed to the store unparsed: acknowledged once stored, refused (audited, session closed) as any bad frame. */
  private flowsFrame(envelope: FlowsEnvelope, frame: Buffer): void {
    const flows = countRecords(frame);
    this.frames.charge(FrameBudget.cost('flows', flows));
    this.deps.flows!.ingestFrame!(this.node, envelope, frame, flows).then(
      () => sendTo(this.ws, { type: 'flows-ack', session: envelope.session, seq: envelope.seq }, this.log),
      (err: Error) => {
        if (!isPalisadeError(err) || err.code !== 'PALISADE_ERR_PROTOCOL') return this.notStored(envelope.seq, flows, err);
        this.audit('protocol', err.message);
        refuseFrame(this.ws, err, this.log);
      },
    );
  }

  /** A batch not stored (the writer busy or failed) is not acknowledged: the agent sends it again. One line per 100. */
  private notStored(seq: number, flows: number, err: Error): void {
    if (this.notStoredCount++ % 100 === 0) {
      this.log.warn({ seq, flows, reason: err.message, times: this.notStoredCount }, 'flow batch not stored now; the agent sends it again');
    }
  }

  /**
   * Decide `m` (the agent's, or its last one again on `readmit`). A decision made again is
   * reported (warn, audit, error to the agent) only when what it refuses changed.
   */
  private register(m: RegisterMessage, how: 'agent' | 'readmit' = 'agent'): void {
    this.lastRegister = m;
    if (this.deps.pods?.hasSynced === false) {
      this.log.info({ workloads: m.workloads.length }, 'registration waits for the first list of the cluster\'s pods');
      return;
    }
    const binding = this.binding();
    const pods = this.deps.pods?.podsOn(this.node);
    const result = this.deps.registry.register(this.node, m.workloads, m.services ?? [], (w) =>
      binding ? registrationRefusal(binding, w, pods) : `node ${this.node} has no join record`,
    );
    const refusedNow = result.refused.join('\n');
    const repeated = how === 'readmit' && refusedNow === this.lastRefused;
    this.lastRefused = refusedNow;
    if (repeated) return;
    this.log.info({ workloads: result.accepted, refused: result.refused.length, ...(how === 'readmit' ? { readmitted: true } : {}) }, 'workloads registered');
    if (result.refused.length === 0) return;
    this.log.warn({ refused: result.refused.slice(0, 20) }, 'workloads refused');
    const more = result.refused.length > 1 ? ` (and ${result.refused.length - 1} more)` : '';
    // One line naming the first refused workload (namespace/name: service account, node and why).
    const reason = `${result.refused.length} of ${m.workloads.length} workloads refused: ${result.refused[0]}${more}`.slice(0, MAX_ERROR_TEXT);
    this.audit('registration', reason, { refused: result.refused.slice(0, 20) });
    const message = `registration refused for ${result.refused[0]}${more}`.slice(0, MAX_ERROR_TEXT);
    sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_REGISTRATION_REFUSED', message }, this.log);
  }

  private csr(m: CsrMessage): void {
    const refuse = (reason: string): void => {
      this.log.warn({ identity: m.identity.slice(0, 256), reason }, 'csr refused');
      this.audit('csr', reason, { identity: m.identity.slice(0, 256) });
      const message = `csr refused: ${reason}`.slice(0, MAX_ERROR_TEXT);
      sendTo(this.ws, { type: 'error', id: m.id, code: 'PALISADE_ERR_CSR_REFUSED', message }, this.log);
    };
    const nodeIdentity = nodeSpiffeId(this.deps.ca.trustDomain, this.node);
    const forNode = m.identity === nodeIdentity;
    if (!forNode && this.deps.pods?.hasSynced === false) {
      return refuse('the collector has not listed the cluster\'s pods yet: no workload certificates until it has (fail closed)');
    }
    if (!forNode && !this.deps.registry.hasIdentity(this.node, m.identity)) {
      return refuse(`${m.identity.slice(0, 256)} is not the identity of a workload registered on node ${this.node}`);
    }
    const binding = this.binding();
    if (!binding) return refuse(`node ${this.node} has no join record`);
    const parts = parseSpiffeId(m.identity);
    if (!forNode && parts) {
      const why = certificateRefusal(binding, parts.namespace, parts.serviceAccount, this.deps.pods?.podsOn(this.node));
      if (why) return refuse(why);
    }
    let csr;
    try {
      csr = readCsr(m.csr);
    } catch (err) {
      return refuse(isPalisadeError(err) ? err.message : 'unreadable CSR');
    }
    if (csr.uris.length !== 1 || csr.uris[0] !== m.identity) {
      return refuse(`the CSR's URI SAN ${JSON.stringify(csr.uris.join(', ').slice(0, 256))} is not ${m.identity}`);
    }
    const cert = this.deps.ca.issue(csr.publicKeyPem, {
      uri: m.identity,
      usage: forNode ? 'node' : 'workload',
      commonName: forNode ? this.node : undefined,
      ttlSeconds: forNode ? this.deps.nodeCertTtlSeconds : this.deps.workloadCertTtlSeconds,
    });
    if (forNode) this.deps.nodes.renewed(this.node, cert); // the renewed key proves this node from now on
    const info = certInfo(cert);
    this.log.info({ identity: m.identity, serialNumber: info.serialNumber, notAfter: info.notAfter.toISOString() }, 'certificate issued');
    sendTo(this.ws, { type: 'cert', id: m.id, cert, ca: this.deps.ca.certPem }, this.log);
  }

  /** The node's binding from its join record (undefined once it was revoked). */
  private binding(): NodeBinding | undefined {
    return this.deps.nodes.record(this.node);
  }

  private audit(event: TrustEvent, reason: string, detail?: Record<string, unknown>): void {
    this.deps.refusals.refused({ event, node: this.node, remote: this.deps.remote, reason, ...(detail ? { detail } : {}) });
  }

  private onClose(code: number): void {
    this.frames.stop();
    const wasCurrent = this.deps.hub.release(this.node, this);
    this.ready = false;
    this.log.info({ code, current: wasCurrent }, 'agent disconnected');
    if (wasCurrent) this.deps.registry.nodeOffline(this.node);
  }
}
