/**
 * A node session: an agent authenticated by its node certificate, which may only act as that
 * node. It says `hello` first, then `register`s its workloads and sends `csr`s; the collector
 * pushes `registry` snapshots. The CA signs a workload identity only while this node has a
 * workload with that identity registered, and only for a CSR whose one URI SAN is it.
 */
import type WebSocket from 'ws';
import { isPalisadeError, PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import {
  CloseCode,
  NODE_FIRST,
  NODE_REQUESTS,
  parseMessage,
  type CsrMessage,
  type HelloMessage,
  type FlowsMessage,
  type PolicyStatusMessage,
  type RegisterMessage,
} from '../common/mesh-protocol';
import { certInfo, nodeSpiffeId, readCsr } from '../common/pki';
import type { CertificateAuthority } from './mesh-ca';
import type { WorkloadRegistry } from './registry';
import { closeWith, refuseFrame, sendTo } from './session-io';

/** Where node sessions are tracked: one current session per node. */
export interface NodeSessionHub {
  /** Make `session` the node's current one; returns the one it replaces, if any. */
  claim(node: string, session: NodeSession): NodeSession | undefined;
  /** Forget `session`; true when it was the node's current one. */
  release(node: string, session: NodeSession): boolean;
}

export interface NodeSessionDeps {
  ca: CertificateAuthority;
  registry: WorkloadRegistry;
  hub: NodeSessionHub;
  workloadCertTtlSeconds: number;
  nodeCertTtlSeconds: number;
  log: Logger;
  /** Where flow batches go (the flow store); without one, batches are refused. */
  flows?: FlowIngest;
  /** The current `policies` frame, pushed right after hello (none without a policy source). */
  policiesFrame?: () => string | undefined;
  /** The agent says which policy version it enforces. */
  policyStatus?: (node: string, m: PolicyStatusMessage) => void;
}

/** Takes one batch of an agent's flows; throws when it cannot be stored (nothing is acknowledged then). */
export interface FlowIngest {
  ingest(node: string, batch: Pick<FlowsMessage, 'session' | 'seq' | 'lost' | 'flows'>): void;
}

const MAX_ERROR_TEXT = 1024;

export class NodeSession {
  private ready = false;
  private readonly log: Logger;

  constructor(
    readonly ws: WebSocket,
    /** From the client certificate; the session can act as this node only. */
    readonly node: string,
    private readonly deps: NodeSessionDeps,
  ) {
    this.log = deps.log.child({ session: 'node', node });
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on('close', (code) => this.onClose(code));
    // ws reports frames over maxPayload (then closes 1009) and broken framing here
    ws.on('error', (err: Error & { code?: string }) => this.log.warn({ reason: err.message, code: err.code }, 'session error'));
  }

  /** True once hello was accepted: the session receives registry snapshots. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Push a pre-encoded registry frame. */
  push(frame: string): void {
    if (this.ready) sendTo(this.ws, frame, this.log);
  }

  /** Another session for this node took over. */
  replace(): void {
    this.log.warn({ reason: 'a newer session for this node said hello' }, 'session replaced');
    this.ready = false;
    closeWith(this.ws, CloseCode.REPLACED, 'replaced by a newer session');
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    try {
      if (isBinary) throw new PalisadeError('PALISADE_ERR_PROTOCOL', 'binary frames are not accepted');
      if (!this.ready) this.hello(parseMessage(data, NODE_FIRST));
      else {
        const message = parseMessage(data, NODE_REQUESTS);
        if (message.type === 'register') this.register(message);
        else if (message.type === 'flows') this.flows(message);
        else if (message.type === 'policy-status') this.deps.policyStatus?.(this.node, message);
        else this.csr(message);
      }
    } catch (err) {
      if (isPalisadeError(err) && err.code === 'PALISADE_ERR_PROTOCOL') return refuseFrame(this.ws, err, this.log);
      this.log.error({ err }, 'session failed');
      closeWith(this.ws, 1011, 'internal error');
    }
  }

  private hello(m: HelloMessage): void {
    if (m.node !== this.node) {
      this.log.warn({ claimed: m.node, reason: 'hello for another node' }, 'session refused');
      sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_UNAUTHENTICATED', message: `this certificate is for node ${this.node}, not ${m.node}` }, this.log);
      return closeWith(this.ws, CloseCode.FORBIDDEN, 'wrong node');
    }
    this.deps.hub.claim(this.node, this)?.replace();
    this.ready = true;
    this.log.info({ nodeAddress: m.nodeAddress, agentVersion: m.agentVersion }, 'agent connected');
    this.deps.registry.nodeOnline(this.node, m.nodeAddress); // pushes a snapshot, to this session too
    const policies = this.deps.policiesFrame?.();
    if (policies) sendTo(this.ws, policies, this.log);
  }

  /** Store a batch, then acknowledge it: the agent resends what was never acknowledged. */
  private flows(m: FlowsMessage): void {
    const sink = this.deps.flows;
    if (!sink) {
      sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_PROTOCOL', message: 'this collector does not store flows' }, this.log);
      return;
    }
    sink.ingest(this.node, m);
    sendTo(this.ws, { type: 'flows-ack', session: m.session, seq: m.seq }, this.log);
  }

  private register(m: RegisterMessage): void {
    const result = this.deps.registry.register(this.node, m.workloads, m.services ?? []);
    this.log.info({ workloads: result.accepted, refused: result.refused.length }, 'workloads registered');
    if (result.refused.length === 0) return;
    this.log.warn({ refused: result.refused.slice(0, 20) }, 'workloads refused');
    const more = result.refused.length > 1 ? ` (and ${result.refused.length - 1} more)` : '';
    const message = `registration refused for ${result.refused[0]}${more}`.slice(0, MAX_ERROR_TEXT);
    sendTo(this.ws, { type: 'error', code: 'PALISADE_ERR_REGISTRATION_REFUSED', message }, this.log);
  }

  private csr(m: CsrMessage): void {
    const refuse = (reason: string): void => {
      this.log.warn({ identity: m.identity.slice(0, 256), reason }, 'csr refused');
      const message = `csr refused: ${reason}`.slice(0, MAX_ERROR_TEXT);
      sendTo(this.ws, { type: 'error', id: m.id, code: 'PALISADE_ERR_CSR_REFUSED', message }, this.log);
    };
    const nodeIdentity = nodeSpiffeId(this.deps.ca.trustDomain, this.node);
    const forNode = m.identity === nodeIdentity;
    if (!forNode && !this.deps.registry.hasIdentity(this.node, m.identity)) {
      return refuse(`${m.identity.slice(0, 256)} is not the identity of a workload registered on node ${this.node}`);
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
    const info = certInfo(cert);
    this.log.info({ identity: m.identity, serialNumber: info.serialNumber, notAfter: info.notAfter.toISOString() }, 'certificate issued');
    sendTo(this.ws, { type: 'cert', id: m.id, cert, ca: this.deps.ca.certPem }, this.log);
  }

  private onClose(code: number): void {
    const wasCurrent = this.deps.hub.release(this.node, this);
    this.ready = false;
    this.log.info({ code, current: wasCurrent }, 'agent disconnected');
    if (wasCurrent) this.deps.registry.nodeOffline(this.node);
  }
}
