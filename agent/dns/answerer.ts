/**
 * One query of one pod, answered: the decision order of the DNS proxy, whatever the transport.
 *
 *   1. The message must be a query the proxy serves (message.ts): else FORMERR (or nothing, for
 *      a response sent to us), NOTIMP for other opcodes, REFUSED for other classes and zone
 *      transfers.
 *   2. Mesh names (mesh-names.ts) are answered from the registry, never refused.
 *   3. The workload's EgressPolicies may refuse the name (`dns: Enforce`, authorizeDnsName):
 *      NXDOMAIN, not REFUSED. A stub resolver walks its search list past NXDOMAIN but gives up
 *      the whole lookup at REFUSED (glibc: "no recovery"), so REFUSED for
 *      `api.example.com.default.svc.cluster.local` would break the lookup of the allowed
 *      `api.example.com` that comes after it; REFUSED also sends stubs to the next nameserver,
 *      which the capture brings back here. The flow record says it was policy.
 *   4. The hosts file, then the cache, then the node's resolvers (one upstream query for any
 *      number of identical ones under way).
 * Every address answered for a name outside the mesh is remembered for the pod (pod-names.ts)
 * before the answer leaves, unless the answer went out truncated (without its records: the pod
 * asks again over TCP). What happened is returned for the flow record.
 */
import { authorizeDnsName, type PolicyIndex } from '../../common/policy';
import type { Workload } from '../workloads';
import { cacheKey, cacheTtlS, type CachedAnswer, type DnsCache } from './cache';
import type { HostsFile } from './hosts-file';
import { chainAddresses, parseQuery, type Query } from './message';
import type { MeshNames } from './mesh-names';
import { podKey, type PodNames } from './pod-names';
import { addressResponse, answerFromStored, formatErrorResponse, rcodeResponse, udpLimit } from './responses';
import type { Upstream, UpstreamResult } from './upstream';
import { CLASS_IN, DnsFormatError, OPCODE_QUERY, RCODE, rcodeName, TYPE, typeName } from './wire';

/** TTL of the proxy's own answers: mesh names change with the registry, hosts-file names with the file. */
export const MESH_TTL_S = 5;
export const HOSTS_TTL_S = 30;
/** Answer data a flow record keeps. */
const MAX_SHOWN = 16;

export interface AnswererInputs {
  mesh: MeshNames;
  hosts: HostsFile | undefined;
  cache: DnsCache;
  upstream: Pick<Upstream, 'resolve'>;
  names: PodNames;
  policies: { readonly index: PolicyIndex };
  now?: () => number;
}

/** What a query came to, for its flow record. */
export interface QueryOutcome {
  verdict: 'allowed' | 'denied' | 'error';
  /** mesh-name, hosts-file, cached, forwarded; denied-by-host, host-not-allowed, malformed-query, …; upstream-timeout, … */
  reason: string;
  policy?: string;
  rule?: number;
  /** The question's name; undefined when it could not be read. */
  name?: string;
  type: string;
  rcode: string;
  answers: string[];
  truncated: boolean;
}

export interface Answered {
  /** Undefined: nothing to send back (not even a header to answer to). */
  response: Buffer | undefined;
  outcome: QueryOutcome;
}

/** What the pod is told a name resolves to, remembered once the answer is known to carry it. */
interface Learned {
  names: readonly string[];
  addresses: Array<{ ip: string; ttl: number }>;
}

type Decided = Answered & { learned?: Learned };

type Shared = { stored: Omit<CachedAnswer, 'storedAt' | 'expiresAt'>; at: number } | { failed: Extract<UpstreamResult, { kind: 'failed' }>['reason'] };

export class Answerer {
  private readonly inflight = new Map<string, Promise<Shared>>();
  private readonly now: () => number;

  constructor(private readonly inputs: AnswererInputs) {
    this.now = inputs.now ?? Date.now;
  }

  async answer(msg: Buffer, pod: Workload, transport: 'udp' | 'tcp'): Promise<Answered> {
    let query: Query;
    try {
      query = parseQuery(msg);
    } catch (err) {
      if (!(err instanceof DnsFormatError)) throw err;
      const response = formatErrorResponse(msg);
      return { response, outcome: outcome('denied', 'malformed-query', undefined, undefined, response ? RCODE.FORMERR : undefined) };
    }
    const { response, outcome: o, learned } = await this.decide(msg, query, pod);
    if (transport === 'udp' && response && response.length > udpLimit(query)) {
      o.truncated = true;
      return { response: rcodeResponse(msg, query, RCODE.NOERROR, { truncated: true }), outcome: o };
    }
    if (learned) this.inputs.names.remember(podKey(pod), learned.names, learned.addresses);
    return { response, outcome: o };
  }

  private async decide(msg: Buffer, query: Query, pod: Workload): Promise<Decided> {
    const q = query.question;
    const refuse = (rcode: number, verdict: QueryOutcome['verdict'], reason: string, extra: Partial<QueryOutcome> = {}): Answered => ({
      response: rcodeResponse(msg, query, rcode, { authoritative: rcode === RCODE.NXDOMAIN }),
      outcome: { ...outcome(verdict, reason, q.name, q.type, rcode), ...extra },
    });
    if (query.header.opcode !== OPCODE_QUERY) return refuse(RCODE.NOTIMP, 'denied', 'unsupported-opcode');
    if (q.qclass !== CLASS_IN) return refuse(RCODE.REFUSED, 'denied', 'unsupported-class');
    if (q.type === TYPE.AXFR || q.type === TYPE.IXFR) return refuse(RCODE.REFUSED, 'denied', 'zone-transfer');

    const mesh = this.inputs.mesh.lookup(q.name, pod.namespace);
    if (mesh !== undefined) return this.own(msg, query, mesh, MESH_TTL_S, 'mesh-name');

    const v = authorizeDnsName({ source: { namespace: pod.namespace, labels: pod.labels }, name: q.name }, this.inputs.policies.index);
    if (!v.allowed) return refuse(RCODE.NXDOMAIN, 'denied', v.reason, { policy: v.policy, ...(v.rule !== undefined ? { rule: v.rule } : {}) });

    const fromFile = this.inputs.hosts?.lookup(q.name);
    if (fromFile !== undefined) {
      return { ...this.own(msg, query, fromFile, HOSTS_TTL_S, 'hosts-file'), learned: { names: [q.name], addresses: fromFile.map((ip) => ({ ip, ttl: HOSTS_TTL_S })) } };
    }

    const cacheId = cacheKey(q.name, q.type, q.qclass, query.edns?.dnssecOk ?? false);
    const hit = this.inputs.cache.get(cacheId);
    if (hit) return this.stored(msg, query, hit, hit.storedAt, 'cached');

    let shared = this.inflight.get(cacheId);
    if (shared === undefined) {
      shared = this.forward(msg, query, cacheId).finally(() => this.inflight.delete(cacheId));
      this.inflight.set(cacheId, shared);
    }
    const result = await shared;
    if ('failed' in result) return refuse(RCODE.SERVFAIL, 'error', result.failed);
    return this.stored(msg, query, result.stored, result.at, 'forwarded');
  }

  /** The proxy's own answer (mesh, hosts file): the addresses of the question's type, or NODATA. */
  private own(msg: Buffer, query: Query, addresses: string[], ttl: number, reason: string): Answered {
    const response = addressResponse(msg, query, addresses, ttl);
    const type = query.question.type;
    const shown = type === TYPE.A ? addresses.filter((ip) => !ip.includes(':')) : type === TYPE.AAAA ? addresses.filter((ip) => ip.includes(':')) : [];
    return { response, outcome: { ...outcome('allowed', reason, query.question.name, query.question.type, RCODE.NOERROR), answers: shown.slice(0, MAX_SHOWN) } };
  }

  /** An upstream answer (cached or just in) as this query's answer, with what it teaches about the pod. */
  private stored(msg: Buffer, query: Query, s: Omit<CachedAnswer, 'storedAt' | 'expiresAt'>, at: number, reason: string): Decided {
    const elapsedS = Math.floor((this.now() - at) / 1000);
    const learned = { names: s.names, addresses: s.addresses.map((a) => ({ ip: a.ip, ttl: Math.max(0, a.ttl - elapsedS) })) };
    const response = answerFromStored(msg, query, s, elapsedS);
    return { response, outcome: { ...outcome('allowed', reason, query.question.name, query.question.type, s.rcode), answers: [...s.shown] }, learned };
  }

  private async forward(msg: Buffer, query: Query, cacheId: string): Promise<Shared> {
    const r = await this.inputs.upstream.resolve(msg, query);
    if (r.kind === 'failed') return { failed: r.reason };
    const resp = r.response;
    const stored = Buffer.from(r.msg.subarray(0, resp.additionalStart));
    stored.writeUInt16BE(0, 10); // additional section dropped (OPT included: each client gets its own)
    const chain = chainAddresses(query.question.name, resp.answers);
    const answer: Omit<CachedAnswer, 'storedAt' | 'expiresAt'> = {
      msg: stored,
      questionEnd: resp.question.end,
      ttlOffsets: resp.ttlOffsets,
      flags: resp.header.flags,
      rcode: resp.header.rcode,
      addresses: chain.addresses,
      shown: resp.answers.slice(0, MAX_SHOWN).map((a) => (a.type === TYPE.CNAME ? `${a.data}.` : a.data)),
      names: chain.names,
    };
    const ttl = cacheTtlS({ rcode: resp.header.rcode, answerCount: resp.header.ancount, minAnswerTtl: resp.minAnswerTtl, negativeTtl: resp.negativeTtl }, this.inputs.cache.maxTtlS);
    this.inputs.cache.set(cacheId, answer, ttl);
    return { stored: answer, at: this.now() };
  }
}

function outcome(verdict: QueryOutcome['verdict'], reason: string, name: string | undefined, type: number | undefined, rcode: number | undefined): QueryOutcome {
  return { verdict, reason, ...(name !== undefined ? { name } : {}), type: type === undefined ? '-' : typeName(type), rcode: rcode === undefined ? '-' : rcodeName(rcode), answers: [], truncated: false };
}
