/** Agents' frames for the OTLP sink's tests: written as the agent writes them, of flows of every kind it sends. */
import { strict as assert } from 'node:assert';
import { writeFlowJson } from '../../../../agent/flows/wire';
import type { FlowRecord } from '../../../../common/flow';
import { realisticFlow } from '../../../bench/flow-ingest';
import type { Rng } from '../../../harness/random';

/** A frame as the agent writes one (agent/mesh/collector-client.ts, agent/flows/wire.ts). */
export function agentFrame(flows: FlowRecord[], seq: number): Buffer {
  const jsons = flows.map((f) => writeFlowJson(f) ?? assert.fail(`the agent would not send ${JSON.stringify(f)}`));
  return Buffer.from(`{"type":"flows","session":"s-1","seq":${seq},"lost":0,"flows":[${jsons.join(',')}]}`);
}

/** Flows of every kind the agent sends: DNS, packet summaries, refusal counts, routes, gRPC, traces, hosts with escapes and non-ASCII. */
export function generatedFlow(rng: Rng, t: number): FlowRecord {
  const f: FlowRecord = { ...realisticFlow(rng.int(100_000), rng.pick(['node-a', 'nöde-ä']), t) };
  const kind = rng.int(6);
  if (kind === 0) Object.assign(f, { protocol: 'dns', http: undefined, destination: { ip: '10.96.0.10', port: 53, host: rng.text('ab.-é"\\', 1 + rng.int(20)) }, dns: { type: rng.pick(['A', 'AAAA']), rcode: rng.pick(['NOERROR', 'NXDOMAIN']), answers: Array.from({ length: rng.int(4) }, (_, i) => `192.0.2.${i}`) } });
  if (kind === 1) Object.assign(f, { protocol: rng.pick(['udp', 'icmp', 'arp', 'other']), http: undefined, verdict: 'denied', count: 1 + rng.int(5000), source: { ip: '*' } });
  if (kind === 2) f.traffic = { route: 'default/web', rule: rng.int(4), backend: 'default/web-v2', attempts: 1 + rng.int(3) };
  if (kind === 3 && f.http) f.http = { ...f.http, grpcStatus: rng.int(17) };
  if (kind === 4) f.traceId = rng.text('0123456789abcdef', 31) + '1';
  if (kind === 5) f.audit = { policy: 'default/audit-all', rule: rng.int(4) };
  if (rng.chance(0.2)) f.destination = { ...f.destination, host: rng.text('ab.-:_Z09"\\\u0001é😀', rng.int(12)) };
  if (rng.chance(0.1)) f.verdict = 'error';
  return f;
}
