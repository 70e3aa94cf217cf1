/**
 * Egress: a connection from a local pod to an address outside the mesh. A workload that no
 * EgressPolicy selects is passed through unchanged. A `deny` entry of a selecting policy denies
 * (a deny host entry makes the proxy read the name first, as below); a workload selected only by
 * deny-only policies is otherwise allowed. Any other selected workload is default-deny:
 *
 *   - CIDR rules are decided on the original destination at once (raw TCP needs nothing more);
 *   - host rules need the name the client asked for: the TLS SNI (read from the ClientHello,
 *     TLS is never terminated) or the HTTP Host of each request; the original destination must
 *     be an address the node's DNS proxy answered THIS pod for that name, still within its TTL
 *     (agent/dns/pod-names.ts): a spoofed SNI/Host, an address hard-coded or resolved another
 *     way, or another pod's lookup does not open anything;
 *   - anything else is closed before a byte reaches the destination.
 *
 * Denied HTTP requests get Istio's 403; denied TLS and TCP connections are reset.
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { FlowEndpoint, FlowProtocol, FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import { authorizeEgress, type EgressRequest, type EgressVerdict } from '../../common/policy';
import { podKey, type ResolvedNames } from '../dns/pod-names';
import type { Workload } from '../workloads';
import { HttpFront, type HttpDecision, type HttpSession, type NormalizedRequest } from './http';
import { connectTcp, errorCode } from './connect';
import { splice, timeoutReason } from './pipe';
import { endOutcome, httpCounts, httpLine, httpOutcome, outcomeOf, proxyFlow, type FlowCounts, type FlowOutcome } from './proxy-flow';
import { looksLikeHttp, parseClientHello, sniff } from './sniff';
import { closeWhenDenied, denial, type EnforcementInputs } from './tracker';

export interface EgressInputs extends EnforcementInputs {
  /** What each pod resolved through the DNS proxy. */
  names: ResolvedNames;
}

export interface EgressContext {
  source: FlowEndpoint & { ip: string; port: number };
  workload: Workload;
  destination: { ip: string; port: number };
}

export class Egress {
  private readonly log: Logger;

  /** One HTTP front for every plain-HTTP egress connection; each brings its own session. */
  private readonly front: HttpFront;

  constructor(private readonly inputs: EgressInputs) {
    this.log = inputs.log.child({ component: 'egress' });
    this.front = new HttpFront({ ...(inputs.httpLimits ? { limits: inputs.httpLimits } : {}), log: this.log });
  }

  /** Take over a client connection whose destination is outside the mesh. */
  async handle(client: net.Socket, ctx: EgressContext): Promise<void> {
    const started = Date.now();
    const first = authorizeEgress(this.request(ctx), this.inputs.policies.index);
    if (!first.needsHost) return first.allowed ? this.pass(client, ctx, first, 'tcp', started) : this.deny(client, ctx, first, 'tcp', started);

    // The name can still change it (a host rule could allow it, a deny host entry deny it): look at the first bytes.
    client.pause();
    const sniffed = await sniff(client, this.inputs.sniffTimeoutMs, this.inputs.limits.sniff.hold(ctx.source.ip));
    if (sniffed.kind === 'closed') {
      client.destroy();
      return;
    }
    if (sniffed.kind === 'over-budget') {
      client.resetAndDestroy();
      this.refusal(ctx, 'tcp', { verdict: 'denied', reason: sniffed.reason }, started, 'egress refused: the sniff budget is spent');
      return;
    }
    if (sniffed.kind === 'http') return this.serveHttp(client, ctx, sniffed.head);
    if (sniffed.kind === 'tls' && sniffed.sni) {
      const host = sniffed.sni;
      const resolved = this.inputs.names.addressesFor(podKey(ctx.workload), host);
      const v = authorizeEgress({ ...this.request(ctx), host, resolved }, this.inputs.policies.index);
      const named = { ...ctx, destination: { ...ctx.destination, host } };
      if (!v.allowed) return this.deny(client, named, v, 'tls', started);
      return this.pass(client, named, v, 'tls', started, sniffed.head, { host, resolved });
    }
    // Raw TCP, or TLS without a name: the verdict without a name stands.
    const protocol = sniffed.kind === 'tls' ? 'tls' : 'tcp';
    return first.allowed ? this.pass(client, ctx, first, protocol, started, sniffed.head) : this.deny(client, ctx, first, protocol, started);
  }

  private request(ctx: EgressContext): EgressRequest {
    return { source: { namespace: ctx.workload.namespace, labels: ctx.workload.labels }, destination: ctx.destination };
  }

  private deny(client: Duplex, ctx: EgressContext & { destination: { host?: string } }, v: EgressVerdict, protocol: FlowProtocol, started: number): void {
    (client as net.Socket).resetAndDestroy?.() ?? client.destroy();
    this.refusal(ctx, protocol, outcomeOf(v), started, 'egress denied by policy');
  }

  /** One refused connection to the refusal log: logged and recorded once per kind and interval. */
  private refusal(
    ctx: EgressContext & { destination: { host?: string } },
    protocol: FlowProtocol,
    outcome: FlowOutcome,
    started: number,
    message: string,
    more?: { level: 'info'; fields: Record<string, unknown> },
  ): void {
    this.inputs.limits.refusals.refuse({
      route: { direction: 'egress', source: ctx.source, destination: ctx.destination, protocol, mtls: false },
      outcome,
      started,
      message,
      ...(more ?? {}),
    });
  }

  private async pass(
    client: net.Socket,
    ctx: EgressContext & { destination: { host?: string } },
    v: EgressVerdict,
    protocol: FlowProtocol,
    started: number,
    head?: Buffer,
    named?: { host: string; resolved: string[] },
  ): Promise<void> {
    client.pause();
    let upstream: net.Socket;
    try {
      upstream = await this.connect(ctx.destination);
    } catch (err) {
      client.resetAndDestroy();
      this.refusal(ctx, protocol, failed(v, 'upstream-failed'), started, 'egress connection failed', { level: 'info', fields: { error: errorCode(err as Error) } });
      return;
    }
    const untrack = closeWhenDenied(this.inputs.tracker, this.log, {
      recheck: (index) => denial(authorizeEgress({ ...this.request(ctx), ...(named ?? {}) }, index)),
      source: ctx.source,
      destination: ctx.destination,
      message: CLOSED_BY_POLICY,
      streams: [client, upstream],
    });
    if (head?.length) upstream.write(head);
    // Passed without looking: note the name the client asks for in its first bytes (never waited
    // for, never trusted for a decision), so flows say where a workload went (`egress learn`).
    let seen: { host: string; protocol: FlowProtocol } | undefined;
    if (head === undefined) client.once('data', (c: Buffer) => (seen = nameIn(c)));
    client.resume();
    splice(
      client,
      upstream,
      (r) => {
        untrack();
        const counts = { bytesSent: r.bytesSent + (head?.length ?? 0), bytesReceived: r.bytesReceived, durationMs: Date.now() - started };
        const where = seen ? { ...ctx, destination: { ...ctx.destination, host: seen.host } } : ctx;
        const outcome = endOutcome(v, r.error);
        if (!r.error && r.timeout) outcome.reason = timeoutReason(r.timeout);
        this.inputs.flows.record(this.flow(where, seen?.protocol ?? protocol, outcome, counts));
      },
      this.inputs.limits.timeouts,
    );
  }

  private serveHttp(client: net.Socket, ctx: EgressContext, head: Buffer): void {
    let lastHost: { host: string; resolved: string[] } | undefined;
    const session: HttpSession = {
      authorize: async (req: NormalizedRequest): Promise<HttpDecision> => {
        const host = hostOnly(req.host);
        const resolved = host ? this.inputs.names.addressesFor(podKey(ctx.workload), host) : [];
        const v = authorizeEgress({ ...this.request(ctx), ...(host ? { host, resolved } : {}) }, this.inputs.policies.index);
        // A denial is logged by the front and recorded (with policy) in the flow: nothing more here.
        if (v.allowed) lastHost = host ? { host, resolved } : undefined;
        return { ...v };
      },
      connect: () => this.connect(ctx.destination),
      onRecord: (r) => {
        const named = { ...ctx, destination: { ...ctx.destination, host: hostOnly(r.host) } };
        this.inputs.flows.record(this.flow(named, 'http', httpOutcome(r), httpCounts(r), httpLine(r)));
      },
    };
    const untrack = closeWhenDenied(this.inputs.tracker, this.log, {
      recheck: (index) => {
        const now = authorizeEgress({ ...this.request(ctx), ...(lastHost ?? {}) }, index);
        return now.needsHost ? undefined : denial(now);
      },
      source: ctx.source,
      destination: ctx.destination,
      message: CLOSED_BY_POLICY,
      streams: [client], // closing it closes its upstream connection too
    });
    client.once('close', untrack);
    this.front.handle(client, head, session);
  }

  private connect(dst: { ip: string; port: number }): Promise<net.Socket> {
    return connectTcp({ host: dst.ip, port: dst.port, timeoutMs: this.inputs.connectTimeoutMs });
  }

  private flow(ctx: EgressContext & { destination: { host?: string } }, protocol: FlowProtocol, outcome: FlowOutcome, counts: FlowCounts, http?: FlowRecord['http']): FlowRecord {
    return proxyFlow(this.inputs.node, { direction: 'egress', source: ctx.source, destination: ctx.destination, protocol, mtls: false, http }, outcome, counts);
  }
}

/** An egress verdict whose connection then failed: the error is the reason, the policy stays. */
function failed(v: EgressVerdict, reason: string): FlowOutcome {
  return { ...outcomeOf(v), verdict: 'error', reason };
}

const CLOSED_BY_POLICY = 'egress connection closed: policy now denies it';

const HOST_HEADER = /\r\nhost:[ \t]*([^\r\n]{1,300})\r\n/i;

/** The TLS SNI or HTTP Host in a connection's first chunk, when it holds a whole one. */
export function nameIn(chunk: Buffer): { host: string; protocol: FlowProtocol } | undefined {
  if (chunk[0] === 0x16) {
    const hello = parseClientHello(chunk);
    return 'complete' in hello && hello.complete && hello.sni ? { host: hello.sni.toLowerCase(), protocol: 'tls' } : undefined;
  }
  if (looksLikeHttp(chunk) !== 'yes') return undefined;
  const m = HOST_HEADER.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 8192)));
  const host = m ? hostOnly(m[1]!.trim()) : '';
  return /^[a-z0-9._-]{1,253}$/.test(host) ? { host, protocol: 'http' } : undefined;
}

/** `Example.com:8080` → `example.com`; `[::1]:80` → `::1`. */
export function hostOnly(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']') >= 0 ? host.indexOf(']') : undefined);
  const colon = host.lastIndexOf(':');
  return (colon >= 0 ? host.slice(0, colon) : host).toLowerCase().replace(/\.$/, '');
}
