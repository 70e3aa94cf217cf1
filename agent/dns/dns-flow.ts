/**
 * The flow record of one DNS query: `protocol: dns`, direction `outbound` (a pod's query, answered
 * by its node), from the pod to the resolver it dialled (as the kernel recorded it), the question's
 * name as `destination.host`, and `dns: {type, rcode, answers}`. Bytes are the query's and the
 * answer's sizes. Built once per query; nothing else is serialized on the query's path.
 */
import { MAX_DNS_ANSWERS, type FlowRecord } from '../../common/flow';
import { proxyFlow, type FlowOutcome, type FlowRoute } from '../proxy/proxy-flow';
import type { Workload } from '../workloads';
import type { QueryOutcome } from './answerer';

/** Longest name a record carries (the collector takes 512 characters of host); longer ones are cut. */
const MAX_HOST = 500;

export interface DnsExchange {
  pod: Workload;
  source: { ip: string; port: number };
  resolver: { ip: string; port: number };
  outcome: QueryOutcome;
  querySize: number;
  answerSize: number;
  started: number;
}

export function dnsFlow(node: string, x: DnsExchange): FlowRecord {
  return proxyFlow(node, dnsRoute(x), dnsOutcome(x.outcome), { bytesSent: x.querySize, bytesReceived: x.answerSize, durationMs: Date.now() - x.started });
}

/** Who asked which resolver what (a refused query's kind in the refusal summaries, agent/proxy/refusals.ts). */
export function dnsRoute(x: Pick<DnsExchange, 'pod' | 'source' | 'resolver' | 'outcome'>): FlowRoute {
  const o = x.outcome;
  const name = o.name === undefined ? undefined : o.name.length > MAX_HOST ? `${o.name.slice(0, MAX_HOST)}…` : o.name;
  const source = { ...x.source, workload: x.pod.name, namespace: x.pod.namespace, identity: x.pod.identity };
  const destination = { ...x.resolver, ...(name !== undefined ? { host: name } : {}) };
  const dns = { type: o.type, rcode: o.rcode, answers: o.answers.slice(0, MAX_DNS_ANSWERS) };
  return { direction: 'outbound', source, destination, protocol: 'dns', mtls: false, dns };
}

export function dnsOutcome(o: QueryOutcome): FlowOutcome {
  return { verdict: o.verdict, reason: o.truncated ? `${o.reason}-truncated` : o.reason, policy: o.policy, rule: o.rule, audit: undefined };
}
