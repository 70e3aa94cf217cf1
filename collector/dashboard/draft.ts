/**
 * Policies drafted from map edges the operator selected: for edges into a workload, one ALLOW
 * AuthorizationPolicy per destination allowing exactly the callers seen (their SPIFFE
 * principals, or their addresses when the mesh did not know them) on the ports seen; for edges
 * leaving the mesh, one EgressPolicy per source, learned from those edges' flows the way
 * `egress learn` learns (collector/policies/learn.ts). Pure; the output is sorted, so the same
 * flows give the same YAML.
 */
import { stringify } from 'yaml';
import type { FlowRecord } from '../../common/flow';
import { WORKLOAD_LABEL } from '../../common/labels';
import { learnEgress } from '../policies/learn';
import type { DraftResponse } from '../../common/dashboard-api';

export interface DraftEdge {
  source: { kind: string; namespace: string; name: string };
  target: { kind: string; namespace: string; name: string };
  /** the edge's flows in the window */
  flows: readonly FlowRecord[];
}

const NAME_MAX = 63;
const policyName = (base: string, suffix: string): string => `${base.slice(0, NAME_MAX - suffix.length - 1).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '')}-${suffix}`;
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A principal as AuthorizationPolicy writes it: the SPIFFE ID without `spiffe://`. */
const principal = (identity: string): string => identity.replace(/^spiffe:\/\//, '');

function authorizationDraft(namespace: string, name: string, edges: readonly DraftEdge[]): { doc: Record<string, unknown>; line: string } {
  // one rule per caller: its principal (or address) and the ports it used
  const callers = new Map<string, { principal?: string; ip?: string; ports: Set<number> }>();
  for (const e of edges) {
    for (const f of e.flows) {
      if (f.verdict === 'error') continue;
      const id = f.source.identity;
      const key = id !== undefined ? `p:${principal(id)}` : `ip:${f.source.ip}`;
      let c = callers.get(key);
      if (!c) callers.set(key, (c = id !== undefined ? { principal: principal(id), ports: new Set() } : { ip: f.source.ip, ports: new Set() }));
      if (f.destination.port !== undefined) c.ports.add(f.destination.port);
    }
  }
  const rules = [...callers.entries()]
    .sort((a, b) => cmp(a[0], b[0]))
    .map(([, c]) => ({
      from: [{ source: c.principal !== undefined ? { principals: [c.principal] } : { ipBlocks: [c.ip] } }],
      ...(c.ports.size > 0 ? { to: [{ operation: { ports: [...c.ports].sort((a, b) => a - b).map(String) } }] } : {}),
    }));
  const doc = {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: policyName(name, 'allow-drafted'), namespace },
    spec: { selector: { matchLabels: { [WORKLOAD_LABEL]: name } }, action: 'ALLOW', rules },
  };
  return { doc, line: `AuthorizationPolicy ${namespace}/${doc.metadata.name}: ALLOW ${rules.length} caller(s) to ${namespace}/${name}` };
}

/** The drafts for `edges`; edges that cannot be drafted (an unknown source leaving the mesh) are named in `summary`. */
export function draftPolicies(edges: readonly DraftEdge[]): DraftResponse {
  const inbound = new Map<string, DraftEdge[]>();
  const egress = new Map<string, DraftEdge[]>();
  const summary: string[] = [];
  for (const e of edges) {
    if (e.target.kind === 'workload') {
      const k = `${e.target.namespace}/${e.target.name}`;
      inbound.set(k, [...(inbound.get(k) ?? []), e]);
    } else if (e.source.kind === 'workload') {
      const k = `${e.source.namespace}/${e.source.name}`;
      egress.set(k, [...(egress.get(k) ?? []), e]);
    } else {
      summary.push(`skipped ${e.source.name} → ${e.target.name}: its source is not a workload of the mesh`);
    }
  }
  const docs: Array<Record<string, unknown>> = [];
  for (const k of [...inbound.keys()].sort(cmp)) {
    const list = inbound.get(k)!;
    const d = authorizationDraft(list[0]!.target.namespace, list[0]!.target.name, list);
    docs.push(d.doc);
    summary.push(d.line);
  }
  for (const k of [...egress.keys()].sort(cmp)) {
    const list = egress.get(k)!;
    const w = { namespace: list[0]!.source.namespace, name: list[0]!.source.name };
    const learned = learnEgress(
      list.flatMap((e) => e.flows),
      w,
      { policyName: policyName(w.name, 'egress-drafted') },
    );
    docs.push(learned.manifest);
    summary.push(`EgressPolicy ${w.namespace}/${String((learned.manifest.metadata as { name: string }).name)}: ${learned.destinations.length} destination(s) for ${k}`);
  }
  return { yaml: docs.map((d) => stringify(d)).join('---\n'), summary };
}
