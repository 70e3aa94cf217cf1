/**
 * What the service map asks, answered from the flow store, the registry and the policies: the
 * graph of a window (from the minute rollup), the flows behind an edge or node, a workload's
 * policies and egress rules, and drafts from selected edges. Every parameter is checked first
 * (params.ts); the HTTP side is dashboard.ts.
 */
import type { DraftResponse, GraphResponse, WorkloadResponse } from '../../common/dashboard-api';
import { invalidArgument, PalisadeError } from '../../common/errors';
import type { FlowRecord } from '../../common/flow';
import type { RegistrySnapshot } from '../../common/mesh-protocol';
import { whole } from '../../common/query-params';
import { isRecord } from '../../common/record';
import { MINUTE_MS } from '../flows/rollup';
import type { FlowStore } from '../flows/store';
import type { PolicyManager } from '../policies/manager';
import { draftPolicies, type DraftEdge } from './draft';
import { buildGraphRaw, parseNodeId } from './graph';
import { GraphTotalsCache } from './graph-cache';
import { bool, endpoint, params, protocols, verdicts, window, workload } from './params';

export const DEFAULT_MAX_EDGES = 150;
const MAX_EDGES = 2000;
const DEFAULT_FLOWS = 200;
const MAX_FLOWS = 2000;
/** Flows read per edge to draft a policy. */
const DRAFT_FLOWS_PER_EDGE = 10_000;
const MAX_DRAFT_EDGES = 100;

export interface MapApiDeps {
  flows: FlowStore;
  policies: PolicyManager;
  registry: () => RegistrySnapshot;
  now?: () => number;
}

export class MapApi {
  private readonly now: () => number;
  private readonly totals: GraphTotalsCache;

  constructor(private readonly deps: MapApiDeps) {
    this.now = deps.now ?? Date.now;
    this.totals = new GraphTotalsCache(deps.flows);
  }

  /** GET graph?since&until[&namespaces][&verdicts][&protocols][&workload][&limit] */
  async graph(q: URLSearchParams): Promise<GraphResponse> {
    const p = params('graph', q, ['since', 'until', 'namespaces', 'verdicts', 'protocols', 'workload', 'limit']);
    const now = this.now();
    const w = window(p, now);
    const fromMinute = Math.floor(w.since / MINUTE_MS);
    const toMinute = Math.floor((w.until - 1) / MINUTE_MS);
    const namespaces = p.get('namespaces')?.split(',').filter((x) => x.length > 0);
    if (namespaces && namespaces.length > 50) throw invalidArgument('invalid namespaces: at most 50');
    const rows = await this.totals.totals(
      {
      fromMinute,
      toMinute,
      namespaces,
      verdicts: verdicts(p.get('verdicts')),
      protocols: protocols(p.get('protocols')),
      workload: workload(p.get('workload')),
      },
      now,
    );
    const since = fromMinute * MINUTE_MS;
    const maxEdges = p.has('limit') ? Math.min(whole('limit', p.get('limit')!, 1), MAX_EDGES) : DEFAULT_MAX_EDGES;
    const g = buildGraphRaw(rows, { seconds: (w.until - since) / 1000, maxEdges });
    return { window: { since, until: w.until }, ...g };
  }

  /** GET flows?since&until&(source&target | node)[&denied][&verdicts][&protocols][&after][&limit] — newest first, StoredFlow JSON texts. */
  flows(q: URLSearchParams): string[] {
    const p = params('flows', q, ['since', 'until', 'source', 'target', 'node', 'denied', 'verdicts', 'protocols', 'after', 'limit']);
    const w = window(p, this.now());
    const source = endpoint('source', p.get('source'));
    const target = endpoint('target', p.get('target'));
    const node = endpoint('node', p.get('node'));
    if (node && (source || target)) throw invalidArgument('invalid request: give node, or source and target');
    if (!node && !(source && target)) throw invalidArgument('invalid request: give node, or source and target');
    return this.deps.flows.edgeFlowsJson({
      source,
      destination: target,
      node,
      denied: bool('denied', p.get('denied')),
      verdicts: verdicts(p.get('verdicts')),
      protocols: protocols(p.get('protocols')),
      since: w.since,
      until: w.until,
      afterId: p.has('after') ? whole('after', p.get('after')!, 0) : undefined,
      limit: p.has('limit') ? Math.min(whole('limit', p.get('limit')!, 1), MAX_FLOWS) : DEFAULT_FLOWS,
    });
  }

  /** GET workload?name=ns/name: where it runs, the policies selecting it, its egress rules. */
  workload(q: URLSearchParams): WorkloadResponse {
    const name = params('workload', q, ['name']).get('name');
    if (name === undefined) throw invalidArgument('invalid request: name is required (namespace/name)');
    let sel;
    try {
      sel = this.deps.policies.selecting(name);
    } catch (err) {
      // a workload that sent flows but is no longer registered: no node, no selection to show
      if (err instanceof PalisadeError && err.code === 'PALISADE_ERR_NOT_FOUND') return { workload: null, policies: [], egress: [] };
      throw err;
    }
    const w = sel.workload;
    return {
      workload: { namespace: w.namespace, name: w.name, node: w.node, identity: w.identity, labels: w.labels },
      policies: sel.policies,
      egress: this.deps.policies.egressList(`${w.namespace}/${w.name}`).rules,
    };
  }

  /** POST draft {edges, since, until}: AuthorizationPolicy / EgressPolicy drafts from the edges' flows. */
  draft(body: unknown): DraftResponse {
    if (!isRecord(body)) throw invalidArgument('invalid body: send a JSON object');
    for (const k of Object.keys(body)) if (!['edges', 'since', 'until'].includes(k)) throw invalidArgument(`invalid body: unknown field ${JSON.stringify(k.slice(0, 64))}`);
    const ids = body.edges;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_DRAFT_EDGES) throw invalidArgument(`invalid body: "edges" must list 1 to ${MAX_DRAFT_EDGES} edge ids`);
    const num = (k: 'since' | 'until'): number => {
      const v = body[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalidArgument(`invalid body: "${k}" must be epoch milliseconds`);
      return v;
    };
    const since = num('since');
    const until = num('until');
    if (since >= until) throw invalidArgument('invalid body: since must be before until');
    const edges: DraftEdge[] = ids.map((id, i) => {
      const m = typeof id === 'string' ? /^(.+?)->(.+?)(#denied)?$/.exec(id) : null;
      const source = m ? parseNodeId(m[1]!) : undefined;
      const target = m ? parseNodeId(m[2]!) : undefined;
      if (!source || !target) throw invalidArgument(`invalid body: edges[${i}] is not an edge of the map`);
      const flows = this.deps.flows
        .edgeFlowsJson({ source, destination: target, since, until, limit: DRAFT_FLOWS_PER_EDGE, ...(m![3] ? { denied: true } : {}) })
        .map((j) => JSON.parse(j) as FlowRecord);
      return { source, target, flows };
    });
    return draftPolicies(edges);
  }
}
